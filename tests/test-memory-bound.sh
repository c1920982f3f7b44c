#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The memory bound of the MEMORY section of nbdkit-qcow2map-plugin(1)
# holds in the heavy case: a client maps the whole disk (base:allocation
# of every byte: every slice of every L2 table) and then reads 4 KiB in
# every allocated extent (every compressed cluster goes through the
# cluster cache), for 4 KiB, 64 KiB and 2 MiB clusters, served by the
# plugin alone (guest disk) and with the depth filter (depth/1: the
# filter's own chain answers the map, the plugin the reads).
#
# Images: compressed, with many L2 tables (one 4 KiB block written per
# L2-table span: 512 tables of 4 KiB, 32 of 64 KiB, 8 of 2 MiB; 2 MiB, 2
# MiB and 16 MiB of L2 tables, all more than the cache holds; 512, 32
# and 8 compressed clusters: 2 MiB, 2 MiB and 16 MiB decompressed, all
# more than the cluster cache holds), served with l2-cache-size=1M and
# compressed-cache-size=1M.
#
# Measured: the peak RSS (VmHWM) of nbdkit at the end, minus the same for
# a tiny image (1 MiB, 64 KiB clusters, one 4 KiB block) served with the
# same options to the same client: what the image costs over nbdkit, its
# libraries, the plugin (and filter) and a connection.  Startup is
# included (tables read when the chain is opened: the refcount table and
# block once cost one cluster each, per chain).
#
# Asserted, as the man page computes it (MEMORY, "Bound"):
#   growth <= K x l2-cache-size + max(compressed-cache-size, cluster)
#             + K x (8 x (L1 entries + refcount table entries) + 4 KiB)
#             + T x (R + C) + 512 KiB
# with K = 1 (plugin) or 2 (with the filter: two chains), T = 1 thread,
# R = the largest request (4 KiB here), C = the compressed bytes of one
# cluster (at most one cluster in an image qemu wrote: counted as one).
#
# Not flaky: one client connection does everything, and nbdkit runs
# with --threads=1, so a single thread (and so a single malloc arena of
# the C library, which keeps freed buffers per thread) serves every
# request, whatever the load of the machine; RSS does not depend on
# timing otherwise.
source "$(dirname "$0")/functions.sh"

# Peak RSS means nothing under AddressSanitizer (shadow memory,
# quarantine): a sanitizer build runs every other test, not this one.
if grep -q __asan_init "$PLUGIN" || [[ "${LD_PRELOAD:-}" == *asan* ]]; then
    echo "$TESTNAME: SKIP: the plugin is built with AddressSanitizer: peak RSS is not comparable" >&2
    exit 77
fi

: "${FILTER:=$top_builddir/filter-depth/.libs/nbdkit-depth-filter.so}"
PY=$(nbd_python)
cache_kib=1024
ccache_kib=1024
request_kib=4
slack_kib=512

# The client: base:allocation of the whole disk, then a 4 KiB read at the
# start of every allocated (not hole) extent, in one connection.
cat > mapread.py <<'EOF'
import nbd, sys
h = nbd.NBD()
h.add_meta_context("base:allocation")
h.connect_uri(sys.argv[1])
size, off, allocated = h.get_size(), 0, []
while off < size:
    got = []
    h.block_status(min(size - off, 1 << 30), off,
                   lambda ctx, o, e, err: got.extend(e) if ctx == "base:allocation" else None)
    for i in range(0, len(got), 2):
        n = min(got[i], size - off)
        if not got[i + 1] & nbd.STATE_HOLE:
            allocated.append((off, n))
        off += n
for o, n in allocated:
    h.pread(min(n, 4096), o)
h.shutdown()
print(len(allocated))
EOF

# make_image CLUSTER VSIZE SPAN COUNT : IMG with COUNT 4 KiB blocks, SPAN
# apart (converted from a sparse raw file: quick, and qemu-img writes only
# the L2 tables that map data).
make_image() {
    local cs=$1 vsize=$2 span=$3 count=$4
    rm -f src.raw; truncate -s "$vsize" src.raw
    python3 - src.raw "$span" "$count" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
span, count = int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    os.pwrite(fd, bytes([i % 250 + 1]) * 4096, i * span)
os.close(fd)
EOF
    qemu-img convert -c -f raw -O qcow2 -o cluster_size="$cs" src.raw "mem-$cs.qcow2"
    rm -f src.raw
    local n; n=$(qemu-img check --output=json "mem-$cs.qcow2" | jq '."compressed-clusters" // 0')
    [ "$n" = "$count" ] || hard_error "mem-$cs.qcow2: $n compressed clusters, expected $count"
}

