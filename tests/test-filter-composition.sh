#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The qcow2map filter composed with nbdkit's own filters, over nbdkit's
# curl plugin and a private nginx (nbdkit's first --filter is the
# outermost, nearest the client):
#  - over retry, readahead, cache (between the decoder and curl): the
#    bytes, maps and map.json of qemu; with retry, nginx stopped before a
#    read and started again while the retry filter waits: the read
#    succeeds with the right bytes, and the log shows the retry;
#  - over xz (a .qcow2.xz made with xz --block-size, so that the xz filter
#    can seek) and tar (an OVA-like tar: an .ovf, then the qcow2 disk):
#    the same checks against qemu on the qcow2 inside;
#  - under cow: the export is writable, a write reads back over the guest
#    bytes qemu reads, nothing reaches the source;
#  - under blocksize (minblock=4096 maxdata=64k): the same checks;
#  - under partition: a qcow2 whose guest holds an MBR with two partitions
#    (made by nbdkit's partitioning plugin): each partition reads as the
#    file it was made from;
#  - the depth filter over the qcow2map filter: refused at startup with
#    one line (it reads the chain's files itself: it needs the plugin's
#    file=).
source "$(dirname "$0")/functions.sh"
source "$top_srcdir/tests/nginx-functions.sh"
requires nginx curl xz tar
requires_filter

mkdir www
cd www
head -c 2M /dev/urandom > guest.raw
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 4096 * 4)' >> guest.raw
truncate -s 16M guest.raw
head -c 1M /dev/urandom | dd of=guest.raw bs=1M seek=12 conv=notrunc status=none
qemu-img convert -f raw -c -O qcow2 guest.raw zlib.qcow2
qemu-img convert -f raw -O qcow2 guest.raw plain.qcow2
# A cloud image as distributions ship some: an xz'd qcow2, in 1 MiB xz
# blocks (nbdkit's xz filter seeks to block boundaries).
xz -T1 --block-size=1MiB -k -c plain.qcow2 > plain.qcow2.xz
# An OVA: a tar holding the descriptor first, then the disk.
mkdir ova && cp zlib.qcow2 ova/disk.qcow2
echo '<?xml version="1.0"?><Envelope/>' > ova/vm.ovf
tar -C ova -cf vm.ova vm.ovf disk.qcow2
rm -rf ova
# A guest disk with an MBR: two partitions, each made of a file.
head -c 3M /dev/urandom > p1.raw
python3 -c 'import sys; sys.stdout.buffer.write(b"partition two " * 299593 + b"\0" * 2)' > p2.raw
truncate -s 4M p2.raw
nbdkit -U - partitioning p1.raw p2.raw partition-type=mbr \
    --run 'qemu-img convert -f raw -O qcow2 -c "$uri" part.qcow2'
# For the retry: 32 MiB of random data at guest 0, 1 MiB at 192 MiB
# written after it (32 MiB further in the file than the first cluster:
# more than a read-ahead from the first 64 KiB should fetch).
mkimg far.qcow2 256M
head -c 32M /dev/urandom > far0.raw
head -c 1M /dev/urandom > far1.raw
qemu-io -f qcow2 -c "write -s far0.raw 0 32M" -c "write -s far1.raw 192M 1M" far.qcow2 > /dev/null
rm -f far0.raw far1.raw guest.raw
cd ..

nginx_start www
export NGINX_ROOT NGINX_DIR NGINX_PORT NGINX_URL NGINX_PIDFILE NGINX_LOG
log "nginx serves www/ at $NGINX_URL (pid $(cat "$NGINX_PIDFILE"))"

# via_curl IMG : the decoder over $BELOW (filters between it and curl)
# under $ABOVE (filters between the client and it), curl reading IMG (or
# $URL_PATH) from nginx; read-only unless RW=1.
ABOVE=() BELOW=() URL_PATH='' RW=''
via_curl() {
    [ -n "$RW" ] || echo -r
    printf '%s\n' curl "$NGINX_URL/${URL_PATH:-$(basename "$1")}" \
        "${ABOVE[@]}" --filter="$QCOW2MAP_FILTER" "${BELOW[@]}"
}
SERVE_VIA=via_curl

# ---- over retry, readahead, cache
for f in retry readahead cache; do
    BELOW=(--filter=$f)
    log "-- the filter over $f over curl"
    check_image www/zlib.qcow2
done

# retry at work: nginx stopped before a read, started again while the
# retry filter waits (1 s, doubling, up to 10 times).
BELOW=(--filter=retry retry-delay=1 retries=10)
(cd www && qemu-img convert -f qcow2 -O raw far.qcow2 ../far.ref.raw)
cat > retry.py <<'EOF'
import os, subprocess, sys, threading
import nbd
uri, ref = sys.argv[1], sys.argv[2]
nginx = os.path.join(os.environ["top_srcdir"], "tests", "nginx-functions.sh")
def sh(fn):
    subprocess.run(["bash", "-c", 'source "$1" && ' + fn, "sh", nginx], check=True)
