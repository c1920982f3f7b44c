#!/usr/bin/env bash
# The l2-cache-size parameter (default 32M, minimum 1M):
#  - 512-byte clusters (512-byte L2 tables, each mapping 32k), 72M disk with
#    2304 writes each in its own L2 table: 1.125M of L2 tables, more than a
#    1M cache holds, so a sequential read evicts tables all the time;
#  - 2M clusters (one L2 table = 2M, larger than the 1M cache), 2T sparse;
#  - a 3-layer chain of 4k-cluster images sharing one 1M cache;
#  - values below the minimum, or not sizes, are refused at startup.
source "$(dirname "$0")/functions.sh"

img=many-l2.qcow2
mkimg -o cluster_size=512 "$img" 72M
cmds=()
for ((i = 0; i < 2304; i++)); do
    cmds+=("write -P $((i % 255 + 1)) $((i * 32768 + (i * 512) % 32768)) 512")
done
qio "$img" "${cmds[@]}"
check_image "$img" l2-cache-size=1M

img=big-l2.qcow2
mkimg -o cluster_size=2M "$img" 2T
qio "$img" 'write -P 0x61 0 4k' "write -P 0x62 $((1 << 40)) 4k" "write -P 0x63 $(((2 << 40) - 4096)) 4k"
check_image_sparse "$img" l2-cache-size=1M

mkimg -o cluster_size=4k c1.qcow2 64M
cmds=(); for ((i = 0; i < 64; i++)); do cmds+=("write -P 0x71 $((i * 1048576)) 12k"); done
qio c1.qcow2 "${cmds[@]}"
mkimg -o cluster_size=4k -b c1.qcow2 -F qcow2 c2.qcow2
cmds=(); for ((i = 0; i < 32; i++)); do cmds+=("write -P 0x72 $((i * 2097152 + 8192)) 4k"); done
qio c2.qcow2 "${cmds[@]}"
mkimg -o cluster_size=4k -b c2.qcow2 -F qcow2 c3.qcow2
cmds=(); for ((i = 0; i < 32; i++)); do cmds+=("write -z $((i * 2097152 + 65536)) 4k"); done
qio c3.qcow2 "${cmds[@]}"
check_image c3.qcow2 l2-cache-size=1M

expect_startup_error c3.qcow2 'l2-cache-size' '.' l2-cache-size=4k
expect_startup_error c3.qcow2 'l2-cache-size|size' '.' l2-cache-size=lots
