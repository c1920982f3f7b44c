#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Container views with the extreme refcount widths: refcount_bits=1 (a
# cluster is shared by at most one reference, a refcount block covers
# cluster_size*8 clusters) and refcount_bits=64 (a refcount block covers
# cluster_size/8 clusters: with 4k clusters, 512 clusters = 2M of file, so
# a few MiB of image need several refcount blocks).  Each is checked clean,
# with freed clusters (pass-discard-request=off), and (64 bits) with a
# snapshot, whose shared clusters have refcount 2.
container_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$container_testsdir/functions.sh"
source "$container_testsdir/container-functions.sh"

for bits in 1 64; do
    for cl in 64k 4k; do
        img=rc$bits-$cl.qcow2
        mkimg -o refcount_bits=$bits,cluster_size=$cl "$img" 6M
        [ "$(peek_be "$img" 96 4)" -eq "$([ $bits = 1 ] && echo 0 || echo 6)" ] ||
            hard_error "$img: refcount_order is not log2($bits)"
        qio "$img" 'write -P 0xd1 0 3M' 'write -P 0xd2 5M 64k'
        container_check "$img" 1 "$img" 0
        [ "$(jq_num "$CONTAINER_JSON" '.header."refcount-bits"')" -eq "$bits" ] || fail "$img: refcount-bits is not $bits"
        log "  $img: $(jq '[.metadata[] | select(.type == "refcount-block")] | length' "$CONTAINER_JSON") refcount blocks"

        qemu-io --image-opts -c 'discard 1M 1M' "driver=qcow2,file.filename=$img,pass-discard-request=off" > /dev/null ||
            hard_error "discard failed on $img"
        container_check "$img" 1 "$img" 0 smaller
    done
done

img=rc64-snap.qcow2
mkimg -o refcount_bits=64,cluster_size=4k "$img" 6M
qio "$img" 'write -P 0xd3 0 3M'
qemu-img snapshot -c s1 "$img"
qio "$img" 'write -P 0xd4 1M 64k' 'write -P 0xd5 4M 1M'
container_check "$img" 1 "$img" 0
[ "$(jq '[.metadata[] | select(.type == "refcount-block")] | length' "$CONTAINER_JSON")" -ge 2 ] ||
    fail "$img: expected several refcount blocks"
container_done
