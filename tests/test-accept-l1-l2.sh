#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Acceptance of L1 and L2 entries, exactly as qemu 7.2 (block/qcow2-cluster.c
# qcow2_get_host_offset, count_contiguous_subclusters, qcow2.h
# qcow2_get_cluster_type / qcow2_get_subcluster_type; block/qcow2.c
# qcow2_co_preadv_part, qcow2_co_block_status).
#
# One line of the table below per rule: a qemu-made image, one entry poked
# with poke_be (functions.sh), and qemu's verdict:
#   read          qemu reads the whole disk (qemu-img convert succeeds);
#   eio:OFF:LEN   qemu fails reading [OFF, OFF+LEN) (qemu-img convert fails,
#                 qemu-io's read of that range fails while a read elsewhere
#                 in the same session succeeds).
# The verdict is asserted against the installed qemu first, so the test
# cannot pass by accident if qemu changes.  Then, against qemu at run time:
#  - bytes: if qemu reads the disk, ours (nbdcopy with and without extents)
#    equal qemu-img convert's; otherwise our read of the range fails with
#    EIO, naming file, guest offset and the L2 table offset + index (or the
#    L1 index), and the server keeps serving (a read elsewhere succeeds
#    with the right bytes, in the same connection);
#  - base:allocation: where qemu-nbd answers, our merged map equals its
#    map; where its block status fails, ours fails too;
#  - depth: depth.json (depth filter: chain_depth/chain_origin) equals
#    qemu-nbd -A's qemu:allocation-depth map, or fails where qemu's does.
depth_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$depth_testsdir/functions.sh"
source "$depth_testsdir/depth-functions.sh"

COPIED=$((1 << 63))

# ------------------------------------------------------------ base images
# std:   4k clusters, 8M, backing file (so "unallocated" and "zero" differ):
#        L2 tables map 2M each; a1 at 0, a2 at 4k, a3 at 6M (4th L2 table).
# v2:    the same, compat=0.10.
# ext:   extended L2, 16k clusters (512-byte subclusters), 32M, backing file:
#        a1 at 0 (16k), a2 at 16k (4k: subclusters 0-7), a3 at 24M.
# dfile: external data file NAME.data, 64k clusters, 1M, no backing:
#        a1 at 0, a2 at 64k.
# comp:  compressed (qemu-img convert -c), 64k clusters, 1M:
#        11 at 0, 22 at 64k.
make_base() {
    local kind=$1 img=$2
    case $kind in
        std|v2)
            local compat=1.1; [ "$kind" = v2 ] && compat=0.10
            mkimg -o cluster_size=4k,compat=$compat base-$kind.qcow2 8M
            qio base-$kind.qcow2 'write -P 0xbb 0 1M' 'write -P 0xbb 6M 1M'
            mkimg -o cluster_size=4k,compat=$compat -b base-$kind.qcow2 -F qcow2 "$img" 8M
            qio "$img" 'write -P 0xa1 0 4k' 'write -P 0xa2 4k 4k' 'write -P 0xa3 6M 4k' ;;
        ext)
            mkimg -o cluster_size=16k base-ext.qcow2 32M
            qio base-ext.qcow2 'write -P 0xbb 0 1M' 'write -P 0xbb 24M 1M'
            mkimg -o cluster_size=16k,extended_l2=on -b base-ext.qcow2 -F qcow2 "$img" 32M
            qio "$img" 'write -P 0xa1 0 16k' 'write -P 0xa2 16k 4k' 'write -P 0xa3 24M 16k' ;;
        dfile)
            rm -f "${img%.qcow2}.data"
            mkimg -o data_file="${img%.qcow2}.data" "$img" 1M
            qio "$img" 'write -P 0xa1 0 64k' 'write -P 0xa2 64k 64k' ;;
        comp)
            rm -f comp-src.raw; truncate -s 1M comp-src.raw
            qemu-io -f raw -c 'write -P 0x11 0 64k' -c 'write -P 0x22 64k 64k' comp-src.raw > /dev/null
            qemu-img convert -c -f raw -O qcow2 comp-src.raw "$img" ;;
        *) hard_error "unknown base $kind" ;;
    esac
}
# A read that must succeed on each base whatever the case did elsewhere.
declare -A GOOD=([std]=0:4k:0xa1 [v2]=0:4k:0xa1 [ext]=0:16k:0xa1
                 [dfile]=0:64k:0xa1 [comp]=0:64k:0x11)

