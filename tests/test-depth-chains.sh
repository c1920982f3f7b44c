#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Depth filter over 10 distinct backing chains:
#  - depth.json against qemu's qemu:allocation-depth map (qemu-nbd -A);
#  - for every depth d in 0..N, depth/d bytes against the guest bytes
#    (qemu-img convert) masked by qemu's depth map, and depth/d's
#    base:allocation against qemu-nbd's base:allocation with the depth view
#    rules (outside: hole,zero; inside: qemu's type, but zeros a layer
#    provides are zero without hole);
#  - range views depth/0-N, depth/1-2 (and more) the same way.
# See check_chain in depth-functions.sh.
depth_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$depth_testsdir/functions.sh"
source "$depth_testsdir/depth-functions.sh"

# assert_type MAP OFFSET TYPE WHAT
assert_type() {
    local t; t=$(map_type_at "$1" "$2")
    [ "$t" = "$3" ] || { show_file "$1"; fail "$4: type at offset $2 is $t, expected $3"; }
    log "   $4: offset $2 has type $3 as expected"
}

# qio_raw IMG CMD... : qemu-io on a raw image.
qio_raw() {
    local img=$1 c args=(); shift
    for c in "$@"; do args+=(-c "$c"); done
    qemu-io -f raw "${args[@]}" "$img" > "$TESTDIR/qemu-io.log" 2>&1 ||
        { show_file "$TESTDIR/qemu-io.log"; hard_error "qemu-io failed on $img"; }
}

chains=0

# ---- 1. qcow2 over qcow2 over qcow2
log "chain 1: qcow2 <- qcow2 <- qcow2"
mkimg c1-base.qcow2 2M
qio c1-base.qcow2 'write -P 0x11 0 1M' 'write -P 0x12 1536k 100k'
mkimg -b c1-base.qcow2 -F qcow2 c1-mid.qcow2
qio c1-mid.qcow2 'write -P 0x21 64k 192k' 'write -P 0x22 1M 128k' 'write -P 0x23 1900k 1k'
mkimg -b c1-mid.qcow2 -F qcow2 c1-top.qcow2
qio c1-top.qcow2 'write -P 0x31 0 64k' 'write -P 0x32 128k 64k' 'write -P 0x33 1100k 300k' \
    'write -P 0x34 2047k 1k'
check_chain c1-top.qcow2 1-2 2-3 1-1
chains=$((chains + 1))

# ---- 2. qcow2 over raw (raw with data and holes)
log "chain 2: raw <- qcow2"
truncate -s 2M c2-base.raw
qio_raw c2-base.raw 'write -P 0x41 0 128k' 'write -P 0x42 300k 8k' 'write -P 0x43 1M 200k' \
    'write -P 0x44 2044k 4k'
mkimg -b c2-base.raw -F raw c2-top.qcow2
qio c2-top.qcow2 'write -P 0x51 64k 128k' 'write -z 1088k 64k' 'write -P 0x52 1600k 10k'
check_chain c2-top.qcow2 1-2
chains=$((chains + 1))
# A hole of the raw layer inside depth/2 is "zero" (not hole): 512k is in a
# raw hole, not touched by the overlay.
assert_type "$CHAIN_TAG.view-2.map" $((512 * 1024)) 2 "depth/2 over a raw hole"
assert_type "$CHAIN_TAG.view-1.map" $((512 * 1024)) 3 "depth/1 over a raw hole"

# ---- 3. zero clusters and discards over backing data
log "chain 3: zero clusters and discards (qcow2 <- qcow2 <- qcow2)"
mkimg c3-base.qcow2 2M
qio c3-base.qcow2 'write -P 0x5b 0 2M'
mkimg -b c3-base.qcow2 -F qcow2 c3-mid.qcow2
qio c3-mid.qcow2 'write -P 0x61 0 512k' 'write -z 512k 64k' 'discard 640k 64k' \
    'write -z 768k 4k'
