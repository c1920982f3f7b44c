#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Preallocated images: every cluster has an L2 entry and a host cluster.
#  - preallocation=metadata: host clusters are holes in the file; qemu reports
#    data clusters whose host range is a hole as zero (type 2, not hole), and
#    data where written;
#  - preallocation=falloc and =full;
#  - metadata preallocation with 2M clusters and with a v2 image;
#  - a metadata-preallocated overlay over a backing file (qemu allows that
#    only with extended L2: the preallocated subclusters are marked
#    unallocated, so the backing data still shows through).
source "$(dirname "$0")/functions.sh"

for p in metadata falloc full; do
    img=prealloc-$p.qcow2
    mkimg -o preallocation=$p "$img" 3M
    qio "$img" 'write -P 0x51 0 64k' 'write -P 0x52 1M 4k' 'write -P 0x53 2047k 2k'
    check_image "$img"
done

img=prealloc-metadata-2m.qcow2
mkimg -o preallocation=metadata,cluster_size=2M "$img" 5M
qio "$img" 'write -P 0x54 1M 4k'
check_image "$img"

img=prealloc-metadata-v2.qcow2
mkimg -o preallocation=metadata,compat=0.10 "$img" 2M
qio "$img" 'write -P 0x55 100k 4k'
check_image "$img"

mkimg pbase.qcow2 2M
qio pbase.qcow2 'write -P 0x56 0 2M'
img=prealloc-overlay.qcow2
mkimg -o preallocation=metadata,extended_l2=on -b pbase.qcow2 -F qcow2 "$img"
qio "$img" 'write -P 0x57 64k 4k'
check_image "$img"
