#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The memory bound holds at every cluster size: the L2 cache keeps slices
# of L2 tables (4 KiB, as qemu's default l2-cache-entry-size), never whole
# tables, so l2-cache-size=1M means 1 MiB of cached metadata whether a
# table is 4 KiB or 2 MiB; the decompressed-cluster cache holds at most
# compressed-cache-size of clusters (but at least one cluster).
#
# For 4k, 64k and 2M clusters, a compressed image with many L2 tables (one
# 4 KiB block written per L2-table span: 512 tables of 4 KiB, 32 of 64
# KiB, 8 of 2 MiB; 2 MiB, 2 MiB and 16 MiB of L2 tables, all more than the
# cache holds; 512, 32 and 8 compressed clusters: 2 MiB, 2 MiB and 16 MiB
# decompressed, all more than the cluster cache holds) is read end to end
# (nbdcopy: base:allocation of the whole disk, then the data in 4 KiB
# requests, so that the compressed clusters of 64 KiB and 2 MiB go
# through the cluster cache; whole-cluster reads, as for the 4 KiB
# clusters, bypass it) by a server with l2-cache-size=1M and
# compressed-cache-size=1M.  Peak RSS
# (VmHWM of the nbdkit process):
#   start   after startup (nbdkit, plugin, chain opened);
#   warm    after a first connection has read 4 KiB (the fixed cost of
#           serving: connection, thread, libc arenas);
#   after   after the whole disk was read.
# Asserted: after - warm <= caches + one request buffer + the compressed
# bytes of one cluster + 512 KiB, where caches = l2-cache-size (x2 with
# the depth filter, whose chain has its own L2 cache of the same size)
# + max(compressed-cache-size, one cluster) (the depth filter reads
# through the plugin's cluster cache: it has none of its own), and the
# request buffer is counted as max(256 KiB, cluster size) (what nbdcopy
# sends by default; the 4 KiB requests used here need less).
# nbdkit runs with --threads=1 so that nbdkit's own request buffers (which
# the C library keeps per thread) count once.  The cache is exercised by
# construction: mapping the disk touches every slice of every table (512,
# 512 and 4096 slices of 4 KiB), more than the 256 that 1 MiB holds.
source "$(dirname "$0")/functions.sh"

# Peak RSS means nothing under AddressSanitizer (shadow memory,
# quarantine): a sanitizer build runs every other test, not this one.
if grep -q __asan_init "$PLUGIN" || [[ "${LD_PRELOAD:-}" == *asan* ]]; then
    echo "$TESTNAME: SKIP: the plugin is built with AddressSanitizer: peak RSS is not comparable" >&2
    exit 77
fi

: "${FILTER:=$top_builddir/filter-depth/.libs/nbdkit-depth-filter.so}"
cache_kib=1024
ccache_kib=1024
slack_kib=512

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

# measure IMG EXPORT [--filter=...] : prints "start warm after" (KiB)
measure() {
    local img=$1 export=$2; shift 2
    next_id
    local pidf="$_SOCKDIR/n$ID.pid" errf="$TESTDIR/mem-$ID.stderr" out="$TESTDIR/mem-$ID.out"
    export MB_PIDF=$pidf MB_EXPORT=$export
    timeout "$QCOW2MAP_TEST_TIMEOUT" \
        nbdkit -U - -P "$pidf" -f --threads=1 "$@" "$PLUGIN" \
               file="$img" l2-cache-size=${cache_kib}K \
               compressed-cache-size=${ccache_kib}K --run '
            hwm() { awk "/^VmHWM:/ { print \$2 }" /proc/$(cat "$MB_PIDF")/status; }
            u="nbd+unix:///$MB_EXPORT?socket=$unixsocket"
            start=$(hwm)
            qemu-io -r -f raw "$u" -c "read 0 4k" > /dev/null
            warm=$(hwm)
            nbdcopy --connections=1 --requests=1 --request-size=4096 "$u" null: || exit 1
            echo "$start $warm $(hwm)"' > "$out" 2> "$errf" ||
        { show_file "$errf"; fail "reading $img ($export) failed"; }
    cat "$out"
}

check() {
    local cs=$1 export=$2 caches=$3; shift 3
    local img=mem-$cs.qcow2 start warm after
    read -r start warm after <<< "$(measure "$img" "$export" "$@")"
    local cs_kib; cs_kib=$(( $(qemu-img info --output=json "$img" | jq '."cluster-size"') / 1024 ))
    local req_kib=$(( cs_kib > 256 ? cs_kib : 256 ))
    local cc_kib=$(( cs_kib > ccache_kib ? cs_kib : ccache_kib ))
    local bound=$(( caches * cache_kib + cc_kib + req_kib + cs_kib + slack_kib )) growth=$(( after - warm ))
    local what="$cs clusters, ${export:-guest disk}${*:+ with the depth filter}"
    [ "$growth" -le "$bound" ] ||
        fail "$what: peak RSS grew by $growth KiB while reading, more than $bound KiB ($caches x l2-cache-size $cache_kib KiB + cluster cache $cc_kib KiB + request buffer $req_kib KiB + compressed cluster $cs_kib KiB + $slack_kib KiB)"
    log "OK $what: VmHWM start $start KiB, warm $warm KiB, after $after KiB: grew $growth KiB <= $bound KiB ($caches x $cache_kib + $cc_kib + $req_kib + $cs_kib + $slack_kib)"
}

make_image 4k  1G  $((2 << 20))   512
make_image 64k 16G $((512 << 20)) 32
make_image 2M  4T  $((512 << 30)) 8

for cs in 4k 64k 2M; do
    check "$cs" "" 1
done
# The depth filter opens the chain again, with its own cache of the same
# size: a depth view uses both.
for cs in 4k 2M; do
    check "$cs" depth/1 2 --filter="$FILTER"
done