mkimg -b c3-mid.qcow2 -F qcow2 c3-top.qcow2
qio c3-top.qcow2 \
    'write -z 0 64k' \
    'write -P 0x71 128k 64k' 'write -z 128k 64k' \
    'discard 256k 64k' \
    'write -z -u 384k 128k' \
    'write -z 1M 64k' \
    'discard 1200k 10k' \
    'write -P 0x72 1500k 64k' \
    'write -z 1800k 2k'
check_chain c3-top.qcow2 1-2 2-3
chains=$((chains + 1))
# qemu calls the zero clusters of the top "hole,zero"; in depth/1 they are "zero".
for off in 0 $((128 * 1024)) $((256 * 1024)) $((384 * 1024)) $((1024 * 1024)); do
    [ "$(map_type_at "$CHAIN_TAG.qalloc.map" "$off")" = 3 ] ||
        hard_error "recipe: qemu no longer reports hole,zero at $off"
    assert_type "$CHAIN_TAG.view-1.map" "$off" 2 "depth/1, zero cluster of the top"
    assert_type "$CHAIN_TAG.view-2.map" "$off" 3 "depth/2, hidden by a zero cluster of the top"
done
assert_type "$CHAIN_TAG.view-2.map" $((512 * 1024)) 2 "depth/2, zero cluster of the middle layer"
assert_type "$CHAIN_TAG.view-2.map" $((640 * 1024)) 2 "depth/2, discarded cluster of the middle layer"
assert_type "$CHAIN_TAG.view-1-2.map" $((512 * 1024)) 2 "depth/1-2, zero cluster of the middle layer"

# ---- 4. backing files shorter than their overlays
log "chain 4: short backing files (300k <- 640k <- 2M)"
mkimg c4-base.qcow2 300k
qio c4-base.qcow2 'write -P 0x81 0 300k'
mkimg -b c4-base.qcow2 -F qcow2 c4-mid.qcow2 640k
qio c4-mid.qcow2 'write -P 0x82 64k 64k' 'write -P 0x83 500k 20k'
mkimg -b c4-mid.qcow2 -F qcow2 c4-top.qcow2 2M
qio c4-top.qcow2 'write -P 0x91 0 32k' 'write -P 0x92 700k 100k' 'write -P 0x93 1900k 148k'
check_chain c4-top.qcow2 1-2 2-3
chains=$((chains + 1))
# Zeros past the end of a short backing file belong to that backing file:
# 1M is past the end of c4-mid (640k), 350k past the end of c4-base (300k).
[ "$(map_type_at "$CHAIN_TAG.qdepth.map" $((1024 * 1024)))" = 2 ] &&
[ "$(map_type_at "$CHAIN_TAG.qdepth.map" $((350 * 1024)))" = 3 ] ||
    hard_error "recipe: qemu's depth past the end of the short backing files changed"
assert_type "$CHAIN_TAG.view-2.map" $((1024 * 1024)) 2 "depth/2, past the end of the middle layer"
assert_type "$CHAIN_TAG.view-3.map" $((350 * 1024)) 2 "depth/3, past the end of the base"
assert_type "$CHAIN_TAG.view-1.map" $((1024 * 1024)) 3 "depth/1, past the end of the middle layer"

# ---- 5. relative backing paths across directories
log "chain 5: relative backing paths (c/d/top -> ../../b/mid -> ../a/base)"
mkdir -p c5/a c5/b c5/c/d
mkimg c5/a/base.qcow2 1M
qio c5/a/base.qcow2 'write -P 0xa1 0 1M'
(cd c5/b && mkimg -b ../a/base.qcow2 -F qcow2 mid.qcow2)
qio c5/b/mid.qcow2 'write -P 0xa2 256k 256k'
(cd c5/c/d && mkimg -b ../../b/mid.qcow2 -F qcow2 top.qcow2)
qio c5/c/d/top.qcow2 'write -P 0xa3 448k 128k' 'write -z 0 64k'
# Served from the test directory: names resolve relative to each image.
check_chain c5/c/d/top.qcow2 1-2
chains=$((chains + 1))

