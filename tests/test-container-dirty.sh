#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Container views of a lazy-refcount image left dirty: lazy_refcounts=on,
# then a qemu-io that writes and aborts (qemu-io's "abort" command, as in
# test-dirty-corrupt.sh), so the dirty bit (incompatible feature bit 0, byte
# 79 bit 0) stays set and the refcounts of the clusters allocated since the
# last clean close are still 0: qemu-img check reports corruptions (exit 2)
# of the original already.
# The data clusters with refcount 0 are referenced by the L2 tables, so they
# are IN USE for the container view: file/1 keeps them, and the copy of
# file/1 is the file itself; its qemu-img check must report exactly what
# the original's does (same JSON, exit 2), and file/1.json's check must
# count what qemu-img check counts.
#  - 64k clusters, written then aborted;
#  - 4k clusters, two aborted sessions in a row (the second sees a dirty
#    image, and qemu-io -r is never used, so nothing repairs it);
#  - a clean image with one refcount raised from 1 to 2 by hand.
container_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$container_testsdir/functions.sh"
source "$container_testsdir/container-functions.sh"

ulimit -c 0

# abort_write IMG CMD... : run qemu-io commands on IMG, then abort.
abort_write() {
    local img=$1 c args=(); shift
    for c in "$@"; do args+=(-c "$c"); done
    if bash -c 'qemu-io -f qcow2 "$@"; exit $?' sh "${args[@]}" -c abort "$img" > /dev/null 2>&1; then
        hard_error "qemu-io abort did not abort"
    fi
}

# check_dirty IMG GUEST_OFFSET LENGTH : IMG is dirty, qemu-img check exits 2,
# and the clusters written by the aborted session (guest range) are in use.
check_dirty() {
    local img=$1 goff=$2 glen=$3 off len
    [ $(( $(peek_be "$img" 79 1) & 1 )) -eq 1 ] || hard_error "$img: dirty bit (byte 79 bit 0) not set after abort"
    container_check "$img" 1 "$img" 2
    jq -e '.header."incompatible-features" | index("dirty") != null' "$CONTAINER_JSON" > /dev/null ||
        fail "$img: file/1.json does not list the dirty feature"
    jq -e '.header."compatible-features" | index("lazy-refcounts") != null' "$CONTAINER_JSON" > /dev/null ||
        fail "$img: file/1.json does not list lazy-refcounts"
    [ "$(grep -c '^ERROR [0-9]* 0 ' "$CONTAINER_QLIST")" -gt 0 ] ||
        hard_error "$img: qemu lists no referenced cluster with refcount 0 (premise)"
    (cd "$(dirname "$img")" && qemu-img map -f qcow2 --output=json "$(basename "$img")") |
        jq -r --argjson s "$goff" --argjson e "$((goff + glen))" '
            .[] | select(.depth == 0 and has("offset") and .start < $e and .start + .length > $s)
                | "\(.offset) \(.length)"' > "$img.written"
    [ -s "$img.written" ] || hard_error "$img: the aborted writes are not mapped"
    while read -r off len; do
        container_expect_types "$off" "$len" 0 "cluster written before abort (refcount 0, referenced)"
    done < "$img.written"
    cmp "$CONTAINER_COMPACT" "$img" > /dev/null ||
        fail "$img: every cluster is in use, yet the copy of file/1 differs from the file"
    log "OK $img: dirty, $(grep -c '^ERROR [0-9]* 0 ' "$CONTAINER_QLIST") clusters with refcount 0 in use; copy of file/1 = the file (cmp)"
}

img=lazy-dirty.qcow2
mkimg -o lazy_refcounts=on "$img" 4M
qio "$img" 'write -P 0x81 0 64k'
abort_write "$img" 'write -P 0x82 512k 1M' 'write -P 0x83 2M 64k'
check_dirty "$img" $((512 * 1024)) $((2 * 1024 * 1024))

img=lazy-dirty-4k.qcow2
mkimg -o lazy_refcounts=on,cluster_size=4k "$img" 4M
qio "$img" 'write -P 0x84 0 256k'
abort_write "$img" 'write -P 0x85 1M 64k'
abort_write "$img" 'write -P 0x86 3M 8k' 'write -P 0x87 128k 4k'
check_dirty "$img" $((1024 * 1024)) $((3 * 1024 * 1024))
# Not dirty, but a stale refcount all the same: the refcount of an active
# data cluster (refcount 1, L2 entry flagged COPIED) raised to 2 by hand in
# its refcount block.  qemu-img check: 1 leak ("Leaked cluster K refcount=2
# reference=1") and 1 corruption ("ERROR OFLAG_COPIED data cluster": the
# COPIED flag says refcount 1), exit 2.
img=refcount-raised.qcow2
mkimg "$img" 4M
qio "$img" 'write -P 0x88 0 1M'
host=$(host_offset_of "$img" $((64 * 1024)))
cs=$((1 << $(qcow2_cluster_bits "$img")))
rb=$(peek_be "$img" "$(peek_be "$img" 48 8)" 8)       # refcount block 0
[ "$(peek_be "$img" $((rb + 2 * host / cs)) 2)" -eq 1 ] || hard_error "$img: refcount of cluster $((host / cs)) is not 1 (premise)"
poke_be "$img" $((rb + 2 * host / cs)) 2 2
container_check "$img" 1 "$img" 2
grep -qx "Leaked $((host / cs)) 2 1" "$CONTAINER_QLIST" || hard_error "$img: qemu does not list cluster $((host / cs)) as leaked (premise)"
container_expect_types "$host" "$cs" 0 "cluster with refcount 2 and one reference"
container_done
