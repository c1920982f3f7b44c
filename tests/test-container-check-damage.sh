#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The check of file/N.json on a damaged refcount table, on a file cut
# short, and on damaged snapshot table entries counts as qemu-img check
# (qemu 7.2) does (cases found by the differential tester, difftest/):
#  - a refcount table entry pointing past the end of the file: a
#    corruption ("refcount block N is outside image"); the block reads as
#    zeros, as qemu's block layer reads past the end of a file (file/N is
#    served, not refused);
#  - an unaligned refcount table entry for clusters past the end of the
#    file: a corruption; no refcount is read through it;
#  - a file cut inside its refcount block, its L1 table now less than a
#    cluster past the end: qemu counts that reference and grows its
#    cluster count by one, so image-end-offset covers the L1 table;
#  - a snapshot entry without extra data: in a v3 image "incomplete", a
#    corruption; in a v2 image nothing;
#  - a snapshot whose L1 table is not cluster aligned: a corruption, and
#    the snapshot's L1 table is not counted.
container_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$container_testsdir/functions.sh"
source "$container_testsdir/container-functions.sh"

# same_counts IMG : file/1.json is served and its check counts are
# qemu-img check's (which must have run to the end: no check errors).
same_counts() {
    local img=$1 k q ours
    layer_qemu_check "$TESTDIR/$img" "$TESTDIR/$img.q" > /dev/null
    [ "$(jq_num "$img.q.json" '."check-errors" // 0')" = 0 ] ||
        { show_file "$img.q.err"; hard_error "$img: qemu-img check had check errors (test premise)"; }
    plugin_run "$img" -- sh -c \
        'nbdcopy "nbd+unix:///file/1.json?socket=$unixsocket" "$0"' "$TESTDIR/$img.json" ||
        fail "$img: file/1.json could not be read"
    for k in leaks corruptions allocated-clusters compressed-clusters image-end-offset total-clusters; do
        q=$(jq_num "$img.q.json" ".\"$k\" // 0")
        ours=$(jq_num "$img.json" ".check.\"$k\"")
        [ "$q" = "$ours" ] || {
            show_file "$img.q.err" 15
            echo "    qemu-img check: $(jq -c 'del(.filename)' "$img.q.json")" >&2
            echo "    file/1.json:    $(jq -c .check "$img.json")" >&2
            fail "$img: check.$k is $ours, qemu-img check says $q"; }
    done
    log "OK $img: $(jq -c '.check | {leaks, corruptions, "image-end-offset"}' "$img.json") as qemu-img check"
}

# 4 KiB clusters: header, refcount table at 4096, refcount block at 8192,
# L1 table at 12288, then data.
mkimg -o cluster_size=4k base.qcow2 1M
qio base.qcow2 'write -P 1 0 8k' 'write -P 2 512k 4k'
rt=$(peek_be base.qcow2 48 8)
[ "$rt" -eq 4096 ] || hard_error "refcount table at $rt, expected 4096"
size=$(stat -c %s base.qcow2)

cp base.qcow2 refblock-past-eof.qcow2
poke_be refblock-past-eof.qcow2 "$rt" 8 $(( (size + 4095) / 4096 * 4096 + 8192 ))
same_counts refblock-past-eof.qcow2
grep -q 'refcount block 0 is outside image' refblock-past-eof.qcow2.q.err ||
    hard_error "qemu-img check does not say that refcount block 0 is outside the image"

cp base.qcow2 refblock-unaligned-far.qcow2
poke_be refblock-unaligned-far.qcow2 $((rt + 4 * 8)) 8 512
same_counts refblock-unaligned-far.qcow2

# The empty image (12296 bytes: the L1 table is the start of the 4th
# cluster) cut inside its refcount block.
mkimg -o cluster_size=4k cut.qcow2 1M
truncate -s 8720 cut.qcow2
same_counts cut.qcow2
[ "$(jq_num cut.qcow2.json '.check."image-end-offset"')" = 16384 ] ||
    fail "cut.qcow2: image-end-offset must cover the L1 table past the end (16384)"

for compat in 0.10 1.1; do
    mkimg -o cluster_size=4k,compat=$compat snap-extra-0-$compat.qcow2 1M
    qio snap-extra-0-$compat.qcow2 'write -P 1 0 8k'
    python3 "$top_srcdir/tests/craft.py" snapshot-extra-0 snap-extra-0-$compat.qcow2
    same_counts snap-extra-0-$compat.qcow2
done
grep -q 'snapshot table entry 0 is incomplete' snap-extra-0-1.1.qcow2.q.err ||
    hard_error "qemu-img check does not call the v3 entry incomplete"

cp base.qcow2 snap-l1-unaligned.qcow2
python3 "$top_srcdir/tests/craft.py" snapshot-l1-unaligned snap-l1-unaligned.qcow2
same_counts snap-l1-unaligned.qcow2
grep -q 'L1 table is not cluster aligned' snap-l1-unaligned.qcow2.q.err ||
    hard_error "qemu-img check does not call the snapshot's L1 table unaligned"

# A refcount table of three clusters (1536 entries) with a run of zero
# entries between non-zero ones: entry 1100 repeats entry 0 (the refcount
# block at 8192, for clusters far past the end of the file).  Zero
# entries are not kept in memory; those after them must keep their
# indexes (found by the fuzzer: a refcount table read in 4 KiB pieces).
cp base.qcow2 reftable-sparse.qcow2
end=$(( ($(stat -c %s reftable-sparse.qcow2) + 4095) / 4096 * 4096 ))
dd if=base.qcow2 of=reftable-sparse.qcow2 bs=4096 skip=1 seek=$((end / 4096)) count=1 conv=notrunc status=none
truncate -s $((end + 3 * 4096)) reftable-sparse.qcow2
poke_be reftable-sparse.qcow2 $((end + 1100 * 8)) 8 8192
poke_be reftable-sparse.qcow2 48 8 "$end"
poke_be reftable-sparse.qcow2 56 4 3
same_counts reftable-sparse.qcow2
check_image reftable-sparse.qcow2
