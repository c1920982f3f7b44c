#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Large sparse disks: 2T (64k clusters), 4T (64k clusters, v2) and 4T (2M
# clusters), with a few writes near the start, the middle and the end.
#
# Copying terabytes is impossible, so check_image_sparse compares:
#  - the whole merged map (plugin vs qemu-nbd) and the export size;
#  - the bytes of every data extent of qemu's map plus the first and last
#    64 KiB of every hole, read through the plugin and through qemu with
#    qemu-img dd (bs/skip/count) -- see functions.sh;
# and expect_reads checks the written patterns (and zeroes around them)
# through the plugin with qemu-io "read -P" in one connection.
source "$(dirname "$0")/functions.sh"

T=$((1 << 40))

img=sparse-2t.qcow2
mkimg "$img" 2T
qio "$img" 'write -P 0xa1 0 64k' 'write -P 0xa2 1M 4k' \
    "write -P 0xa3 $((T - 2048)) 4k" "write -P 0xa4 $((2 * T - 65536)) 64k"
check_image_sparse "$img"
expect_reads "$img" -- "ok:0:64k:0xa1" "ok:1M:4k:0xa2" "ok:$((1048576 + 4096)):60k:0x00" \
    "ok:$((T - 2048)):4k:0xa3" "ok:$((2 * T - 65536)):64k:0xa4" "ok:$((T + 1048576)):1M:0x00"

img=sparse-4t-v2.qcow2
mkimg -o compat=0.10 "$img" 4T
qio "$img" 'write -P 0xb1 512 1k' "write -P 0xb2 $((2 * T)) 128k" \
    "write -P 0xb3 $((4 * T - 4096)) 4k"
check_image_sparse "$img"
expect_reads "$img" -- "ok:512:1k:0xb1" "ok:$((2 * T)):128k:0xb2" "ok:$((4 * T - 4096)):4k:0xb3" \
    "ok:$((4 * T - 65536)):60k:0x00"

img=sparse-4t-2m.qcow2
mkimg -o cluster_size=2M "$img" 4T
qio "$img" 'write -P 0xc1 0 4k' "write -P 0xc2 $((2 * T - 4096)) 8k" \
    "write -P 0xc3 $((4 * T - 512)) 512"
check_image_sparse "$img"
expect_reads "$img" -- "ok:0:4k:0xc1" "ok:$((2 * T - 4096)):8k:0xc2" "ok:$((4 * T - 512)):512:0xc3"
