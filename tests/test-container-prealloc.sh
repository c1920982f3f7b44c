#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Container views of preallocated images: every guest cluster has a host
# cluster, so every cluster of the file is in use and file/1 has no
# hole+zero extent; where the host file has holes (preallocation=metadata)
# or unwritten extents, file/1 reports zero (type 2), exactly where qemu's
# raw view of the file reports holes.
#  - preallocation=metadata, partly written (host holes inside in-use
#    clusters: used-zero);
#  - preallocation=falloc, partly written (fallocated unwritten extents;
#    see container_check on why the whole file is read first);
#  - preallocation=metadata with 4k clusters (many L2 tables).
container_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$container_testsdir/functions.sh"
source "$container_testsdir/container-functions.sh"

for spec in metadata:64k falloc:64k metadata:4k; do
    p=${spec%%:*} cl=${spec#*:}
    img=prealloc-$p-$cl.qcow2
    mkimg -o preallocation=$p,cluster_size=$cl "$img" 4M
    qio "$img" 'write -P 0x91 0 1M' 'write -P 0x92 3M 4k'
    container_check "$img" 1 "$img" 0
    [ "$(jq_num "$CONTAINER_JSON" '.check."allocated-clusters"')" -eq "$(jq_num "$CONTAINER_JSON" '.check."total-clusters"')" ] ||
        fail "$img: a preallocated image should have every guest cluster allocated"
    [ "$(awk '$3 == 3' "$CONTAINER_MAP" | wc -l)" -eq 0 ] || fail "$img: preallocated image has unused clusters in file/1"
    jq -e '[.metadata[] | select(.type == "data")] | length > 0' "$CONTAINER_JSON" > /dev/null ||
        fail "$img: no data entries in the metadata map"
    if [ "$p" = metadata ]; then
        # Unwritten preallocated clusters are host holes: used, zero.
        [ "$(jq_num "$CONTAINER_JSON" '.allocation."used-zero"')" -ge $((2 * 1024 * 1024)) ] ||
            fail "$img: expected at least 2M of used-zero (preallocated, never written)"
        off=$(host_offset_of "$img" $((2 * 1024 * 1024)))
        container_expect_types "$off" 4096 2 "preallocated, unwritten cluster"
    fi
    cmp "$CONTAINER_COMPACT" "$img" > /dev/null ||
        fail "$img: every cluster is in use, yet the copy of file/1 differs from the file"
done
container_done
