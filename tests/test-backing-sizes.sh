#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Backing files whose size differs from the overlay's:
#  - backing shorter than the overlay: past the backing's end the overlay's
#    unallocated clusters read as zeros (including the partial cluster where
#    the backing ends, for a backing whose size is not a cluster multiple);
#  - backing longer than the overlay: the overlay's size wins;
#  - raw backing shorter than the overlay, with a size that is not even a
#    multiple of 512 (1000001 bytes).
source "$(dirname "$0")/functions.sh"

mkimg short-base.qcow2 1M
qio short-base.qcow2 'write -P 0x91 0 1M'
mkimg -b short-base.qcow2 -F qcow2 short-top.qcow2 3M
qio short-top.qcow2 'write -P 0x92 64k 4k' 'write -P 0x93 2M 64k'
check_image short-top.qcow2

mkimg short-odd-base.qcow2 1000000
qio short-odd-base.qcow2 'write -P 0x94 0 1000448'
mkimg -b short-odd-base.qcow2 -F qcow2 short-odd-top.qcow2 2M
qio short-odd-top.qcow2 'write -P 0x95 1500k 4k'
check_image short-odd-top.qcow2

mkimg long-base.qcow2 4M
qio long-base.qcow2 'write -P 0x96 0 4M'
mkimg -b long-base.qcow2 -F qcow2 long-top.qcow2 1M
qio long-top.qcow2 'write -P 0x97 512k 4k'
check_image long-top.qcow2

# Shrunk overlay over a long backing, size not a cluster multiple.
mkimg -b long-base.qcow2 -F qcow2 long-odd-top.qcow2 $((1048576 + 1536))
qio long-odd-top.qcow2 'write -P 0x98 1M 512'
check_image long-odd-top.qcow2

# Raw backing of 1000001 bytes (not a multiple of 512).
head -c 1000001 /dev/zero | tr '\0' '\231' > odd.raw
mkimg -b odd.raw -F raw odd-raw-top.qcow2 2M
qio odd-raw-top.qcow2 'write -P 0x9a 1M 4k'
check_image odd-raw-top.qcow2
