#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Version 2 (compat=0.10) and version 3 (compat=1.1) images with data written
# by qemu-io at various offsets, including partial-cluster writes, data
# overwritten, and writes straddling cluster and L2-table boundaries.
source "$(dirname "$0")/functions.sh"

writes=(
    'write -P 0xab 0 64k'          # exactly one cluster
    'write -P 0x12 1M 4k'          # partial cluster
    'write -P 0x34 1536k 512'      # one sector
    'write -P 0x56 2047k 2k'       # straddles a cluster boundary
    'write -P 0x78 3000000 100000' # unaligned start and length
    'write -P 0x9a 4M 256k'        # several clusters
    'write -P 0xcd 4160k 8k'       # overwrite inside the previous write
    'write -P 0x00 5M 64k'         # data that is all zero bytes
    'write -P 0xef 8191k 1k'       # last KiB of the disk
)

for compat in 0.10 1.1; do
    img=basic-compat$compat.qcow2
    mkimg -o compat=$compat "$img" 8M
    qio "$img" "${writes[@]}"
    check_image "$img"
done

# Empty images (nothing allocated at all), v2 and v3.
for compat in 0.10 1.1; do
    img=empty-compat$compat.qcow2
    mkimg -o compat=$compat "$img" 3M
    check_image "$img"
done

# A fully written v3 image (every cluster allocated, non-sequential order of
# allocation so host offsets are not monotonic).
img=full.qcow2
mkimg "$img" 2M
cmds=()
for i in 31 7 0 12 30 1 25 19 3 8 2 4 5 6 9 10 11 13 14 15 16 17 18 20 21 22 23 24 26 27 28 29; do
    cmds+=("write -P $((i + 1)) $((i * 64))k 64k")
done
qio "$img" "${cmds[@]}"
check_image "$img"
