#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Container views of images with leaked clusters: an L2 entry of an
# allocated data cluster is zeroed by hand (dd), so the cluster keeps
# refcount 1 but nothing references it; qemu-img check reports the leak
# (exit status 3).  A leaked cluster has a refcount, so it is IN USE for the
# container view: file/1 keeps its bytes (type data), the copy of file/1 is
# the original file byte for byte, and its qemu-img check reports the same
# leaks (exit 3).
#  - 64k clusters, one leak in the first L2 table;
#  - 4k clusters, three leaks in two different L2 tables.
container_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$container_testsdir/functions.sh"
source "$container_testsdir/container-functions.sh"

# leak_cluster IMG GUEST_OFFSET : zero the L2 entry mapping GUEST_OFFSET
# (L1 table offset from header bytes 40..47, L1 entry -> L2 table offset
# masked with 0x00fffffffffffe00, see l2_entry_pos); prints the host offset
# of the now leaked cluster.
leak_cluster() {
    local img=$1 goff=$2 host pos
    host=$(host_offset_of "$img" "$goff")
    [ -n "$host" ] || hard_error "$img: guest offset $goff is not allocated"
    pos=$(l2_entry_pos "$img" "$goff")
    [ $(( $(peek_be "$img" "$pos" 8) & 0x00fffffffffffe00 )) -eq "$host" ] ||
        hard_error "$img: L2 entry at $pos does not map host offset $host"
    dd if=/dev/zero of="$img" bs=1 seek="$pos" count=8 conv=notrunc status=none
    echo "$host"
}

# check_leaks IMG HOST... : qemu lists exactly these clusters as leaked
# (refcount 1, reference 0); the container view keeps them.
check_leaks() {
    local img=$1; shift
    local cs h n=$#
    cs=$((1 << $(qcow2_cluster_bits "$img")))
    container_check "$img" 1 "$img" 3
    [ "$(jq_num "$CONTAINER_JSON" .check.leaks)" -eq "$n" ] || fail "$img: expected $n leaks"
    for h in "$@"; do
        grep -qx "Leaked $((h / cs)) 1 0" "$CONTAINER_QLIST" ||
            { show_file "$CONTAINER_QLIST"; hard_error "$img: qemu-img check does not list cluster $((h / cs)) as leaked (premise)"; }
        container_expect_types "$h" "$cs" 0 "leaked cluster at $h"
        file_has_nonzero "$img" "$h" "$cs" || hard_error "$img: leaked cluster at $h holds no data (premise)"
    done
    # Every cluster is in use: the copy is the file itself.
    cmp "$CONTAINER_COMPACT" "$img" > /dev/null ||
        fail "$img: every cluster is in use (leaked ones too), yet the copy of file/1 differs from the file"
    log "OK $img: $n leaked clusters kept as data; copy of file/1 = the file (cmp); du -k: original $(du_k "$img")K, copy $(du_k "$CONTAINER_COMPACT")K (a leaked cluster is in use: the copy can only lose blocks of zeros, by nbdcopy's zero detection)"
}

img=leak.qcow2
mkimg "$img" 4M
qio "$img" 'write -P 0x61 0 2M'
h1=$(leak_cluster "$img" $((192 * 1024)))
check_leaks "$img" "$h1"

img=leak-4k.qcow2
mkimg -o cluster_size=4k "$img" 4M
qio "$img" 'write -P 0x62 0 3M' 'write -P 0x63 3900k 8k'
h1=$(leak_cluster "$img" 8192)
h2=$(leak_cluster "$img" 12288)
h3=$(leak_cluster "$img" $((2 * 1024 * 1024 + 4096)))
check_leaks "$img" "$h1" "$h2" "$h3"
container_done
