#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Container views of images whose freed clusters still hold data: the
# clusters have refcount 0 and no reference, but the bytes stay in the file
# because the discard was not passed down to the file.  file/1 must show
# them as holes reading zeros, and the copy of file/1 must be a valid image
# strictly smaller than the original (and than a plain sparse copy).
#  - guest discard with pass-discard-request=off after writing 2M
#    (qemu-io --image-opts ... 'discard 0 1M');
#  - the same with 4k clusters (one L2 table per 2M, discard across both);
#  - an internal snapshot deleted with pass-discard-snapshot=off (qemu-img
#    snapshot --image-opts -d): the clusters only the snapshot used (its L1
#    copy, its L2 table, the old data overwritten since) become free.
container_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$container_testsdir/functions.sh"
source "$container_testsdir/container-functions.sh"

# host_ranges IMG GUEST_OFFSET LENGTH : "host_offset length" of the host
# clusters mapping the guest range in IMG (qemu-img map).
host_ranges() {
    (cd "$(dirname "$1")" && qemu-img map -f qcow2 --output=json "$(basename "$1")") |
        jq -r --argjson s "$2" --argjson e "$(( $2 + $3 ))" '
            .[] | select(.depth == 0 and has("offset") and .start < $e and .start + .length > $s)
                | ([.start, $s] | max) as $a | ([.start + .length, $e] | min) as $b
                | "\(.offset + $a - .start) \($b - $a)"'
}

# expect_freed IMG RANGESFILE : every host range listed is unused in file/1
# (type 3) and held non-zero bytes in the original file.
expect_freed() {
    local img=$1 off len total=0
    while read -r off len; do
        file_has_nonzero "$img" "$off" "$len" || hard_error "$img: freed range $off+$len holds no data (premise)"
        container_expect_types "$off" "$len" 3 "freed host range"
        total=$((total + len))
    done < "$2"
    [ "$total" -gt 0 ] || hard_error "$img: no freed ranges recorded"
    [ "$(jq_num "$CONTAINER_JSON" '.allocation."unused-data"')" -ge "$total" ] ||
        fail "$img: unused-data is less than the $total freed bytes"
    log "OK $img: $total freed bytes are holes in file/1"
}

for cl in 64k 4k; do
    img=freed-$cl.qcow2
    mkimg -o cluster_size=$cl "$img" 4M
    qio "$img" 'write -P 0x71 0 2M' 'write -P 0x72 3M 64k'
    host_ranges "$img" 0 $((1024 * 1024)) > "$img.freed"
    qemu-io --image-opts -c 'discard 0 1M' "driver=qcow2,file.filename=$img,pass-discard-request=off" > /dev/null ||
        hard_error "discard failed on $img"
    [ -z "$(host_ranges "$img" 0 $((1024 * 1024)))" ] || hard_error "$img: discard did not unmap 0..1M"
    container_check "$img" 1 "$img" 0 smaller
    expect_freed "$img" "$img.freed"
done

img=snapdel.qcow2
mkimg "$img" 4M
qio "$img" 'write -P 0x73 0 2M'
qemu-img snapshot -c s1 "$img"
host_ranges "$img" 0 $((1024 * 1024)) > "$img.freed"
qio "$img" 'write -P 0x74 0 1M' 'write -P 0x75 2M 64k'
[ "$(host_ranges "$img" 0 $((1024 * 1024)))" != "$(cat "$img.freed")" ] || hard_error "$img: writes did not COW"
# The snapshot's L1 table copy and its snapshot table go too.
snap_l1=$(peek_be "$img" "$(peek_be "$img" 64 8)" 8)
qemu-img snapshot --image-opts -d s1 "driver=qcow2,file.filename=$img,pass-discard-snapshot=off" ||
    hard_error "qemu-img snapshot -d with pass-discard-snapshot=off failed"
[ "$(peek_be "$img" 60 4)" -eq 0 ] || hard_error "$img: snapshot not deleted"
echo "$snap_l1 $((1 << $(qcow2_cluster_bits "$img")))" >> "$img.freed"
container_check "$img" 1 "$img" 0 smaller
expect_freed "$img" "$img.freed"
container_done