# ------------------------------------------------------------ pokes
# poke IMG ACTION ARG GUEST
#   l1_or BITS / l1_set V    the L1 entry of GUEST
#   l2_or BITS / l2_set V    the (first 64 bits of the) L2 entry of GUEST
#   bm_set V                 the subcluster bitmap of GUEST (extended L2)
#   coff V                   the host offset of GUEST's compressed cluster
#   cut_cluster -            truncate the file in the middle of GUEST's
#                            data cluster
#   cut_l2 BYTES             truncate the file BYTES into GUEST's L2 entry
#   cut_data BYTES           truncate the external data file to BYTES
poke() {
    local img=$1 action=$2 arg=$3 goff=$4 pos e x
    case $action in
        l1_or)  pos=$(l1_entry_pos "$img" "$goff"); poke_be "$img" "$pos" 8 $(( $(peek_be "$img" "$pos" 8) | arg )) ;;
        l1_set) pos=$(l1_entry_pos "$img" "$goff"); poke_be "$img" "$pos" 8 "$arg" ;;
        l2_or)  pos=$(l2_entry_pos "$img" "$goff"); poke_be "$img" "$pos" 8 $(( $(peek_be "$img" "$pos" 8) | arg )) ;;
        l2_set) pos=$(l2_entry_pos "$img" "$goff"); poke_be "$img" "$pos" 8 "$arg" ;;
        bm_set) pos=$(l2_entry_pos "$img" "$goff"); poke_be "$img" $((pos + 8)) 8 "$arg" ;;
        coff)   pos=$(l2_entry_pos "$img" "$goff"); e=$(peek_be "$img" "$pos" 8)
                x=$(( 62 - ($(qcow2_cluster_bits "$img") - 8) ))
                poke_be "$img" "$pos" 8 $(( (e & ~((1 << x) - 1)) | arg )) ;;
        cut_cluster)
                pos=$(host_offset_of "$img" "$goff")
                [ -n "$pos" ] || hard_error "guest offset $goff of $img is not allocated"
                truncate -s $(( pos + (1 << $(qcow2_cluster_bits "$img")) / 2 )) "$img" ;;
        cut_l2) truncate -s $(( $(l2_entry_pos "$img" "$goff") + arg )) "$img" ;;
        cut_data) truncate -s "$arg" "${img%.qcow2}.data" ;;
        *) hard_error "unknown poke $action" ;;
    esac
}

# ------------------------------------------------------------ one case
# qemu_refs IMG TAG : TAG.qconv (0/1) and TAG.qraw; TAG.qmap / TAG.qdepth
# (normalized) or their absence when qemu-nbd's block status fails.
qemu_refs() {
    local img=$1 t=$2
    if qemu-img convert -f qcow2 -O raw "$img" "$t.qraw" 2> "$t.qconv.err"; then echo 0 > "$t.qconv"
    else echo 1 > "$t.qconv"; fi
    qemu_nbd_start "$img" -A
    rm -f "$t.qmap" "$t.qdepth"
    if nbdinfo --json --map "$QEMU_NBD_URI" > "$t.qmap.json" 2>/dev/null; then
        map_normalize < "$t.qmap.json" > "$t.qmap"; fi
    if nbdinfo --json --map=qemu:allocation-depth "$QEMU_NBD_URI" > "$t.qdepth.json" 2>/dev/null; then
        depth_normalize < "$t.qdepth.json" > "$t.qdepth"; fi
    qemu_nbd_stop
}

