#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Pseudo-random chains (fixed seeds, so reproducible; set QCOW2MAP_SEEDS to
# explore others): 1 to 4 qcow2 layers, sometimes over a sparse raw base,
# each with random options (v2/v3, cluster size 512..2M, extended L2, zstd,
# refcount width, external data file (raw or not), metadata/falloc
# preallocation, its own virtual size) and
# random operations (pattern writes, zero writes with and without unmap,
# discards, compressed writes) at random sector-aligned offsets, ending with a
# check_image of the top.  Every recipe is logged so a failure can be replayed.
source "$(dirname "$0")/functions.sh"

: "${QCOW2MAP_SEEDS:=101 202 303 404 505 606}"

pick() { local a=("$@"); echo "${a[RANDOM % ${#a[@]}]}"; }
cs_bytes() { case $1 in *k) echo $(( ${1%k} * 1024 )) ;; *M) echo $(( ${1%M} * 1048576 )) ;; *) echo "$1" ;; esac; }

for seed in $QCOW2MAP_SEEDS; do
    RANDOM=$seed
    nlayers=$(( 1 + RANDOM % 4 ))
    prev=
    for ((l = 1; l <= nlayers; l++)); do
        img=r$seed-$l.qcow2
        cs=$(pick 512 4k 16k 64k 64k 128k 2M)
        compat=$(pick 1.1 1.1 1.1 0.10)
        opts="cluster_size=$cs,compat=$compat"
        if [ "$compat" = 1.1 ]; then
            opts+=",refcount_bits=$(pick 1 8 16 16 64)"
            [ "$(cs_bytes "$cs")" -ge 16384 ] && [ $((RANDOM % 3)) -eq 0 ] && opts+=",extended_l2=on"
            [ $((RANDOM % 4)) -eq 0 ] && opts+=",compression_type=zstd"
        fi
        size=$(( (1 + RANDOM % 6) * 1048576 + (RANDOM % 3) * 512 * (1 + RANDOM % 100) ))
        rawbase=
        [ -z "$prev" ] && [ $((RANDOM % 4)) -eq 0 ] && rawbase=r$seed-0.raw
        if [ "$compat" = 1.1 ] && [ $((RANDOM % 6)) -eq 0 ]; then
            opts+=",data_file=r$seed-$l.data"
            [ -z "$prev$rawbase" ] && [ $((RANDOM % 2)) -eq 0 ] && opts+=",data_file_raw=on"
        fi
        if [ $((RANDOM % 6)) -eq 0 ] && { [ -z "$prev$rawbase" ] || [[ $opts == *extended_l2* ]]; }; then
            opts+=",preallocation=$(pick metadata metadata falloc)"
        fi
        if [ -n "$rawbase" ]; then
            # a raw base layer, sparse, with a few pattern writes
            raw=$rawbase
            rawsize=$(( (1 + RANDOM % 6) * 1048576 ))
            truncate -s $rawsize "$raw"
            qemu-io -f raw "$raw" -c "write -P 0x5a $(( RANDOM % 64 * 4096 )) 64k" \
                -c "write -P 0xa5 $(( rawsize - 12288 )) 12k" > /dev/null
            log "seed $seed layer 0: $raw raw, $(stat -c %s "$raw") bytes"
            mkimg -o "$opts" -b "$raw" -F raw "$img" "$size"
        elif [ -n "$prev" ]; then
            mkimg -o "$opts" -b "$prev" -F qcow2 "$img" "$size"
        else
            mkimg -o "$opts" "$img" "$size"
        fi
        csb=$(cs_bytes "$cs")
        ops=() cops=()
        declare -A cused=()
        nops=$(( 4 + RANDOM % 12 ))
        for ((i = 0; i < nops; i++)); do
            off=$(( (RANDOM * 32768 + RANDOM) % (size / 512) * 512 ))
            len=$(( (1 + RANDOM % 256) * 512 ))
            [ $((off + len)) -le "$size" ] || len=$(( size - off ))
            [ "$len" -gt 0 ] || continue
            case $((RANDOM % 8)) in
                0|1|2) ops+=("write -P $((RANDOM % 255 + 1)) $off $len") ;;
                3) ops+=("write -z $off $len") ;;
                4) ops+=("write -z -u $off $len") ;;
                5) ops+=("discard $off $len") ;;
                6) # compressed: whole, not yet written clusters inside the disk
                   # (qemu only compresses into unallocated clusters, so these
                   # are done first)
                   coff=$(( off / csb * csb ))
                   if [ $((coff + csb)) -le "$size" ] && [ -z "${cused[$coff]:-}" ] &&
                      [[ $opts != *data_file* && $opts != *preallocation* ]]; then
                       cused[$coff]=1
                       cops+=("write -c -P $((RANDOM % 255 + 1)) $coff $csb")
                   fi ;;
                7) ops+=("write -P 0 $off $len") ;;
            esac
        done
        unset cused
        ops=("${cops[@]}" "${ops[@]}")
        log "seed $seed layer $l: $img -o $opts size $size${prev:+ backing $prev}: $(printf '%s; ' "${ops[@]}")"
        [ ${#ops[@]} -eq 0 ] || qio "$img" "${ops[@]}"
        prev=$img
    done
    check_image "$prev"
done
