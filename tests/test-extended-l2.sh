#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Extended L2 entries (incompatible feature bit 4): 32 subclusters per cluster,
# each allocated / zero / unallocated on its own.
#  - 64k clusters (2k subclusters) and 32k clusters (1k subclusters), with 4k
#    writes at odd offsets, sub-subcluster writes, zeroed subclusters;
#  - over a backing file, so unallocated subclusters show the backing data
#    while their neighbours in the same cluster are the overlay's own;
#  - a standalone image, and compressed clusters in an extended-L2 image.
source "$(dirname "$0")/functions.sh"

ops=(
    'write -P 0x01 4k 4k'          # subclusters 2-3 of cluster 0 (64k)
    'write -P 0x02 67k 1k'         # inside one 2k subcluster (COW within it)
    'write -P 0x03 130k 6k'        # three subclusters
    'write -z 200k 2k'             # one zero subcluster
    'write -z 260k 10k'            # zero subclusters, unaligned to 2k
    'write -P 0x04 320k 64k'       # a whole cluster
    'write -z 330k 4k'             # zero subclusters inside allocated cluster
    'write -P 0x05 513k 4k'        # odd offset crossing a subcluster boundary
    'discard 320k 2k'              # discard one subcluster
    'write -P 0x06 1020k 4k'       # last subclusters of the disk
)

mkimg extl2-base.qcow2 1M
qio extl2-base.qcow2 'write -P 0xb0 0 1M'

for cs in 64k 32k; do
    top=extl2-$cs-top.qcow2
    mkimg -o extended_l2=on,cluster_size=$cs -b extl2-base.qcow2 -F qcow2 "$top"
    qio "$top" "${ops[@]}"
    [ $(( $(qcow2_incompat "$top") & 16 )) -ne 0 ] || hard_error "$top lacks the extended L2 bit"
    check_image "$top"

    solo=extl2-$cs-solo.qcow2
    mkimg -o extended_l2=on,cluster_size=$cs "$solo" 1M
    qio "$solo" "${ops[@]}"
    check_image "$solo"
done

# Extended L2 overlay over another extended L2 image (subclusters at both levels).
mkimg -o extended_l2=on -b extl2-64k-solo.qcow2 -F qcow2 extl2-stack.qcow2
qio extl2-stack.qcow2 'write -P 0x07 6k 2k' 'write -z 134k 2k' 'write -P 0x08 700k 3k'
check_image extl2-stack.qcow2

# Compressed clusters in an extended L2 image, then partly overwritten.
mkimg -o extended_l2=on extl2-comp.qcow2 1M
qio extl2-comp.qcow2 'write -c -P 0x09 0 128k' 'write -c -P 0x0a 256k 64k' 'write -P 0x0b 260k 2k'
check_image extl2-comp.qcow2
