#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Startup errors name what is wrong, each checked as the exact stderr line:
#  - a size parameter that does not parse, or is out of range, names the
#    parameter (l2-cache-size=banana, =1E, =4k); the bounds themselves
#    (1M and 64G) are accepted;
#  - a second file= is refused, naming both;
#  - a directory is "is a directory";
#  - an image of another format (VMDK sparse and flat descriptor, VDI,
#    VHDX, VHD, QED, LUKS, Parallels) is named by its format; a plain
#    file is "not a qcow2 image";
#  - a backing file that cannot be used says whose backing file it is (a
#    directory; a VDI backing file without a recorded format, which qemu
#    probes as VDI: not read as raw; an unsupported recorded format);
#  - a message longer than 512 bytes (a backing loop through three long
#    paths) is printed whole.
source "$(dirname "$0")/functions.sh"

T=$TESTDIR
mkimg ok.qcow2 1M

# ---- parameters
expect_startup_message 'l2-cache-size: could not parse size string (banana)' \
    file=ok.qcow2 l2-cache-size=banana
expect_startup_message 'l2-cache-size: 1E is outside the allowed range 1M..64G' \
    file=ok.qcow2 l2-cache-size=1E
expect_startup_message 'l2-cache-size: 4k is outside the allowed range 1M..64G' \
    file=ok.qcow2 l2-cache-size=4k
expect_startup_message 'l2-cache-size: 65G is outside the allowed range 1M..64G' \
    file=ok.qcow2 l2-cache-size=65G
# Through the depth filter: the plugin checks its parameters first.
expect_startup_message 'l2-cache-size: could not parse size string (banana)' \
    --filter="$top_builddir/filter-depth/.libs/nbdkit-depth-filter.so" \
    file=ok.qcow2 l2-cache-size=banana
expect_startup_ok ok.qcow2 l2-cache-size=1M
expect_startup_ok ok.qcow2 l2-cache-size=64G
log "OK l2-cache-size=1M and =64G accepted"

mkimg other.qcow2 1M
expect_startup_message "file=other.qcow2: only one file= parameter is allowed (already given: $T/ok.qcow2)" \
    file=ok.qcow2 file=other.qcow2
expect_startup_message "file=other.qcow2: only one file= parameter is allowed (already given: $T/ok.qcow2)" \
    ok.qcow2 other.qcow2

# ---- the file itself
mkdir adir
expect_startup_message "$T/adir: is a directory" file=adir

foreign() {   # foreign FILE NAME
    expect_startup_message "$T/$1: magic: this is a $2 image, not qcow2" file="$1"
}
qemu-img create -q -f vmdk x.vmdk 1M;                       foreign x.vmdk VMDK
qemu-img create -q -f vmdk -o subformat=monolithicFlat xf.vmdk 1M
                                                            foreign xf.vmdk VMDK
qemu-img create -q -f vdi x.vdi 1M;                         foreign x.vdi VDI
qemu-img create -q -f vhdx x.vhdx 1M;                       foreign x.vhdx VHDX
qemu-img create -q -f vpc x.vhd 1M;                         foreign x.vhd 'VHD (vpc)'
qemu-img create -q -f qed x.qed 1M;                         foreign x.qed QED
qemu-img create -q -f parallels x.hdd 1M;                   foreign x.hdd Parallels
# (LUKS: the header's magic and version only -- qemu-img create -f luks
# times its PBKDF and fails on a loaded machine)
printf 'LUKS\xba\xbe\x00\x01' > x.luks; truncate -s 1M x.luks
                                                            foreign x.luks LUKS
truncate -s 1M plain.img
expect_startup_message "$T/plain.img: magic: not a qcow2 image" file=plain.img

# ---- backing files: whose they are
mkimg -u -b adir -F raw over-dir.qcow2 1M
expect_startup_message "backing file of $T/over-dir.qcow2: $T/adir: is a directory" \
    file=over-dir.qcow2

mkimg -u -b x.vdi -F raw over-vdi.qcow2 1M
drop_backing_fmt over-vdi.qcow2 0x7e57ab1e
fmt=$(qemu-img info --backing-chain --output=json over-vdi.qcow2 | jq -r '.[1].format')
[ "$fmt" = vdi ] || hard_error "qemu probes the backing file as '$fmt', expected vdi"
expect_startup_message "backing file of $T/over-vdi.qcow2: $T/x.vdi: magic: this is a VDI image, not qcow2" \
    file=over-vdi.qcow2

mkimg -b x.vmdk -F vmdk over-vmdk.qcow2 1M
expect_startup_message "backing file of $T/over-vmdk.qcow2: $T/x.vmdk: backing format 'vmdk' is not supported (qcow2, raw and file are)" \
    file=over-vmdk.qcow2

# ---- long messages are not cut
long=$(printf 'd%.0s' {1..250})
mkdir -p "$long/$long"
a="$T/$long/$long/a.qcow2" b="$T/$long/b.qcow2"
mkimg "$a" 1M
mkimg -b "$a" -F qcow2 "$b"
qemu-img rebase -q -u -b "$b" -F qcow2 "$a"
msg="$a: backing file '$b' makes a loop in the backing chain (it is $b)"
[ ${#msg} -gt 1000 ] || hard_error "loop message only ${#msg} bytes"
expect_startup_message "$msg" file="$b"
