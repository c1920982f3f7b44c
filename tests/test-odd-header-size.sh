#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A header whose virtual size is not a multiple of 512 (qemu-img never
# writes one; a damaged or foreign image may): qemu serves the size in
# whole 512-byte sectors, the rest dropped (qcow2_do_open keeps
# header.size / 512 sectors; qemu 7.2 and 10 alike), so 0xffffff serves
# 16776704 bytes and a size of 1 an empty disk, and it reports that size
# in qemu-img info.  Every view follows, each compared with qemu:
#  - the guest disk, map.json, layer/N.map.json (check_image), the data in
#    the last 511 bytes of the header's size never served;
#  - an internal snapshot (qemu-img convert -l / qemu-nbd -l), a
#    persistent bitmap (qemu-nbd -B), file/1.json (virtual-size as
#    qemu-img info, total-clusters as qemu-img check) and file/1;
#  - a backing file with such a size under a longer overlay: past the
#    backing file's 512-byte size the overlay reads zeros, in the guest,
#    in layer/2 (qemu-img convert of the backing file) and in the depth
#    map (qemu-nbd -A) and the depth views;
#  - size 1: an empty disk, with the depth filter too.
# The acceptance cases size-* of test-acceptance-header.sh check the
# guest disk of more sizes.
testsdir=$(cd "$(dirname "$0")" && pwd)
source "$testsdir/functions.sh"
source "$testsdir/depth-functions.sh"
source "$testsdir/container-functions.sh"

# set_size IMG SIZE : the header's size field.
set_size() { poke_be "$1" 24 8 "$2"; }

# expect_size IMG SIZE : qemu-img info's virtual size (the premise).
expect_size() {
    local v; v=$(qemu-img info --output=json "$1" | jq '."virtual-size"')
    [ "$v" = "$2" ] || hard_error "$1: qemu-img info says virtual-size $v, the test expects $2"
}

# ---- one image, every view of it: 16 MiB, then 16 MiB - 1 (0xffffff)
mkimg odd.qcow2 16M
qio odd.qcow2 'write -P 0x11 0 64k' 'write -P 0x12 8M 64k'
qemu-img snapshot -c s1 odd.qcow2
qemu-img bitmap --add odd.qcow2 b1
# data up to the header's last byte: the last 511 must not be served
qio odd.qcow2 'write -P 0x13 16320k 64k' 'write -P 0x14 64k 4k'
set_size odd.qcow2 0xffffff
expect_size odd.qcow2 16776704
check_image odd.qcow2
check_snapshot odd.qcow2 snapshot/s1 snapshot.name=s1
check_bitmap odd.qcow2 b1
container_check odd.qcow2 1 odd.qcow2 0
jq -e '.header."virtual-size" == 16776704 and .check."total-clusters" == 256' "$CONTAINER_JSON" > /dev/null ||
    fail "odd.qcow2: file/1.json: $(jq -c '{v: .header."virtual-size", t: .check."total-clusters"}' "$CONTAINER_JSON"), expected virtual-size 16776704 (as qemu-img info), total-clusters 256"
check_chain odd.qcow2

# ---- a backing file of 4 MiB + 1000 bytes (qemu: 4 MiB + 512) under an
# 8 MiB overlay; the backing file's data runs to 4 MiB + 64 KiB.
mkimg base.qcow2 $((4 * 1048576 + 65536))
qio base.qcow2 "write -P 0x21 0 $((4 * 1048576 + 65536))"
set_size base.qcow2 $((4 * 1048576 + 1000))
expect_size base.qcow2 $((4 * 1048576 + 512))
mkimg -b base.qcow2 -F qcow2 top.qcow2 8M
qio top.qcow2 'write -P 0x22 1M 64k'
check_image top.qcow2
qemu-img convert -f qcow2 -O raw base.qcow2 base.expected.raw
plugin_run top.qcow2 -- sh -c 'nbdcopy "nbd+unix:///layer/2?${uri#*\?}" layer2.raw'
compare_bytes base.expected.raw layer2.raw "layer/2 of top.qcow2 (expected: qemu-img convert of base.qcow2)"
log "OK layer/2 of top.qcow2: $(stat -c %s layer2.raw) bytes, as qemu-img convert of base.qcow2"
check_chain top.qcow2
# The guest past the backing file's end: zeros from 4 MiB + 512 on.
qemu-img convert -f qcow2 -O raw top.qcow2 top.raw
[ "$(od -An -tx1 -j $((4 * 1048576 + 504)) -N 16 top.raw | tr -d ' \n')" = 21212121212121210000000000000000 ] ||
    fail "top.qcow2 (qemu-img convert): the backing file should end at 4 MiB + 512 (test premise)"

# ---- size 1: an empty disk
mkimg one.qcow2 1M
qio one.qcow2 'write -P 0x31 0 64k'
set_size one.qcow2 1
expect_size one.qcow2 0
check_image one.qcow2
check_chain one.qcow2

container_done
