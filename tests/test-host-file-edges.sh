#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Host files that end inside the last cluster (qemu reads the missing bytes
# as zeros; so must the plugin, bytes and map alike):
#  - the last data cluster cut in half by truncating the image;
#  - 2M clusters with only the start of the last cluster in the file (cut
#    8k into the cluster, after the 6k written);
#  - a compressed cluster written last: the file ends in the middle of a
#    sector, so the cluster descriptor's sector count reaches past EOF;
#  - an external data file cut in the middle of a cluster.
# Each case first asserts its precondition (the file really ends inside the
# cluster), so that a change in qemu-img's layout cannot make a case vanish
# while the test stays green.
source "$(dirname "$0")/functions.sh"

# ends_inside WHAT FILE_SIZE CLUSTER_START CLUSTER_END : the file ends
# strictly inside [CLUSTER_START, CLUSTER_END), or a hard error.
ends_inside() {
    local what=$1 fsize=$2 start=$3 end=$4
    [ -n "$start" ] && [ "$fsize" -gt "$start" ] && [ "$fsize" -lt "$end" ] ||
        hard_error "precondition: $what: file size $fsize is not inside [$start, $end)"
    log "$what: file size $fsize ends inside [$start, $end)"
}

img=cut-last.qcow2
mkimg "$img" 1M
qio "$img" 'write -P 0x11 0 64k' 'write -P 0x12 512k 64k'
truncate -s $(( $(stat -c %s "$img") - 32768 )) "$img"
host=$(host_offset_of "$img" 524288)
ends_inside "$img (data cluster of guest 512k)" "$(stat -c %s "$img")" "$host" $((host + 65536))
check_image "$img"

img=short-2m.qcow2
mkimg -o cluster_size=2M "$img" 6M
qio "$img" 'write -P 0x21 0 4k' 'write -P 0x22 4M 6k'
host=$(host_offset_of "$img" $((4 << 20)))
# qemu-img 7.2 fills the file to the end of the 2M cluster: cut it after the
# 6k written (a file written by a qemu that did not, or cut short).
[ "$(stat -c %s "$img")" -le $((host + 8192)) ] || truncate -s $((host + 8192)) "$img"
ends_inside "$img (2M data cluster of guest 4M)" "$(stat -c %s "$img")" "$host" $((host + (2 << 20)))
check_image "$img"

img=comp-last.qcow2
mkimg "$img" 1M
qio "$img" 'write -P 0x31 0 64k' 'write -c -P 0x32 128k 64k'
fsize=$(stat -c %s "$img")
read -r host nbytes <<< "$(compressed_cluster "$img" 131072)"
# The descriptor's sector count reaches past the end of the file.
ends_inside "$img (compressed cluster's sectors)" "$fsize" "$host" $((host - host % 512 + nbytes))
check_image "$img"

mkdir d
(cd d && mkimg -o data_file=cut.raw cutdata.qcow2 1M &&
    qio cutdata.qcow2 'write -P 0x41 0 64k' 'write -P 0x42 960k 64k' &&
    truncate -s $((1048576 - 16384)) cut.raw)
host=$(host_offset_of d/cutdata.qcow2 983040)
ends_inside "d/cut.raw (data cluster of guest 960k)" "$(stat -c %s d/cut.raw)" "$host" $((host + 65536))
check_image d/cutdata.qcow2
