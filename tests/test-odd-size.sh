#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Virtual sizes that are not a multiple of the cluster size, with data in the
# last, partial cluster.  (qcow2 sizes are rounded up to 512 bytes by qemu-img:
# 1000000 -> 1000448.)
source "$(dirname "$0")/functions.sh"

# 1000000 bytes, 64k clusters: last cluster holds 17920 bytes of disk.
img=odd-1000000.qcow2
mkimg "$img" 1000000
size=$(qemu-img info --output=json "$img" | jq '.["virtual-size"]')
qio "$img" 'write -P 0x5a 0 1000' "write -P 0xa5 $((size - 4096)) 4096" "write -P 0x3c 983040 512"
check_image "$img"

# 3M+512 with 64k clusters: one sector in the last cluster, written.
img=odd-3m512.qcow2
mkimg "$img" $((3 * 1048576 + 512))
qio "$img" 'write -P 0x71 3M 512' 'write -P 0x72 1M 64k'
check_image "$img"

# 3M+512 with 2M clusters, v2: the last cluster is mostly beyond the disk end.
img=odd-3m512-2m-v2.qcow2
mkimg -o compat=0.10,cluster_size=2M "$img" $((3 * 1048576 + 512))
qio "$img" "write -P 0x81 $((3 * 1048576 - 1024)) 1536"
check_image "$img"

# Odd size, nothing written in the last partial cluster (hole at the end).
img=odd-hole-end.qcow2
mkimg -o cluster_size=4k "$img" $((5 * 1048576 + 1536))
qio "$img" 'write -P 0x91 0 4k'
check_image "$img"
