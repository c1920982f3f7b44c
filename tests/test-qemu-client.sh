#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# qemu as the NBD client of the plugin: "qemu-img compare -f raw $uri IMG"
# (qemu reads the plugin's export as a raw disk and compares it with the
# image opened by qemu itself) must report "Images are identical." for
#  - a 3-layer chain, with zero clusters and discards in the middle layer;
#  - a compressed image (zlib), and a zstd one with normal clusters mixed in;
#  - an extended L2 overlay.
# Also qemu-img convert of the export into a new qcow2 and back compared.
source "$(dirname "$0")/functions.sh"

mkimg q-base.qcow2 4M
qio q-base.qcow2 'write -P 0x01 0 3M'
mkimg -b q-base.qcow2 -F qcow2 q-mid.qcow2
qio q-mid.qcow2 'write -P 0x02 1M 1M' 'write -z 1536k 64k' 'discard 2560k 128k'
mkimg -b q-mid.qcow2 -F qcow2 q-top.qcow2
qio q-top.qcow2 'write -P 0x03 100k 4k' 'write -P 0x03 3M 100k'
qemu_img_compare_nbd q-top.qcow2

truncate -s 3M q-src.raw
qemu-io -f raw q-src.raw -c 'write -P 0x21 0 1M' -c 'write -P 0x22 1500k 12k' > /dev/null
head -c 300k /dev/urandom | dd of=q-src.raw bs=1k seek=2000 conv=notrunc status=none
qemu-img convert -c -f raw -O qcow2 q-src.raw q-comp.qcow2
qemu_img_compare_nbd q-comp.qcow2
qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd q-src.raw q-zstd.qcow2
qio q-zstd.qcow2 'write -P 0x23 64k 4k'
qemu_img_compare_nbd q-zstd.qcow2

mkimg -o extended_l2=on -b q-base.qcow2 -F qcow2 q-extl2.qcow2
qio q-extl2.qcow2 'write -P 0x31 3k 5k' 'write -z 70k 2k'
qemu_img_compare_nbd q-extl2.qcow2

# Round trip: the plugin's export copied by qemu-img into a new qcow2.
plugin_run q-top.qcow2 -- sh -c 'qemu-img convert -f raw -O qcow2 "$uri" roundtrip.qcow2'
out=$(qemu-img compare -f qcow2 -F qcow2 roundtrip.qcow2 q-top.qcow2) ||
    fail "qemu-img convert of the export differs from q-top.qcow2: $out"
log "OK round trip through qemu-img convert: $out"