# ---- 6. five layers with different cluster sizes
log "chain 6: 5 layers, clusters 4k <- 64k <- 512 <- 32k (extended L2) <- 2M"
mkimg -o cluster_size=4k c6-l5.qcow2 4M
qio c6-l5.qcow2 'write -P 0xb5 0 4M'
mkimg -o cluster_size=64k -b c6-l5.qcow2 -F qcow2 c6-l4.qcow2
qio c6-l4.qcow2 'write -P 0xb4 100k 300k' 'write -z 2M 64k'
mkimg -o cluster_size=512 -b c6-l4.qcow2 -F qcow2 c6-l3.qcow2
qio c6-l3.qcow2 'write -P 0xb3 1000 3000' 'write -P 0xb3 200k 1k' 'write -z 3M 1536'
mkimg -o cluster_size=32k,extended_l2=on -b c6-l3.qcow2 -F qcow2 c6-l2.qcow2
qio c6-l2.qcow2 'write -P 0xb2 3k 2k' 'write -P 0xb2 64k 32k' 'write -z 1M 4k'
mkimg -o cluster_size=2M -b c6-l2.qcow2 -F qcow2 c6-l1.qcow2
qio c6-l1.qcow2 'write -P 0xb1 2M 4k'
check_chain c6-l1.qcow2 1-2 2-4 3-5
chains=$((chains + 1))

# ---- 7. a compressed layer
log "chain 7: compressed base <- qcow2 <- qcow2 with compressed clusters"
truncate -s 1M c7-src.raw
qio_raw c7-src.raw 'write -P 0xc1 0 512k' 'write -P 0xc2 700k 100k'
qemu-img convert -q -c -f raw -O qcow2 c7-src.raw c7-base.qcow2
qemu-img map --output=json c7-base.qcow2 > /dev/null
mkimg -b c7-base.qcow2 -F qcow2 c7-mid.qcow2
qio c7-mid.qcow2 'write -P 0xc3 128k 64k'
mkimg -b c7-mid.qcow2 -F qcow2 c7-top.qcow2
qio c7-top.qcow2 'write -c -P 0xc4 256k 64k' 'write -c -P 0x00 960k 64k' 'write -P 0xc5 300k 1k'
check_chain c7-top.qcow2 1-2 2-3
chains=$((chains + 1))

# ---- 8. extended L2, subcluster writes over a backing file
log "chain 8: extended L2 overlay (64k clusters, 2k subclusters) over data"
mkimg c8-base.qcow2 1M
qio c8-base.qcow2 'write -P 0xd1 0 1M'
mkimg -o extended_l2=on,cluster_size=64k -b c8-base.qcow2 -F qcow2 c8-top.qcow2
qio c8-top.qcow2 \
    'write -P 0xd2 2k 2k' \
    'write -P 0xd3 10k 4k' \
    'write -z 16k 2k' \
    'discard 64k 4k' \
    'write -P 0xd4 128k 2k' 'write -z -u 132k 4k' \
    'write -P 0xd5 192k 64k' \
    'write -z 320k 64k' \
    'write -P 0xd6 1022k 2k'
check_chain c8-top.qcow2
chains=$((chains + 1))
assert_type "$CHAIN_TAG.view-1.map" $((16 * 1024)) 2 "depth/1, zero subcluster"
assert_type "$CHAIN_TAG.view-1.map" $((18 * 1024)) 3 "depth/1, subcluster left to the backing file"

# ---- 9. a v2 (compat=0.10) overlay: no zero flag
log "chain 9: compat=0.10 overlay over a v3 image"
mkimg c9-base.qcow2 1M
qio c9-base.qcow2 'write -P 0xe1 0 768k'
mkimg -o compat=0.10 -b c9-base.qcow2 -F qcow2 c9-top.qcow2
qio c9-top.qcow2 'write -P 0xe2 64k 64k' 'write -z 256k 64k' 'write -P 0xe3 900k 4k'
check_chain c9-top.qcow2
chains=$((chains + 1))

# ---- 10. a single image (no backing file)
log "chain 10: a single image"
mkimg c10.qcow2 1M
qio c10.qcow2 'write -P 0xf1 4k 60k' 'write -z 128k 64k' 'write -P 0xf2 1000k 24k'
check_chain c10.qcow2
chains=$((chains + 1))

log "PASS: $chains chains"
