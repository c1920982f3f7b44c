#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The qcow2map filter over nbdkit's curl plugin, against a real nginx
# (started by the test on a free loopback port, its own config in the
# test's directory, stopped by its pid):
#   nbdkit -r curl http://127.0.0.1:PORT/IMG --filter=qcow2map
# 1. a set of the image matrix (v2, v3 with zero clusters, zlib, zstd,
#    512-byte and 2 MiB clusters, extended L2, an internal snapshot and a
#    persistent bitmap, a chain whose backing file is given by backing=,
#    LUKS): bytes (nbdcopy with and without extents), base:allocation map,
#    size, map.json and layer maps as qemu gives them for the same file
#    (qemu-img convert, qemu-nbd, qemu-img map), as check_image does for
#    the plugin; a backing file named in the image and not given: one line;
# 2. bad sources: 404 and 403 answered to the first request, one error line
#    naming the URL and the status; nginx stopped in the middle of a copy:
#    that read fails with EIO and an error naming the guest offset and the
#    source, and once nginx is back the same connection and a new one read
#    the right bytes (the server kept serving);
# 3. a whole copy gets its later windows from the prefetch thread, with
#    the right bytes;
# 4. an internal snapshot and a persistent bitmap.
source "$(dirname "$0")/functions.sh"
source "$top_srcdir/tests/nginx-functions.sh"
requires nginx curl
requires_filter

mkdir www
cd www
# Guest data: random, a pattern, zeros and holes (so that compressed,
# uncompressed, zero and unallocated clusters all occur).
head -c 3M /dev/urandom > mixed.raw
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 4096 * 3)' >> mixed.raw
truncate -s 16M mixed.raw
head -c 1M /dev/urandom | dd of=mixed.raw bs=1M seek=12 conv=notrunc status=none

qemu-img convert -f raw -O qcow2 -o compat=0.10 mixed.raw v2.qcow2
mkimg v3.qcow2 16M
qio v3.qcow2 'write -P 0x11 0 1M' 'write -z 2M 1M' 'write -P 0x22 5M 64k' 'write -P 0x33 15M 1M' 'discard 5M 64k'
qemu-img convert -f raw -c -O qcow2 mixed.raw zlib.qcow2
qemu-img convert -f raw -c -O qcow2 -o compression_type=zstd mixed.raw zstd.qcow2
qemu-img convert -f raw -O qcow2 -o cluster_size=512 mixed.raw c512.qcow2
qemu-img convert -f raw -c -O qcow2 -o cluster_size=2M mixed.raw c2m.qcow2
mkimg -o extended_l2=on,cluster_size=128k xl2.qcow2 16M
qio xl2.qcow2 'write -P 0x44 4k 4k' 'write -P 0x55 70k 8k' 'write -z 1M 64k' 'write -P 0x66 3M 1M'
# An internal snapshot and a persistent bitmap.
mkimg snb.qcow2 16M
qio snb.qcow2 'write -P 0x77 0 2M'
qemu-img snapshot -c before snb.qcow2
qemu-img bitmap --add snb.qcow2 since-before
qio snb.qcow2 'write -P 0x78 1M 64k' 'write -P 0x79 8M 1M'
# A chain: base.qcow2 <- top.qcow2 (both on the server).
mkimg base.qcow2 16M
qio base.qcow2 'write -P 0x81 0 4M'
mkimg -b base.qcow2 -F qcow2 top.qcow2
qio top.qcow2 'write -P 0x82 1M 64k' 'write -z 3M 64k'
# LUKS.
mkimg_luks hunter2 enc.qcow2 16M
qemu-io --object secret,id=k,data=hunter2 -c 'write -P 0x91 0 3M' \
    "json:$(qcow2_node enc.qcow2 "" k)" > /dev/null
# For the mid-copy failure: 32 MiB of random data at guest 0, and 1 MiB
# at guest 192 MiB, written after it: in the file, those clusters lie 32
# MiB past the first ones (more than any read-ahead of a sequential copy
# of the first 64 KiB should fetch).
mkimg far.qcow2 256M
head -c 32M /dev/urandom > far0.raw
head -c 1M /dev/urandom > far1.raw
qemu-io -f qcow2 -c "write -s far0.raw 0 32M" -c "write -s far1.raw 192M 1M" far.qcow2 > /dev/null
rm -f mixed.raw far0.raw far1.raw
cd ..

