#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Backing chains:
#  - qcow2 over qcow2 over qcow2 (3 layers), each layer overwriting parts of
#    the one below, with zero clusters in the middle layer;
#  - 5 layers mixing versions (v2/v3), cluster sizes (4k..2M), compressed
#    clusters and extended L2;
#  - qcow2 over raw (-F raw), the raw file sparse (holes read as zeros and,
#    as in qemu, are reported hole+zero), and qcow2 over qcow2 over raw.
source "$(dirname "$0")/functions.sh"

# --- 3 layers
mkimg l3-base.qcow2 4M
qio l3-base.qcow2 'write -P 0x01 0 4M'
mkimg -b l3-base.qcow2 -F qcow2 l3-mid.qcow2
qio l3-mid.qcow2 'write -P 0x02 64k 128k' 'write -z 1M 128k' 'write -P 0x02 2M 4k' 'discard 3M 64k'
mkimg -b l3-mid.qcow2 -F qcow2 l3-top.qcow2
qio l3-top.qcow2 'write -P 0x03 100k 8k' 'write -P 0x03 1056k 4k' 'write -z 2M 64k' 'write -P 0x03 4095k 1k'
check_image l3-top.qcow2
check_image l3-mid.qcow2

# --- 5 layers, mixed formats
mkimg -o compat=0.10,cluster_size=4k l5-1.qcow2 6M
qio l5-1.qcow2 'write -P 0x11 0 6M'
mkimg -o cluster_size=64k -b l5-1.qcow2 -F qcow2 l5-2.qcow2
qio l5-2.qcow2 'write -P 0x22 0 1M' 'write -c -P 0x23 2M 128k' 'write -z 3M 1M'
mkimg -o cluster_size=2M -b l5-2.qcow2 -F qcow2 l5-3.qcow2
qio l5-3.qcow2 'write -P 0x33 512k 4k' 'write -P 0x34 4M 1k'
mkimg -o extended_l2=on -b l5-3.qcow2 -F qcow2 l5-4.qcow2
qio l5-4.qcow2 'write -P 0x44 6k 2k' 'write -z 520k 2k' 'write -P 0x45 3200k 4k' 'write -z 4100k 8k'
mkimg -o compat=0.10,cluster_size=512 -b l5-4.qcow2 -F qcow2 l5-5.qcow2
qio l5-5.qcow2 'write -P 0x55 7k 1k' 'write -P 0x56 3M 512' 'write -P 0x57 6143k 1k'
check_image l5-5.qcow2

# --- qcow2 over raw
truncate -s 3M raw-base.raw
qemu-io -f raw raw-base.raw -c 'write -P 0x61 0 1M' -c 'write -P 0x62 2M 64k' > /dev/null
mkimg -b raw-base.raw -F raw over-raw.qcow2
qio over-raw.qcow2 'write -P 0x63 512k 64k' 'write -z 2M 4k' 'write -P 0x64 2500k 4k'
check_image over-raw.qcow2

mkimg -b over-raw.qcow2 -F qcow2 over-over-raw.qcow2
qio over-over-raw.qcow2 'write -P 0x65 1M 64k' 'discard 0 64k'
check_image over-over-raw.qcow2
