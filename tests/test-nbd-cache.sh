#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# NBD_CMD_CACHE (.cache): the plugin prefetches what a range needs, so
# nbdkit's readahead and scan filters work over it.
#  1. --filter=readahead and --filter=scan (which need the parallel
#     thread model: thread-model=parallel, as the man page says): the
#     filter does not print that it won't work, the plugin's cache callback is
#     called (nbdkit -v), and the bytes read through the filter (4 KiB
#     requests, one at a time) are qemu-img convert's.
#  2. A client's NBD_CMD_CACHE of a whole compressed image, then 4 KiB
#     reads of all of it: the compressed clusters were inflated by the
#     prefetch (misses = compressed clusters) and every read was a hit
#     (-D qcow2map.cache=1); the same through the depth filter (guest
#     export passed through, and a depth view, which prefetches only its
#     in-range parts), on a layer view, a snapshot view and a file view;
#     NBD_CMD_CACHE of a JSON view succeeds.
#  3. NBD_CMD_CACHE of a corrupt compressed cluster fails with EIO, as a
#     read of it does.
source "$(dirname "$0")/functions.sh"

py=$(nbd_python)
export NC_PY=$py
: "${FILTER:=$top_builddir/filter-depth/.libs/nbdkit-depth-filter.so}"

# 4 MiB of text (every 64 KiB cluster compresses) and a plain overlay
# that rewrites 1 MiB of it.
seq 1 1000000 > text.txt
truncate -s 4M src.raw
dd if=text.txt of=src.raw bs=1M count=4 conv=notrunc status=none
qemu-img convert -c -f raw -O qcow2 src.raw base.qcow2
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
qio top.qcow2 'write -P 0x42 1M 1M'
nclusters=$(qemu-img check --output=json base.qcow2 | jq '."compressed-clusters"')
[ "$nclusters" = 64 ] || hard_error "base.qcow2: $nclusters compressed clusters, expected 64"
qemu-img convert -f qcow2 -O raw top.qcow2 expected.raw

# 1. readahead and scan filters.
for f in readahead scan; do
    rm -f got.raw
    export NC_OUT="$TESTDIR/got.raw"
    plugin_run top.qcow2 -v --filter=$f thread-model=parallel -- sh -c \
        'nbdcopy --request-size=4096 --connections=1 --requests=1 "$uri" "$NC_OUT"' 2> /dev/null ||
        fail "--filter=$f: nbdcopy failed"
    [ -f got.raw ] || fail "--filter=$f: nbdcopy failed"
    if grep -Eq "$f: warning: underlying plugin does not support" "$PLUGIN_LAST_STDERR"; then
        show_file "$PLUGIN_LAST_STDERR"
        fail "--filter=$f says it won't work over the plugin"
    fi
    calls=$(grep -c 'debug: qcow2map: cache count=' "$NBDKIT_LAST_VLOG" || true)
    [ "$calls" -gt 0 ] || fail "--filter=$f: the plugin's cache callback was never called"
    compare_bytes expected.raw got.raw "top.qcow2 read through --filter=$f"
    log "OK --filter=$f: $calls calls of the plugin's .cache, bytes identical to qemu-img convert"
done

