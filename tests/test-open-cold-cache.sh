#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Opening an image reads only what parsing needs (the header, its extensions,
# the tables), so it does not change the image's map.  On ext4, clusters that
# qemu preallocated with fallocate but never wrote are unwritten extents,
# which SEEK_DATA reports as holes until their pages are in the page cache.
# qemu asks the file about data clusters of an image it deems metadata-
# preallocated, so an open that reads such clusters (as one reading the first
# 2 MiB did) turns qemu's "zero" into our "data".
# Each image is made, its page cache dropped, mapped by qemu-nbd, dropped
# again, then mapped by us: the maps must be equal.  Then, to show that the
# filesystem under test behaves as ext4 does, the whole file is read and
# qemu's map is taken once more: where it changes, an over-reading open would
# have made this test fail.
source "$(dirname "$0")/functions.sh"

log "test directory filesystem: $(df -T . | awk 'NR == 2 { print $2 }')"

# drop_cache IMG : write back and drop IMG's page cache (nothing may remain).
drop_cache() {
    local img=$1 pages i
    for ((i = 0; i < 5; i++)); do
        dd of="$img" oflag=nocache conv=notrunc,fdatasync count=0 status=none
        dd if="$img" iflag=nocache count=0 status=none
        pages=$(fincore --noheadings --raw --output PAGES "$img")
        [ "$pages" -eq 0 ] && return 0
        sleep 0.2
    done
    hard_error "$img: $pages pages still cached after dropping the cache"
}

# qemu_map IMG OUT / our_map IMG OUT : normalized base:allocation maps.
qemu_map() {
    qemu_nbd_start "$1"
    nbdinfo --json --map "$QEMU_NBD_URI" | map_normalize > "$2"
    qemu_nbd_stop
}
our_map() {
    export OM_OUT=$2.json
    plugin_run "$1" -- sh -c 'nbdinfo --json --map "$uri" > "$OM_OUT"' ||
        fail "serving $1 failed"
    map_normalize < "$2.json" > "$2"
}

sensitive=0
cold_case() {
    local img=$1
    drop_cache "$img"
    qemu_map "$img" "$img.qemu.map"
    drop_cache "$img"
    our_map "$img" "$img.ours.map"
    _compare_maps "$img.ours.map" "$img.qemu.map" "$img (cold page cache)"
    log "OK $img, cold cache: map identical to qemu-nbd's: $(map_summary "$img.ours.map")"
    # Warm the whole file: does qemu's answer depend on the page cache?
    cat "$img" > /dev/null
    qemu_map "$img" "$img.warm.map"
    if cmp -s "$img.qemu.map" "$img.warm.map"; then
        log "$img: qemu's map is the same with the whole file cached"
    else
        sensitive=$((sensitive + 1))
        log "$img: with the whole file cached qemu's map becomes: $(map_summary "$img.warm.map")" \
            "(cold: $(map_summary "$img.qemu.map")): reading data at open would show here"
    fi
    check_image "$img"
}

# Fully fallocated: qemu does not ask the file (not metadata-preallocated).
mkimg -o preallocation=falloc falloc.qcow2 4M
qio falloc.qcow2 'write -P 0x33 1M 64k'
cold_case falloc.qcow2

# Metadata preallocation: data clusters are holes in the file.
mkimg -o preallocation=metadata metadata.qcow2 16M
qio metadata.qcow2 'write -P 0x44 2M 64k'
cold_case metadata.qcow2

# Both: the first 1 MiB fallocated (unwritten extents inside the first 2 MiB
# of the file), the rest metadata-preallocated, so qemu asks the file.
mkimg -o preallocation=falloc mixed.qcow2 1M
qemu-img resize -q -f qcow2 --preallocation=metadata mixed.qcow2 64M
cold_case mixed.qcow2

# Same with 2 MiB clusters: the fallocated data starts past the first 2 MiB.
mkimg -o preallocation=falloc,cluster_size=2M mixed-2m.qcow2 4M
qemu-img resize -q -f qcow2 --preallocation=metadata mixed-2m.qcow2 64M
cold_case mixed-2m.qcow2

if [ "$sensitive" -gt 0 ]; then
    log "the filesystem reports cached unwritten extents as data ($sensitive image(s)): this test detects an open that reads data"
else
    log "NOTE: this filesystem's SEEK_DATA does not depend on the page cache: the maps were compared, but an open reading data would go unnoticed here"
fi
