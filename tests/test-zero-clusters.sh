#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Zero clusters and unallocated clusters:
#  - v3: "write -z" over data keeps the host cluster (L2 zero flag + host
#    offset, qemu's ZERO_ALLOC); "write -z -u" and "discard" give a zero flag
#    without host offset (ZERO_PLAIN); partial-cluster "write -z" writes zero
#    bytes as data; never-written clusters are unallocated;
#  - v2 (no zero flag): the same commands give data or unallocated clusters;
#  - zero clusters and discards in an overlay hiding the backing file's data,
#    and unallocated overlay clusters showing it.
source "$(dirname "$0")/functions.sh"

ops=(
    'write -P 0xaa 0 768k'
    'write -z 0 64k'            # ZERO_ALLOC (v3)
    'write -z -u 128k 64k'      # ZERO_PLAIN (v3)
    'discard 256k 64k'          # ZERO_PLAIN (v3, qemu keeps a zero flag)
    'write -z 384k 4k'          # partial: zero bytes as data
    'write -z 448k 128k'        # two whole clusters
    'write -P 0xbb 450k 2k'     # data again inside a zero cluster
    'write -z 1M 64k'           # zero over a never-written cluster
    'write -z 1500k 100k'       # unaligned: partial clusters + whole cluster
)

for compat in 1.1 0.10; do
    img=zeros-compat$compat.qcow2
    mkimg -o compat=$compat "$img" 2M
    qio "$img" "${ops[@]}"
    check_image "$img"
done

# Check that the v3 image really has both kinds of zero clusters
# (qemu-img map: zero with and without a host offset).
zmap=$(qemu-img map --output=json zeros-compat1.1.qcow2)
echo "$zmap" | jq -e '[.[] | select(.zero and .present and has("offset"))] | length > 0' > /dev/null ||
    hard_error "recipe no longer produces a zero cluster with a host offset"
echo "$zmap" | jq -e '[.[] | select(.zero and .present and (has("offset") | not))] | length > 0' > /dev/null ||
    hard_error "recipe no longer produces a zero cluster without a host offset"

# Overlays over a backing file full of data.
for compat in 1.1 0.10; do
    base=zbase-$compat.qcow2 top=ztop-$compat.qcow2
    mkimg -o compat=$compat "$base" 2M
    qio "$base" 'write -P 0x5b 0 2M'
    mkimg -o compat=$compat -b "$base" -F qcow2 "$top"
    qio "$top" \
        'write -z 0 64k' \
        'write -P 0x6c 128k 64k' 'write -z 128k 64k' \
        'discard 256k 64k' \
        'write -z 400k 4k' \
        'write -z -u 512k 128k' \
        'write -P 0x7d 1M 8k' \
        'write -z 1030k 2k'
    check_image "$top"
done
