#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Container views of images with compressed clusters (qemu-img convert -c):
# compressed data is a byte range, several per host cluster, the last one
# possibly ending past the end of the file (the file is not padded to a
# whole cluster); compressed-clusters must match qemu-img check.
#  - zlib, 64k clusters, data that compresses well and random data that
#    does not (then qemu stores the cluster uncompressed);
#  - zstd (compression_type=zstd, incompatible feature bit 3);
#  - zlib, only very compressible data: the file ends inside its last
#    cluster;
#  - zlib with 4k clusters, data compressing to about 1k per cluster, half
#    of it freed (discard with pass-discard-request=off) and a little
#    rewritten: host clusters that held only freed compressed ranges are
#    unused, and the copy is smaller.
container_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$container_testsdir/functions.sh"
source "$container_testsdir/container-functions.sh"

# Deterministic data: N bytes, each one of the first K letters.  K=256 is
# incompressible (qemu then stores the cluster uncompressed); K=4 compresses
# to about a quarter.
gen_data() {
    awk -v n="$2" -v k="$3" 'BEGIN { srand(7); for (i = 0; i < n; i++) printf "%c", 97 + int(rand() * k) % 256 }' > "$1"
    [ "$(stat -c %s "$1")" -eq "$2" ] || hard_error "$1 has the wrong size"
}
gen_data random.bin 131072 256
gen_data letters.bin 1048576 4

mkimg src.qcow2 4M
qio src.qcow2 'write -P 0xc1 0 1M' 'write -P 0xc2 2M 64k' 'write -P 0xc3 3000k 12k'
qemu-io -f qcow2 -c "write -s random.bin 1536k 128k" src.qcow2 > /dev/null || hard_error "qemu-io write -s failed"

# Only very compressible data: a short file, not a whole number of
# clusters, the last cluster in use ending past EOF (used-overrun).
mkimg src-small.qcow2 4M
qio src-small.qcow2 'write -P 0xc5 0 1M' 'write -P 0xc6 2M 64k'
img=compressed-tail.qcow2
qemu-img convert -c -O qcow2 src-small.qcow2 "$img"
[ $(( $(stat -c %s "$img") % 65536 )) -ne 0 ] || hard_error "$img is a whole number of clusters (premise)"
container_check "$img" 1 "$img" 0
[ "$(jq_num "$CONTAINER_JSON" '.allocation."used-overrun"')" -gt 0 ] || fail "$img: expected used-overrun > 0"

for ct in zlib zstd; do
    img=compressed-$ct.qcow2
    qemu-img convert -c -O qcow2 -o compression_type=$ct src.qcow2 "$img"
    container_check "$img" 1 "$img" 0
    [ "$(jq -r '.header."compression-type"' "$CONTAINER_JSON")" = "$ct" ] || fail "$img: compression-type is not $ct"
    if [ "$ct" = zstd ]; then
        jq -e '.header."incompatible-features" | index("compression-type") != null' "$CONTAINER_JSON" > /dev/null ||
            fail "$img: incompatible-features lacks compression-type"
    fi
    [ "$(jq_num "$CONTAINER_JSON" '.check."compressed-clusters"')" -gt 0 ] || fail "$img: no compressed clusters counted"
    jq -e '[.metadata[] | select(.type == "compressed")] | length > 0' "$CONTAINER_JSON" > /dev/null ||
        fail "$img: no compressed entries in the metadata map"
    qemu-img compare -f qcow2 -F qcow2 "$img" src.qcow2 > /dev/null || hard_error "$img differs from its source"
done

mkimg src-letters.qcow2 4M
qemu-io -f qcow2 -c "write -s letters.bin 0 1M" src-letters.qcow2 > /dev/null || hard_error "qemu-io write -s failed"
img=compressed-4k.qcow2
qemu-img convert -c -O qcow2 -o cluster_size=4k src-letters.qcow2 "$img"
qemu-io --image-opts -c 'discard 0 512k' "driver=qcow2,file.filename=$img,pass-discard-request=off" > /dev/null ||
    hard_error "discard failed on $img"
qio "$img" 'write -P 0xc4 64k 8k'
container_check "$img" 1 "$img" 0 smaller
[ "$(jq_num "$CONTAINER_JSON" '.check."compressed-clusters"')" -gt 0 ] || fail "$img: no compressed clusters counted"
container_done
