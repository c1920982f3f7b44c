#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Container views of images with internal snapshots kept, and with
# persistent dirty bitmaps: the snapshots' L1/L2 tables and data, the
# snapshot table, the bitmap directory, tables and data clusters are all
# metadata in use (refcount > 0), and must be in the metadata map and kept
# by file/1; clusters COWed away and then freed must not.
#  - two snapshots, writes between them and after (shared clusters with
#    refcount 2, COWed L2 tables);
#  - a snapshot, then a zero write (no unmap) over a cluster it shares;
#  - the same with 4k clusters
#    in a v2 (compat=0.10) image;
#  - persistent bitmaps (qemu-img bitmap --add, one with -g 64k, one
#    disabled), then writes, then a snapshot and more writes.
container_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$container_testsdir/functions.sh"
source "$container_testsdir/container-functions.sh"

# snapshot_entries_ok N : the metadata map of the last check has the L1
# tables of N snapshots, and L2 tables belonging to snapshots.
snapshot_entries_ok() {
    [ "$(jq_num "$CONTAINER_JSON" .header.snapshots)" -eq "$1" ] || fail "header.snapshots is not $1"
    [ "$(jq '[.metadata[] | select(.type == "l1-table" and has("snapshot")) | .snapshot] | unique | length' "$CONTAINER_JSON")" -eq "$1" ] ||
        fail "expected the L1 tables of $1 snapshots in the metadata map"
    jq -e '[.metadata[] | select(.type == "snapshot-table")] | length == 1' "$CONTAINER_JSON" > /dev/null ||
        fail "expected one snapshot-table entry"
}

img=snap.qcow2
mkimg "$img" 4M
qio "$img" 'write -P 0xa1 0 2M'
qemu-img snapshot -c s1 "$img"
qio "$img" 'write -P 0xa2 0 1M'
qemu-img snapshot -c s2 "$img"
qio "$img" 'write -P 0xa3 512k 1M' 'write -P 0xa4 3M 64k'
container_check "$img" 1 "$img" 0
snapshot_entries_ok 2

# A zero write (without unmap) on a cluster shared with a snapshot: the
# active L2 entry becomes a zero cluster keeping its host cluster
# (zero-preallocated), while the snapshot's L2 entry still maps the same
# host cluster as data.  One host cluster, two kinds of reference: the
# metadata map must still be a list of disjoint entries.
img=snap-zero.qcow2
mkimg "$img" 4M
qio "$img" 'write -P 0xa9 0 2M'
qemu-img snapshot -c s1 "$img"
qio "$img" 'write -z 1536k 64k'
shared=$(host_offset_of "$img" $((1536 * 1024)))
[ -n "$shared" ] || hard_error "$img: the zeroed cluster lost its host cluster (premise)"
(cd "$(dirname "$img")" && qemu-img map -f qcow2 --output=json "$img") |
    jq -e --argjson o "$shared" '.[] | select(.offset == $o and .zero)' > /dev/null ||
    hard_error "$img: guest 1536k is not a zero cluster with a host offset (premise)"
container_check "$img" 1 "$img" 0
snapshot_entries_ok 1
container_expect_types "$shared" 65536 0 "host cluster shared by the snapshot (data) and the active zero cluster"

img=snap-v2-4k.qcow2
mkimg -o compat=0.10,cluster_size=4k "$img" 4M
qio "$img" 'write -P 0xa5 0 3M'
qemu-img snapshot -c first "$img"
qio "$img" 'write -P 0xa6 1M 1M' 'write -P 0xa7 2040k 16k'
qemu-img snapshot -c second "$img"
qio "$img" 'write -P 0xa8 0 64k'
container_check "$img" 1 "$img" 0
snapshot_entries_ok 2
[ "$(jq_num "$CONTAINER_JSON" .header.version)" -eq 2 ] || fail "$img: header.version is not 2"

img=bitmaps.qcow2
mkimg "$img" 4M
qio "$img" 'write -P 0xb1 0 1M'
qemu-img bitmap --add "$img" b0
qemu-img bitmap --add -g 64k "$img" b1
qemu-img bitmap --add --disable "$img" b2
qio "$img" 'write -P 0xb2 2M 1M' 'write -P 0xb3 256k 4k'
qemu-img snapshot -c withbitmaps "$img"
qio "$img" 'write -P 0xb4 3M 64k'
[ "$(qemu-img info --output=json "$img" | jq '.["format-specific"].data.bitmaps | length')" -eq 3 ] ||
    hard_error "$img should have 3 bitmaps"
container_check "$img" 1 "$img" 0
[ "$(jq_num "$CONTAINER_JSON" .header.bitmaps)" -eq 3 ] || fail "$img: header.bitmaps is not 3"
jq -e '.header."autoclear-features" | index("bitmaps") != null' "$CONTAINER_JSON" > /dev/null ||
    fail "$img: autoclear-features lacks bitmaps"
[ "$(jq '[.metadata[] | select(.type == "bitmap-data")] | length' "$CONTAINER_JSON")" -gt 0 ] ||
    fail "$img: no bitmap-data in the metadata map (b0 and b1 have dirty bits)"
snapshot_entries_ok 1
container_done