nginx_start www
export NGINX_ROOT NGINX_DIR NGINX_PORT NGINX_URL NGINX_PIDFILE NGINX_LOG
log "nginx serves www/ at $NGINX_URL (pid $(cat "$NGINX_PIDFILE"))"

# The filter over curl, for every helper built on plugin_run.
via_curl() { printf '%s\n' -r curl "$NGINX_URL/$(basename "$1")" --filter="$QCOW2MAP_FILTER"; }
SERVE_VIA=via_curl

# ---- 1. the image matrix over HTTP
for img in v2 v3 zlib zstd c512 c2m xl2; do
    check_image "www/$img.qcow2"
done
# The backing file is on the server too, but the filter reads only what
# the plugin below serves: backing= names it (a local file).
check_image www/top.qcow2 backing=www/base.qcow2
QEMU_REF="json:$(qcow2_node www/enc.qcow2 "" k)" QEMU_OBJECTS="secret,id=k,data=hunter2" \
    check_image www/enc.qcow2 passphrase=hunter2

# Without backing=: one error line naming the backing file, saying that
# backing= gives it; the client is refused.
plugin_run www/top.qcow2 -- sh -c 'nbdinfo --size "$uri"' > /dev/null 2>&1 &&
    fail "top.qcow2 over curl without backing=: served"
nerr=$(grep -c '^nbdkit: .*error' "$PLUGIN_LAST_STDERR" || true)
grep -E '^nbdkit: .*error' "$PLUGIN_LAST_STDERR" | grep 'base\.qcow2' | grep -q 'backing=' &&
    [ "$nerr" -eq 1 ] || { show_file "$PLUGIN_LAST_STDERR"; fail "top.qcow2 without backing=: expected one error line naming base.qcow2 and backing= ($nerr error lines)"; }
log "OK top.qcow2 over curl without backing=: $(grep -m1 '^nbdkit: .*error' "$PLUGIN_LAST_STDERR")"

# ---- 2. bad sources
# expect_http_refusal PATH STATUS : the client is refused; nbdkit says so in
# exactly one error line, naming the URL and the HTTP status.
expect_http_refusal() {
    local path=$1 status=$2 rc=0 nerr line
    via_http() { printf '%s\n' -r curl "$NGINX_URL/$path" --filter="$QCOW2MAP_FILTER"; }
    SERVE_VIA=via_http plugin_run "$path" -- sh -c 'nbdinfo --size "$uri"' > /dev/null 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || fail "$path ($status): served"
    nerr=$(grep -c '^nbdkit: .*error' "$PLUGIN_LAST_STDERR" || true)
    line=$(grep -m1 '^nbdkit: .*error' "$PLUGIN_LAST_STDERR" || true)
    if [ "$nerr" -ne 1 ] || [[ "$line" != *"$NGINX_URL/$path"* ]] || [[ "$line" != *"$status"* ]]; then
        show_file "$PLUGIN_LAST_STDERR"
        fail "$path: expected one nbdkit error line naming $NGINX_URL/$path and $status ($nerr error lines)"
    fi
    log "OK $path refused ($status): $line"
}
expect_http_refusal missing.qcow2 404
cp www/v3.qcow2 www/denied-v3.qcow2
mkdir -p www/denied && mv www/denied-v3.qcow2 www/denied/v3.qcow2
expect_http_refusal denied/v3.qcow2 403

# nginx stopped in the middle of a copy.
(cd www && qemu-img convert -f qcow2 -O raw far.qcow2 ../far.ref.raw)
cat > midcopy.py <<'EOF'
# One connection reads guest 0..64K; nginx is stopped; a read of guest
# 192M fails with EIO; nginx is started again; the same connection and a
# new one read 192M right.  Prints what happened, one line each.
import errno, os, subprocess, sys
import nbd
uri, ref = sys.argv[1], sys.argv[2]
nginx = os.path.join(os.environ["top_srcdir"], "tests", "nginx-functions.sh")
def sh(fn):
    subprocess.run(["bash", "-c", 'source "$1" && ' + fn, "sh", nginx], check=True)
