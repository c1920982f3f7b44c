#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Refcount widths 1, 2, 4, 8, 16, 32 and 64 bits.  The plugin does not need
# refcounts to read, but must accept every legal refcount_order and the
# different refcount table/block layouts they produce.  Small clusters (4k)
# mean several refcount blocks for the wide refcounts (a 4k block holds only
# 512 64-bit refcounts, i.e. covers 2M of host file).
source "$(dirname "$0")/functions.sh"

for bits in 1 2 4 8 16 32 64; do
    img=refcount-$bits.qcow2
    mkimg -o refcount_bits=$bits,cluster_size=4k "$img" 4M
    qio "$img" 'write -P 0xa1 0 12k' 'write -P 0xa2 1M 1k' "write -P 0x$bits 2M 300k" 'write -P 0xa3 4000k 96k'
    [ "$(peek_be "$img" 96 4)" -eq "$(awk -v b=$bits 'BEGIN{ print log(b)/log(2) }')" ] ||
        hard_error "refcount_order of $img is not log2($bits)"
    check_image "$img"
done