far = 192 << 20
h = nbd.NBD()
h.connect_uri(uri)
h.pread(65536, 0)
sh("nginx_stop")
# nginx comes back half a second after the read starts (which fails at
# once, connection refused); the retry filter retries a second later.
threading.Timer(0.5, sh, ["nginx_restart"]).start()
data = h.pread(1 << 20, far)
with open(ref, "rb") as f:
    f.seek(far)
    if f.read(1 << 20) != data:
        sys.exit("bytes read through the retry filter differ from qemu-img convert")
print("1 MiB at guest %d read through retry while nginx was stopped and started: bytes identical" % far)
EOF
py=$(nbd_python)
plugin_run www/far.qcow2 -- sh -c 'exec "$0" "$1" "$uri" "$2"' \
    "$py" "$TESTDIR/retry.py" "$TESTDIR/far.ref.raw" > retry.out 2>&1 ||
    { show_file retry.out; fail "reading through the retry filter while nginx restarted failed"; }
grep -Eq 'retry [0-9]+: waiting' "$PLUGIN_LAST_STDERR.v" ||
    fail "the retry filter did not retry (no retry in the nbdkit -v log): nothing was tested"
log "OK retry: $(grep -m1 '^1 MiB' retry.out); nbdkit: $(grep -E -m1 'retry [0-9]+: waiting' "$PLUGIN_LAST_STDERR.v" | cut -c1-160)"
BELOW=()
(cd www && qemu-img convert -f qcow2 -O raw zlib.qcow2 ../zlib.ref.raw)

# ---- over xz and tar
BELOW=(--filter=xz) URL_PATH=plain.qcow2.xz
log "-- the filter over xz over curl (plain.qcow2.xz)"
check_image www/plain.qcow2
BELOW=(--filter=tar tar-entry=disk.qcow2) URL_PATH=vm.ova
log "-- the filter over tar over curl (disk.qcow2 in vm.ova)"
check_image www/zlib.qcow2
BELOW=() URL_PATH=''

# ---- under cow: writable; a write reads back over qemu's guest bytes
ABOVE=(--filter=cow) RW=1
cp zlib.ref.raw cow.expected.raw
python3 -c 'import sys; sys.stdout.buffer.write(b"\xee" * 65536)' |
    dd of=cow.expected.raw bs=64k seek=16 conv=notrunc status=none
zlib_sum=$(sha256sum < www/zlib.qcow2)
export C_OUT=$TESTDIR/cow.actual.raw
plugin_run www/zlib.qcow2 -- sh -c '
    qemu-io -f raw -c "write -P 0xee 1M 64k" "$uri" > /dev/null &&
    nbdcopy "$uri" "$C_OUT"' || fail "writing through cow over the filter failed"
compare_bytes cow.expected.raw cow.actual.raw "zlib.qcow2 under cow after a 64 KiB write at 1 MiB"
[ "$(sha256sum < www/zlib.qcow2)" = "$zlib_sum" ] || fail "the source image changed"
log "OK cow over the filter: the write reads back, the rest is qemu's bytes, the source is unchanged"
ABOVE=() RW=''

# ---- under blocksize
ABOVE=(--filter=blocksize minblock=4096 maxdata=65536)
log "-- blocksize over the filter"
check_image www/zlib.qcow2
ABOVE=()

# ---- under partition
for n in 1 2; do
    ABOVE=(--filter=partition partition=$n)
    export P_OUT=$TESTDIR/p$n.actual.raw
    plugin_run www/part.qcow2 -- sh -c 'nbdcopy "$uri" "$P_OUT"' ||
        fail "partition=$n over the filter failed"
    compare_bytes "www/p$n.raw" "p$n.actual.raw" "partition $n of part.qcow2's guest"
    log "OK partition=$n over the filter: the bytes of p$n.raw ($(stat -c %s "www/p$n.raw") bytes)"
done
ABOVE=()

# ---- the depth filter over the qcow2map filter: one line at startup
: "${FILTER:=$top_builddir/filter-depth/.libs/nbdkit-depth-filter.so}"
ABOVE=(--filter="$FILTER")
rc=0
plugin_run www/zlib.qcow2 -- sh -c 'nbdinfo --size "$uri"' > /dev/null 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "the depth filter over the qcow2map filter served"
nerr=$(grep -c '^nbdkit: .*error' "$PLUGIN_LAST_STDERR" || true)
line=$(grep -m1 '^nbdkit: .*error' "$PLUGIN_LAST_STDERR" || true)
[ "$nerr" -eq 1 ] && [[ "$line" == *depth* ]] ||
    { show_file "$PLUGIN_LAST_STDERR"; fail "depth over the qcow2map filter: expected one error line about the depth filter ($nerr)"; }
log "OK depth filter over the qcow2map filter refused: $line"
