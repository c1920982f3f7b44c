#!/usr/bin/env bash
# Host files that end inside the last cluster (qemu reads the missing bytes
# as zeros; so must the plugin, bytes and map alike):
#  - the last data cluster cut in half by truncating the image;
#  - 2M clusters with only the start of the last cluster written (qemu does
#    not extend the file to the end of the cluster);
#  - a compressed cluster written last: the file ends in the middle of a
#    sector, so the cluster descriptor's sector count reaches past EOF;
#  - an external data file cut in the middle of a cluster.
source "$(dirname "$0")/functions.sh"

img=cut-last.qcow2
mkimg "$img" 1M
qio "$img" 'write -P 0x11 0 64k' 'write -P 0x12 512k 64k'
truncate -s $(( $(stat -c %s "$img") - 32768 )) "$img"
check_image "$img"

img=short-2m.qcow2
mkimg -o cluster_size=2M "$img" 6M
qio "$img" 'write -P 0x21 0 4k' 'write -P 0x22 4M 6k'
log "$img: file size $(stat -c %s "$img") (last cluster at $(host_offset_of "$img" $((4 << 20))))"
check_image "$img"

img=comp-last.qcow2
mkimg "$img" 1M
qio "$img" 'write -P 0x31 0 64k' 'write -c -P 0x32 128k 64k'
fsize=$(stat -c %s "$img")
[ $((fsize % 512)) -ne 0 ] || log "note: $img ends on a sector boundary ($fsize)"
read -r host nbytes <<< "$(compressed_cluster "$img" 131072)"
log "$img: file size $fsize, compressed cluster at $host, descriptor covers up to $((host - host % 512 + nbytes))"
check_image "$img"

mkdir d
(cd d && mkimg -o data_file=cut.raw cutdata.qcow2 1M &&
    qio cutdata.qcow2 'write -P 0x41 0 64k' 'write -P 0x42 960k 64k' &&
    truncate -s $((1048576 - 16384)) cut.raw)
check_image d/cutdata.qcow2
