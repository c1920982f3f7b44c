#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The check of file/N.json counts damaged L1 and L2 entries as qemu-img
# check (qemu 7.2, check_refcounts_l1/l2) does, entry by entry: leaks,
# corruptions, allocated-clusters, compressed-clusters and
# image-end-offset equal to qemu-img check --output=json's, for
#  - an L2 entry with reserved bits set (a corruption; the cluster still
#    counts);
#  - a data cluster at an unaligned host offset (a corruption, and the
#    reference covers the two clusters it straddles);
#  - a compressed cluster with the COPIED flag;
#  - an L1 entry with reserved bits set, one with an unaligned L2 offset
#    (that L2 table is read where the offset says), and one with only
#    reserved bits (qemu-img check then reads the header as an L2 table);
#  - extended L2 entries: a cluster with a subcluster both allocated and
#    zero, an unallocated cluster with allocated subclusters, a
#    compressed cluster with a subcluster bitmap;
#  - an external data file: intact (its clusters are allocated, none in
#    the qcow2 file), and with a compressed entry;
#  - the same damage reached from two L1 entries and from a snapshot (the
#    counts multiply);
#  - 4000 snapshots sharing L1 tables, some at shifted and unaligned
#    offsets (lib/l1_sweep.c reads each word of them once).
container_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$container_testsdir/functions.sh"
source "$container_testsdir/container-functions.sh"

# same_counts IMG : our check counts are qemu-img check's.
same_counts() {
    local img=$1 k q ours
    layer_qemu_check "$TESTDIR/$img" "$TESTDIR/$img.q" > /dev/null
    rm -f "$img.json"
    plugin_run "$img" -- sh -c \
        'nbdcopy "nbd+unix:///file/1.json?socket=$unixsocket" "$0"' "$TESTDIR/$img.json" ||
        fail "$img: file/1.json could not be read"
    for k in leaks corruptions allocated-clusters compressed-clusters image-end-offset; do
        q=$(jq_num "$img.q.json" ".\"$k\" // 0")
        ours=$(jq_num "$img.json" ".check.\"$k\"")
        [ "$q" = "$ours" ] || {
            show_file "$img.q.err" 15
            echo "    qemu-img check: $(jq -c 'del(.filename)' "$img.q.json")" >&2
            echo "    file/1.json:    $(jq -c .check "$img.json")" >&2
            fail "$img: check.$k is $ours, qemu-img check says $q"; }
    done
    log "OK $img: $(jq -c '.check | {leaks, corruptions, "allocated-clusters", "compressed-clusters"}' "$img.json") as qemu-img check"
}
# or_be / add_be / set_be IMG OFFSET VALUE : change a 64-bit entry.
or_be()  { poke_be "$1" "$2" 8 $(( $(peek_be "$1" "$2" 8) | $3 )); }
add_be() { poke_be "$1" "$2" 8 $(( $(peek_be "$1" "$2" 8) + $3 )); }
set_be() { poke_be "$1" "$2" 8 "$3"; }
# damaged BASE IMG OP l1|l2 GUEST_OFFSET VALUE [BYTE] : IMG is a copy of
# BASE whose L1 or L2 entry for GUEST_OFFSET (at BYTE into the entry: 8
# for an extended L2 entry's bitmap) OP (or_be, add_be, set_be) VALUE;
# then same_counts IMG.
damaged() {
    local base=$1 img=$2 op=$3 table=$4 goff=$5 value=$6 byte=${7:-0}
    cp "$base" "$img"
    "$op" "$img" $(( $("${table}_entry_pos" "$img" "$goff") + byte )) "$value"
    same_counts "$img"
}

# Standard L2 entries: 1 GiB (two L1 entries), data at 0-1M, a compressed
# cluster at 2M, data at 512M (the second L1 entry).
mkimg std.qcow2 1G
qio std.qcow2 'write -P 1 0 1M' 'write -c -P 3 2M 64k' 'write -P 4 512M 64k'
same_counts std.qcow2

