#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Cluster sizes 512 (the minimum: 64 L2 entries per table, so many L2 tables
# and a multi-cluster L1), 4k, 64k (default) and 2M (the maximum), v3; plus a
# v2 image with 4k clusters.  The same writes on each: partial clusters,
# writes straddling cluster (and for small clusters, L2 table) boundaries.
source "$(dirname "$0")/functions.sh"

writes=(
    'write -P 0x11 0 1k'
    'write -P 0x22 700k 3k'
    'write -P 0x33 2047k 2k'
    'write -P 0x44 2100000 5000'
    'write -P 0x55 3M 1M'
    'write -P 0x66 3200k 512'
    'write -P 0x77 6143k 1k'
)

for cs in 512 4k 64k 2M; do
    img=cs-$cs.qcow2
    mkimg -o cluster_size=$cs "$img" 8M
    qio "$img" "${writes[@]}"
    [ "$(qcow2_cluster_bits "$img")" -eq "$(awk -v c=$cs 'BEGIN{ n = c+0; if (c ~ /k$/) n *= 1024; if (c ~ /M$/) n *= 1048576; print log(n)/log(2) }')" ] ||
        hard_error "unexpected cluster_bits in $img"
    check_image "$img"
done

img=cs-4k-v2.qcow2
mkimg -o compat=0.10,cluster_size=4k "$img" 6M
qio "$img" "${writes[@]}"
check_image "$img"