def expect(data, off):
    with open(ref, "rb") as f:
        f.seek(off)
        if f.read(len(data)) != data:
            sys.exit("bytes at guest offset %d differ from qemu-img convert" % off)
far = 192 << 20
h = nbd.NBD()
h.connect_uri(uri)
expect(h.pread(65536, 0), 0)
print("read 0+65536 ok")
sh("nginx_stop")
try:
    h.pread(65536, far)
    sys.exit("read of guest offset %d succeeded with nginx stopped" % far)
except nbd.Error as e:
    # (libnbd's Python binding gives errno by name, e.g. "EIO")
    if e.errno not in (errno.EIO, "EIO"):
        sys.exit("read with nginx stopped: %s (errno %s), expected EIO" % (e.string, e.errno))
    print("read %d+65536 with nginx stopped: EIO" % far)
sh("nginx_restart")
expect(h.pread(65536, far), far)
print("same connection, nginx back: read %d+65536 ok" % far)
h2 = nbd.NBD()
h2.connect_uri(uri)
expect(h2.pread(1 << 20, far), far)
expect(h2.pread(65536, 4 << 20), 4 << 20)
print("new connection: reads ok")
EOF
py=$(nbd_python)
plugin_run www/far.qcow2 -- sh -c 'exec "$0" "$1" "$uri" "$2"' \
    "$py" "$TESTDIR/midcopy.py" "$TESTDIR/far.ref.raw" > midcopy.out 2>&1 ||
    { show_file midcopy.out; fail "nginx stopped mid-copy: the reads did not go as expected"; }
sed 's/^/    /' midcopy.out
# The failed read's error: the guest offset (within the read) and the
# source (the plugin's export, or the URL), with the cause.
far=$((192 << 20))
line=$(grep -E '^nbdkit: .*error: .*guest offset [0-9]+' "$PLUGIN_LAST_STDERR" | head -n 1 || true)
goff=$(sed -E 's/.*guest offset ([0-9]+).*/\1/' <<< "$line")
if [ -z "$line" ] || [ "$goff" -lt "$far" ] || [ "$goff" -ge $((far + 65536)) ] ||
   ! grep -Eq "export ''|$NGINX_URL/far\.qcow2" <<< "$line"; then
    show_file "$PLUGIN_LAST_STDERR"
    fail "nginx stopped mid-copy: no error line naming a guest offset in $far..$((far + 65535)) and the source (export '' or the URL)"
fi
log "OK nginx stopped mid-copy: EIO for that read ($line); same and new connection read right once nginx was back"

# ---- 3. the prefetch thread over curl: a whole copy gets the windows
# after the first from it (on nbdkit 1.32 its requests and the
# connection's take turns on the curl plugin's one handle), with the
# bytes qemu-img convert gives.
via_curl_io() { via_curl "$1"; printf '%s\n' -D qcow2map.io=1; }
SERVE_VIA=via_curl_io plugin_run www/far.qcow2 -- sh -c 'nbdcopy "$uri" "$0"' \
    "$TESTDIR/far.copy.raw" || fail "far.qcow2 over curl: copy failed"
cmp -s far.ref.raw far.copy.raw || fail "far.qcow2 over curl: bytes differ from qemu-img convert"
nfetch=$(grep -c 'io: pread .* (prefetch)$' "$NBDKIT_LAST_VLOG" || true)
nall=$(grep -c 'io: pread ' "$NBDKIT_LAST_VLOG" || true)
[ "$nfetch" -gt 0 ] || { show_file "$NBDKIT_LAST_VLOG" 40; fail "far.qcow2 over curl: no request made by the prefetch thread"; }
log "OK far.qcow2 over curl, whole copy: bytes as qemu-img convert; $nfetch of $nall reads made by the prefetch thread"
rm -f far.copy.raw

# ---- 4. an internal snapshot and a persistent bitmap over HTTP
check_image www/snb.qcow2
check_snapshot www/snb.qcow2 snapshot/before snapshot.name=before
check_bitmap www/snb.qcow2 since-before