damaged std.qcow2 l2-reserved.qcow2 or_be l2 0 0x2
damaged std.qcow2 l2-unaligned.qcow2 add_be l2 65536 512
damaged std.qcow2 comp-copied.qcow2 or_be l2 $((2 << 20)) $((1 << 63))
damaged std.qcow2 l1-reserved.qcow2 or_be l1 0 0x2
damaged std.qcow2 l1-unaligned.qcow2 add_be l1 $((512 << 20)) 512
damaged std.qcow2 l1-reserved-only.qcow2 set_be l1 $((512 << 20)) 0x2

# The same L2 damage seen through two L1 entries, and from a snapshot.
cp l2-unaligned.qcow2 twice.qcow2
poke_be twice.qcow2 "$(l1_entry_pos twice.qcow2 $((512 << 20)))" 8 \
    "$(peek_be twice.qcow2 "$(l1_entry_pos twice.qcow2 0)" 8)"
same_counts twice.qcow2
cp std.qcow2 snap.qcow2
qemu-img snapshot -c s1 snap.qcow2
or_be snap.qcow2 "$(l2_entry_pos snap.qcow2 0)" 0x2
same_counts snap.qcow2

# Extended L2 entries (16 bytes: the entry, then the subcluster bitmap:
# allocated bits 0-31, zero bits 32-63).
mkimg -o extended_l2=on ext.qcow2 4M
qio ext.qcow2 'write -P 1 0 1M' 'write -c -P 3 2M 64k'
same_counts ext.qcow2
damaged ext.qcow2 ext-both.qcow2 or_be l2 0 $((1 << 32)) 8
damaged ext.qcow2 ext-unalloc.qcow2 or_be l2 $((3 << 20)) 0x3 8
damaged ext.qcow2 ext-comp.qcow2 or_be l2 $((2 << 20)) 0x1 8

# An external data file.
mkimg -o data_file=df.raw df.qcow2 4M
qio df.qcow2 'write -P 1 0 1M'
same_counts df.qcow2
cp df.qcow2 df-comp.qcow2
cp df.raw df-comp.raw
qemu-img amend -f qcow2 -o data_file=df-comp.raw df-comp.qcow2
or_be df-comp.qcow2 "$(l2_entry_pos df-comp.qcow2 65536)" $((1 << 62))
same_counts df-comp.qcow2

# Many snapshots sharing L1 tables (an image made by hand: qemu gives
# each snapshot its own copy): 3000 share the first snapshot's L1 table,
# 500 more point 8 bytes into it (their entries shifted by one), 500
# more at an unaligned offset.  The counts are still qemu-img check's,
# and the analysis reads each word of those tables once instead of 4000
# times (bounded by the file, not by the snapshots).
cp std.qcow2 many.qcow2
qemu-img snapshot -c s0 many.qcow2
python3 - many.qcow2 <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
hdr = f.read(104)
cs = 1 << struct.unpack('>I', hdr[20:24])[0]
nsn, snoff = struct.unpack('>IQ', hdr[60:72])
assert nsn == 1
f.seek(snoff)
e = f.read(40)
l1off, l1size, idsz, namesz = struct.unpack('>QIHH', e[:16])
extra = struct.unpack('>I', e[36:40])[0]
extra_data = f.read(extra)
table = b''
def entry(off, i):
    ident, name = str(i).encode(), ('s%d' % i).encode()
    b = struct.pack('>QIHH', off, l1size, len(ident), len(name)) + e[16:36] + \
        struct.pack('>I', extra) + extra_data + ident + name
    return b + b'\0' * (-len(b) % 8)
n = 0
for off, count in ((l1off, 3000), (l1off + 8, 500), (l1off + 4, 500)):
    for _ in range(count):
        table += entry(off, n)
        n += 1
f.seek(0, 2)
end = f.tell()
end += -end % cs
f.seek(end)
f.write(table + b'\0' * (-len(table) % cs))
f.seek(60)
f.write(struct.pack('>IQ', n, end))
PY
same_counts many.qcow2
