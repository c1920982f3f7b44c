#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Compressed clusters: qemu-img convert -c from a raw file with mixed content
# (patterns, incompressible random data that qemu stores uncompressed, zero
# regions, clusters only partly zero), zlib and zstd, cluster sizes 512 to 2M,
# v2; compressed clusters partly overwritten (COW to normal clusters);
# compressed clusters written by qemu-io "write -c" in an overlay.
source "$(dirname "$0")/functions.sh"

# assert_compressed IMG : the image really contains compressed clusters.
assert_compressed() {
    local c; c=$(qemu-img check --output=json "$1" | jq '."compressed-clusters" // 0')
    [ "$c" -gt 0 ] || hard_error "$1 has no compressed clusters (recipe broken)"
    log "$1: $c compressed clusters (qemu-img check)"
}

# The raw source: 4M.
truncate -s 4M src.raw
qemu-io -f raw src.raw \
    -c 'write -P 0x11 0 200k' \
    -c 'write -P 0x22 256k 64k' \
    -c 'write -P 0x33 600k 1k' \
    -c 'write -P 0x44 1M 1M' \
    -c 'write -P 0x55 3M 3k' \
    -c 'write -P 0x66 4095k 1k' > /dev/null
head -c 200k /dev/urandom | dd of=src.raw bs=1k seek=2200 conv=notrunc status=none
# A cluster-sized run of text: compressible but not uniform.
seq 1 20000 > text.txt
head -c 100k text.txt | dd of=src.raw bs=1k seek=2600 conv=notrunc status=none

n=0
for opts in cluster_size=64k cluster_size=4k cluster_size=512 cluster_size=2M \
            compat=0.10 compression_type=zstd compression_type=zstd,cluster_size=4k; do
    n=$((n + 1))
    img=comp-$n.qcow2
    qemu-img convert -c -f raw -O qcow2 -o "$opts" src.raw "$img"
    log "image $img: -o $opts"
    assert_compressed "$img"
    check_image "$img"
done
qemu-img info comp-6.qcow2 | grep -q 'compression type: zstd' || hard_error "zstd image is not zstd"

# Mixed compressed and normal clusters: overwrite parts of compressed ones.
for ct in zlib zstd; do
    img=mixed-$ct.qcow2
    qemu-img convert -c -f raw -O qcow2 -o compression_type=$ct src.raw "$img"
    qio "$img" 'write -P 0x77 0 4k' 'write -P 0x88 1100k 64k' 'write -z 1300k 128k' \
        'discard 1536k 64k' 'write -P 0x99 2250k 1k'
    assert_compressed "$img"
    check_image "$img"
done

# Compressed clusters in an overlay (qemu-io write -c), over a backing file.
mkimg cbase.qcow2 1M
qio cbase.qcow2 'write -P 0xc1 0 1M'
mkimg -b cbase.qcow2 -F qcow2 ctop.qcow2
qio ctop.qcow2 'write -c -P 0xc2 64k 64k' 'write -c -P 0xc3 256k 128k' 'write -P 0xc4 260k 1k'
assert_compressed ctop.qcow2
check_image ctop.qcow2