run_case() {
    local name=$1 base=$2 goff=$3 action=$4 arg=$5 verdict=$6
    local img=$name.qcow2 t=$TESTDIR/$name
    make_base "$base" "$img"
    poke "$img" "$action" "$arg" "$goff"
    qemu_refs "$img" "$t"
    local good=${GOOD[$base]} kind off len
    IFS=: read -r kind off len <<< "$verdict"

    # qemu's verdict first.
    case $kind in
        read)
            [ "$(cat "$t.qconv")" = 0 ] ||
                { show_file "$t.qconv.err"; hard_error "$name: qemu no longer reads this image (expected: it does)"; } ;;
        eio)
            [ "$(cat "$t.qconv")" = 1 ] ||
                hard_error "$name: qemu-img convert now succeeds (expected: read error)"
            local gpat=${good##*:} goodrange=${good%:*}
            qemu-io -r -f qcow2 -c "read $off $len" -c "read -P $gpat ${goodrange/:/ }" "$img" > "$t.qio" 2>&1 || true
            grep -q '^read failed' "$t.qio" && grep -q '^read [0-9]*/[0-9]* bytes' "$t.qio" &&
                ! grep -q 'Pattern verification failed' "$t.qio" ||
                { show_file "$t.qio"; hard_error "$name: qemu-io does not fail [$off,+$len) and read ${goodrange} as expected"; } ;;
        *) hard_error "bad verdict $verdict" ;;
    esac

    # Ours: bytes, map, reads (one server), then depth.json (depth filter).
    export AC_T=$t AC_KIND=$kind
    plugin_run "$img" -- bash -c '
        if [ "$AC_KIND" = read ]; then
            nbdcopy --no-extents "$uri" "$AC_T.ours-noext.raw"
            nbdcopy "$uri" "$AC_T.ours.raw"
        fi
        nbdinfo --json --map "$uri" > "$AC_T.omap.json" 2>/dev/null && echo 0 > "$AC_T.omap.rc" || echo 1 > "$AC_T.omap.rc"' ||
        fail "$name: serving failed"
    if [ "$kind" = read ]; then
        compare_bytes "$t.qraw" "$t.ours-noext.raw" "$name: guest bytes (nbdcopy --no-extents) vs qemu-img convert"
        compare_bytes "$t.qraw" "$t.ours.raw" "$name: guest bytes (nbdcopy) vs qemu-img convert"
        rm -f "$t.qraw" "$t.ours-noext.raw" "$t.ours.raw"
    else
        expect_reads "$img" -- "ok:$good" "fail:$off:$len" "ok:$good" > /dev/null
        # Metadata problems name the L2 table and index (or the L1 index),
        # as qemu's corruption messages do; unreadable compressed data its
        # host offset.
        grep -Eq "$img: guest offset [0-9]+: (L2 table at 0x[0-9a-f]+, index [0-9]+|L1 index [0-9]+|compressed cluster at host offset 0x[0-9a-f]+)" "$PLUGIN_LAST_STDERR" ||
            { show_file "$PLUGIN_LAST_STDERR"; fail "$name: no error naming the file, guest offset and L2 table + index (or L1 index)"; }
        log "  $name: $(grep -Eo -m1 'guest offset [0-9]+: .*' "$PLUGIN_LAST_STDERR")"
    fi
    local mapv
    if [ -e "$t.qmap" ]; then
        [ "$(cat "$t.omap.rc")" = 0 ] || fail "$name: qemu-nbd maps the disk, our map failed"
        map_normalize < "$t.omap.json" > "$t.omap"
        _compare_maps "$t.omap" "$t.qmap" "$img"
        mapv="map == qemu-nbd's ($(map_summary "$t.omap"))"
    else
        [ "$(cat "$t.omap.rc")" = 1 ] || fail "$name: qemu-nbd's block status fails, our map succeeded"
        mapv="map fails as qemu-nbd's does"
    fi

    DEPTH_QUIET=1 depth_run "$img" -- bash -c '
        q=${uri#*\?}
        nbdcopy "nbd+unix:///depth.json?$q" "$AC_T.odepth.json" 2>/dev/null && echo 0 > "$AC_T.odepth.rc" || echo 1 > "$AC_T.odepth.rc"' ||
        fail "$name: serving with the depth filter failed"
    local depthv
    if [ -e "$t.qdepth" ]; then
        [ "$(cat "$t.odepth.rc")" = 0 ] || fail "$name: qemu-nbd -A gives depths, our depth.json failed"
        depth_normalize < "$t.odepth.json" > "$t.odepth"
        compare_files "$t.qdepth" "$t.odepth" "depth map of $img (qemu-nbd -A vs depth.json)"
        depthv="depth.json == qemu-nbd -A ($(depth_summary "$t.odepth"))"
    else
        [ "$(cat "$t.odepth.rc")" = 1 ] || fail "$name: qemu-nbd -A fails, our depth.json succeeded"
        depthv="depth.json fails as qemu-nbd -A does"
    fi
    log "OK $name: qemu verdict '$verdict' matched; $mapv; $depthv"
}