# 2. A client's NBD_CMD_CACHE, then reads.
export NC_CLIENT="$top_srcdir/tests/nbd-cache-client.py"
qemu-img convert -f qcow2 -O raw base.qcow2 base.raw
# cache_then_read IMG EXPECTED EXPORT [nbdkit args]: sets $stats
cache_then_read() {
    local img=$1 exp=$2 export=$3; shift 3
    export NC_EXP="$TESTDIR/$exp" NC_EXPORT=$export
    plugin_run "$img" -v -D qcow2map.cache=1 "$@" -- sh -c \
        '"$NC_PY" "$NC_CLIENT" "nbd+unix:///$NC_EXPORT?socket=$unixsocket" "$NC_EXP"' 2> /dev/null ||
        fail "$img ($export $*): cache then read failed"
    stats=$(grep 'compressed cluster cache:' "$NBDKIT_LAST_VLOG" | tail -n 1)
    stats=${stats#*debug: }
}
for how in plain depth; do
    args=(); [ $how = depth ] && args=(--filter="$FILTER")
    cache_then_read base.qcow2 base.raw "" "${args[@]}"
    [[ "$stats" == "compressed cluster cache: 1024 hits "*", 64 misses,"* ]] ||
        fail "base.qcow2 ($how): after NBD_CMD_CACHE, expected 64 misses (the prefetch) and 1024 hits (the reads): $stats"
    log "OK base.qcow2 ($how): NBD_CMD_CACHE then 1024 reads of 4 KiB: $stats"
done
# Depth view depth/2 of the chain (the depth filter's own .cache: only
# what the view reads from the plugin, the 48 clusters at depth 2).
cp base.raw depth2.raw
dd if=/dev/zero of=depth2.raw bs=1M seek=1 count=1 conv=notrunc status=none
cache_then_read top.qcow2 depth2.raw depth/2 --filter="$FILTER"
[[ "$stats" == "compressed cluster cache: 768 hits "*", 48 misses,"* ]] ||
    fail "top.qcow2 depth/2: after NBD_CMD_CACHE, expected 48 misses and 768 hits: $stats"
log "OK top.qcow2 depth/2 (depth filter): NBD_CMD_CACHE then reads: $stats"
# Through the overlay, the guest disk: 48 compressed clusters show.
cache_then_read top.qcow2 expected.raw ""
[[ "$stats" == "compressed cluster cache: 768 hits "*", 48 misses,"* ]] ||
    fail "top.qcow2: after NBD_CMD_CACHE, expected 48 misses and 768 hits: $stats"
log "OK top.qcow2: NBD_CMD_CACHE then reads: $stats"
# Layer view layer/2 (the base alone) and file view file/2.
cache_then_read top.qcow2 base.raw layer/2
[[ "$stats" == "compressed cluster cache: 1024 hits "*", 64 misses,"* ]] ||
    fail "top.qcow2 layer/2: expected 64 misses and 1024 hits: $stats"
log "OK top.qcow2 layer/2: NBD_CMD_CACHE then reads: $stats"
cache_then_read top.qcow2 base.qcow2 file/2
log "OK top.qcow2 file/2: NBD_CMD_CACHE then reads, bytes are the file's"

# Snapshot view snapshot/s1: its chain prefetches through its own L1
# table into the shared cluster cache (the active image has 1 MiB
# rewritten uncompressed, so a prefetch of the active image's mapping
# instead would leave 16 clusters to inflate on read).
cp base.qcow2 snap.qcow2
qemu-img snapshot -c s1 snap.qcow2
qio snap.qcow2 'write -P 0x42 1M 1M'
cache_then_read snap.qcow2 base.raw snapshot/s1
[[ "$stats" == "compressed cluster cache: 1024 hits "*", 64 misses,"* ]] ||
    fail "snap.qcow2 snapshot/s1: expected 64 misses and 1024 hits: $stats"
log "OK snap.qcow2 snapshot/s1: NBD_CMD_CACHE then reads: $stats"
# A JSON view: NBD_CMD_CACHE succeeds (nothing to prefetch) even where
# the document is longer than the disk it describes.
qemu-img create -q -f qcow2 tiny.qcow2 512
plugin_run tiny.qcow2 -- sh -c '"$NC_PY" -c "
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
size = h.get_size()
h.cache(size, 0)
sys.exit(0 if h.pread(size, 0).lstrip().startswith(b\"[\") else \"map.json: not JSON\")
" "nbd+unix:///map.json?socket=$unixsocket"' 2> /dev/null ||
    fail "tiny.qcow2: NBD_CMD_CACHE of map.json failed"
log "OK tiny.qcow2 map.json: NBD_CMD_CACHE of a document longer than the disk"

# 3. A corrupt compressed cluster: NBD_CMD_CACHE fails with EIO like a read.
cp base.qcow2 bad.qcow2
read -r host nbytes <<< "$(compressed_cluster bad.qcow2 $((2 << 20)))"
printf '\xff%.0s' $(seq 1 64) | dd of=bad.qcow2 bs=1 seek="$host" conv=notrunc status=none
export NC_BAD=$((2 << 20))
plugin_run bad.qcow2 -- sh -c '"$NC_PY" -c "
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
off = int(sys.argv[2])
for what, f in ((\"cache\", lambda: h.cache(4096, off)), (\"pread\", lambda: h.pread(4096, off))):
    try:
        f(); sys.exit(what + \" of the corrupt cluster succeeded\")
    except nbd.Error as e:
        if e.errnum != 5: sys.exit(what + \": %s, expected EIO\" % e)
h.cache(4096, 0); h.shutdown()
" "$uri" "$NC_BAD"' 2> /dev/null || fail "bad.qcow2: NBD_CMD_CACHE of a corrupt compressed cluster did not fail with EIO"
grep -q "guest offset $NC_BAD: compressed cluster at host offset" "$PLUGIN_LAST_STDERR" ||
    fail "bad.qcow2: the error does not name the guest offset and the cluster"
log "OK bad.qcow2: NBD_CMD_CACHE and read of a corrupt compressed cluster fail with EIO; the rest caches"