# peak IMG EXPORT [--filter=...] : VmHWM (KiB) of nbdkit once the client
# is done; the client's count of allocated extents in $TESTDIR/peak.n.
peak() {
    local img=$1 export=$2; shift 2
    next_id
    local pidf="$_SOCKDIR/n$ID.pid" errf="$TESTDIR/mem-$ID.stderr" out="$TESTDIR/mem-$ID.out"
    export MB_PIDF=$pidf MB_EXPORT=$export MB_PY=$PY
    timeout "$QCOW2MAP_TEST_TIMEOUT" \
        nbdkit -U - -P "$pidf" -f --threads=1 "$@" "$PLUGIN" \
               file="$img" l2-cache-size=${cache_kib}K \
               compressed-cache-size=${ccache_kib}K --run '
            "$MB_PY" mapread.py "nbd+unix:///$MB_EXPORT?socket=$unixsocket" > peak.n || exit 1
            awk "/^VmHWM:/ { print \$2 }" /proc/$(cat "$MB_PIDF")/status' > "$out" 2> "$errf" ||
        { show_file "$errf"; fail "serving $img ($export) failed"; }
    cat "$out"
}

# tables_kib IMG : 8 bytes per entry of the L1 table and of the refcount
# table up to its last non-zero entry, plus 4 KiB (the refcount block
# slice), in KiB rounded up: what a layer keeps (MEMORY).
tables_kib() {
    python3 - "$1" <<'EOF'
import struct, sys
f = open(sys.argv[1], "rb")
h = f.read(104)
cs = 1 << struct.unpack(">I", h[20:24])[0]
l1 = struct.unpack(">I", h[36:40])[0]
rt_off, rt_cl = struct.unpack(">QI", h[48:60])
f.seek(rt_off)
rt = f.read(rt_cl * cs)
n = len(rt) // 8
while n and rt[8 * n - 8:8 * n] == bytes(8):
    n -= 1
print((8 * (l1 + n) + 4096 + 1023) // 1024)
EOF
}

mkimg tiny.qcow2 1M
qio tiny.qcow2 'write -P 0x01 0 4k'
make_image 4k  1G  $((2 << 20))   512
make_image 64k 16G $((512 << 20)) 32
make_image 2M  4T  $((512 << 30)) 8
declare -A extents=([4k]=512 [64k]=32 [2M]=8)

base_plugin=$(peak tiny.qcow2 "")
base_filter=$(peak tiny.qcow2 depth/1 --filter="$FILTER")
log "tiny image: VmHWM $base_plugin KiB (plugin), $base_filter KiB (with the depth filter)"

# check CLUSTER EXPORT K [--filter=...]
check() {
    local cs=$1 export=$2 k=$3; shift 3
    local img=mem-$cs.qcow2 base=$base_plugin
    [ $# -eq 0 ] || base=$base_filter
    local hwm; hwm=$(peak "$img" "$export" "$@")
    [ "$(cat peak.n)" = "${extents[$cs]}" ] ||
        fail "$img ($export): the client read $(cat peak.n) allocated extents, expected ${extents[$cs]}"
    local cs_kib; cs_kib=$(( $(qemu-img info --output=json "$img" | jq '."cluster-size"') / 1024 ))
    local cc_kib=$(( cs_kib > ccache_kib ? cs_kib : ccache_kib ))
    local t_kib; t_kib=$(tables_kib "$img")
    local bound=$(( k * cache_kib + cc_kib + k * t_kib + request_kib + cs_kib + slack_kib ))
    local growth=$(( hwm - base ))
    local what="$cs clusters, ${export:-guest disk}${*:+ with the depth filter}"
    local formula="$k x $cache_kib (L2) + $cc_kib (clusters) + $k x $t_kib (tables) + 1 x ($request_kib + $cs_kib) (request) + $slack_kib"
    [ "$growth" -le "$bound" ] ||
        fail "$what: peak RSS $hwm KiB, $growth KiB over the tiny image, more than the bound $bound KiB = $formula"
    log "OK $what: VmHWM $hwm KiB, $growth KiB over the tiny image <= $bound KiB = $formula"
}

for cs in 4k 64k 2M; do
    check "$cs" "" 1
    check "$cs" depth/1 2 --filter="$FILTER"
done