# ------------------------------------------------------------ the rules
# name                      base  guest  action       arg                       qemu
cases="
l1-reserved-bit57           std   6M     l1_or        $((1 << 57))              read
l1-reserved-bit0            std   6M     l1_or        1                         read
l1-l2-table-past-eof        std   6M     l1_set       $((COPIED | 1 << 30))     read
l1-copied-no-table          std   6M     l1_set       $COPIED                   read
l1-l2-table-unaligned       std   6M     l1_or        512                       eio:7M:4k
l2-reserved-bit1            std   4k     l2_or        2                         read
l2-reserved-bit8            std   4k     l2_or        256                       read
l2-reserved-bit56           std   4k     l2_or        $((1 << 56))              read
l2-reserved-bit61           std   4k     l2_or        $((1 << 61))              read
l2-reserved-unallocated     std   8k     l2_set       2                         read
l2-copied-unallocated       std   8k     l2_set       $COPIED                   read
l2-data-past-eof            std   4k     l2_set       $((COPIED | 1 << 40))     read
l2-zero-alloc-past-eof      std   4k     l2_set       $((COPIED | 1 << 40 | 1)) read
l2-data-cut-by-eof          std   6M     cut_cluster  -                         read
l2-table-cut-by-eof         std   6M     cut_l2       4                         read
l2-unaligned                std   4k     l2_or        512                       eio:4k:4k
l2-zero-alloc-unaligned     std   4k     l2_or        513                       eio:4k:4k
v2-zero-flag                v2    4k     l2_or        1                         eio:4k:4k
v2-zero-flag-unallocated    v2    8k     l2_set       1                         eio:8k:4k
ext-bit0-data               ext   16k    l2_or        1                         read
ext-bit0-unallocated        ext   32k    l2_set       1                         read
ext-reserved-bit1           ext   16k    l2_or        2                         read
ext-data-past-eof           ext   16k    l2_set       $((COPIED | 1 << 40))     read
ext-zero-without-host       ext   32k    bm_set       $((0xffffffff << 32))     read
ext-alloc-and-zero          ext   16k    bm_set       $((1 << 32 | 0xf))        eio:$((16384 + 20 * 512)):512
ext-alloc-without-host      ext   32k    bm_set       1                         eio:32k:1k
dfile-zero-alloc-identity   dfile 64k    l2_or        1                         read
dfile-zero-plain-offset0    dfile 64k    l2_set       $((COPIED | 1))           read
dfile-data-past-eof         dfile 64k    cut_data     65536                     read
dfile-data-moved            dfile 64k    l2_set       $((COPIED | 196608))      eio:64k:4k
dfile-zero-alloc-moved      dfile 64k    l2_set       $((COPIED | 196608 | 1))  eio:64k:4k
dfile-compressed            dfile 64k    l2_set       $((1 << 62 | 4096))       eio:64k:4k
comp-copied-bit             comp  64k    l2_or        $COPIED                   read
comp-past-eof               comp  64k    coff         $((1 << 30))              eio:64k:4k
"

to_bytes() { local v=$1; case $v in *k) echo $(( ${v%k} << 10 ));; *M) echo $(( ${v%M} << 20 ));; *) echo "$v";; esac; }
n=0
while read -r name base goff action arg verdict; do
    [ -n "$name" ] && [ "${name:0:1}" != "#" ] || continue
    run_case "$name" "$base" "$(to_bytes "$goff")" "$action" "$arg" "$verdict"
    n=$((n + 1))
done <<< "$cases"
log "OK: $n L1/L2 acceptance rules match qemu"
