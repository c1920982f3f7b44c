#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Incremental backup round trip with the depth filter.
# From a chain base <- mid <- top:
#   1. nbdcopy depth/1 (the top layer's contribution) into a sparse delta.raw,
#      and read depth/1's base:allocation and depth.json;
#   2. rebuild an overlay of mid: qemu-img create -b mid.qcow2 rebuilt.qcow2,
#      then for every extent of depth/1 that is data (type 0) write the
#      delta's bytes (qemu-io write -s), and for every extent that is zero
#      but not hole (type 2: zeros the top layer provides, i.e. its zero
#      clusters) write zeros (qemu-io write -z); hole,zero extents (type 3:
#      not the top's) are left to the backing file;
#   3. qemu-img compare top.qcow2 rebuilt.qcow2 must say identical, and the
#      allocation depth map of rebuilt (qemu-nbd -A, and depth.json) must be
#      top's.
depth_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$depth_testsdir/functions.sh"
source "$depth_testsdir/depth-functions.sh"

size=$((2 * 1024 * 1024))
mkimg base.qcow2 $size
qio base.qcow2 'write -P 0x11 0 1536k' 'write -P 0x12 1900k 100k'
mkimg -b base.qcow2 -F qcow2 mid.qcow2
qio mid.qcow2 'write -P 0x21 64k 256k' 'write -z 512k 64k' 'discard 640k 64k' 'write -P 0x22 1M 64k'
mkimg -b mid.qcow2 -F qcow2 top.qcow2
qio top.qcow2 \
    'write -P 0x31 0 64k' \
    'write -z 128k 64k' \
    'discard 256k 64k' \
    'write -z -u 448k 128k' \
    'write -P 0x32 700k 4k' \
    'write -c -P 0x33 832k 64k' \
    'write -P 0x34 1M 32k' 'write -z 1088k 64k' \
    'write -P 0x00 1280k 64k' \
    'write -P 0x35 2040k 8k'

# 1. Extract the delta.
export BK_DIR=$TESTDIR
depth_run top.qcow2 -- bash -c '
    set -e
    q=${uri#*\?}
    nbdcopy "nbd+unix:///depth/1?$q" "$BK_DIR/delta.raw"
    nbdinfo --json --map "nbd+unix:///depth/1?$q" > "$BK_DIR/delta-map.json"
    nbdcopy "nbd+unix:///depth.json?$q" "$BK_DIR/top-depth.json"' ||
    fail "extracting depth/1 of top.qcow2 failed"
[ "$(stat -c %s delta.raw)" -eq $size ] || fail "delta.raw has $(stat -c %s delta.raw) bytes, expected $size"
map_normalize < delta-map.json > delta.map
depth_normalize < top-depth.json > top-depth.map
log "extracted depth/1: $(map_summary delta.map); delta.raw uses $(du -k delta.raw | cut -f1) KiB on disk for $((size / 1024)) KiB"

# The data and zero extents of depth/1 are exactly the depth-1 extents.
awk '$3 != 3 { print $1, $2 }' delta.map | awk '
    NR > 1 && o + l == $1 { l += $2; next }
    NR > 1 { print o, l } { o = $1; l = $2 } END { if (NR) print o, l }' > delta-extents
awk '$3 == 1 { print $1, $2 }' top-depth.map > depth1-extents
compare_files depth1-extents delta-extents "depth-1 extents of depth.json vs non-hole extents of depth/1"
[ -s depth1-extents ] || hard_error "recipe: top.qcow2 has no depth-1 extents"
grep -q ' 2$' delta.map || hard_error "recipe: depth/1 has no zero (type 2) extents"

# 2. Rebuild an overlay of mid from the delta.
mkimg -b mid.qcow2 -F qcow2 rebuilt.qcow2 $size
cmds=()
ndata=0 nzero=0
mkdir -p ext
while read -r off len type; do
    case "$type" in
        0)  dd if=delta.raw of="ext/$off" bs=65536 iflag=skip_bytes,count_bytes \
               skip="$off" count="$len" status=none || hard_error "dd failed"
            cmds+=("write -s ext/$off $off $len"); ndata=$((ndata + 1)) ;;
        2)  cmds+=("write -z $off $len"); nzero=$((nzero + 1)) ;;
        3)  ;;
        *)  fail "depth/1 has an extent of type $type at $off" ;;
    esac
done < delta.map
qio rebuilt.qcow2 "${cmds[@]}"
log "rebuilt.qcow2 over mid.qcow2: $ndata data extents written from delta.raw, $nzero zero extents written with write -z"

# 3. Same guest disk, same allocation depth.
qemu-img compare -f qcow2 -F qcow2 top.qcow2 rebuilt.qcow2 > compare.out 2>&1 ||
    { show_file compare.out; fail "qemu-img compare: rebuilt.qcow2 differs from top.qcow2"; }
grep -q '^Images are identical' compare.out || { show_file compare.out; fail "qemu-img compare did not say identical"; }
log "OK qemu-img compare top.qcow2 rebuilt.qcow2: $(cat compare.out)"

for img in top rebuilt; do
    qemu_nbd_start "$img.qcow2" -A
    nbdinfo --json --map=qemu:allocation-depth "$QEMU_NBD_URI" > "$img.qdepth.json" ||
        fail "nbdinfo --map=qemu:allocation-depth failed on $img.qcow2"
    qemu_nbd_stop
    depth_normalize < "$img.qdepth.json" > "$img.qdepth.map"
done
compare_files top.qdepth.map rebuilt.qdepth.map "qemu's allocation depth map: top.qcow2 vs rebuilt.qcow2"
log "OK qemu:allocation-depth of rebuilt.qcow2 == top.qcow2's: $(depth_summary top.qdepth.map)"

depth_run rebuilt.qcow2 -- bash -c 'nbdcopy "nbd+unix:///depth.json?${uri#*\?}" "$BK_DIR/rebuilt-depth.json"' ||
    fail "reading depth.json of rebuilt.qcow2 failed"
if ! cmp -s top-depth.json rebuilt-depth.json; then
    diff -u top-depth.json rebuilt-depth.json >&2 || true
    fail "depth.json of rebuilt.qcow2 differs from top.qcow2's"
fi
compare_files top.qdepth.map top-depth.map "depth.json of top.qcow2 vs qemu's map"
log "OK depth.json of rebuilt.qcow2 is byte-identical to top.qcow2's ($(stat -c %s top-depth.json) bytes)"
