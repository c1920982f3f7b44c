#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# What nbdinfo --json reports for the export (nbdinfo 1.14 field names):
#  - can_multi_conn: true (read-only and consistent across connections);
#  - is_read_only: true, can_trim/can_zero false;
#  - block_size_preferred: the cluster size of the top image (512, 4k, 64k,
#    2M) -- min 512;
#  - export-size: the virtual size; contexts include base:allocation.
# And multi-conn really used: nbdcopy with 4 connections.
source "$(dirname "$0")/functions.sh"

for cs in 512 4k 64k 2M; do
    img=info-$cs.qcow2
    mkimg -o cluster_size=$cs "$img" 5M
    qio "$img" 'write -P 0x51 0 1M'
    csb=$(( 1 << $(qcow2_cluster_bits "$img") ))
    plugin_info_json "$img" > info-$cs.json
    e=$(jq -c '.exports[] | select(."export-name" == "")' info-$cs.json)
    [ -n "$e" ] || { cat info-$cs.json; fail "no default export in nbdinfo output"; }
    check() {  # check JQ_EXPR EXPECTED
        local got; got=$(echo "$e" | jq -c "$1")
        [ "$got" = "$2" ] || { echo "$e" | jq . >&2; fail "$img: $1 is $got, expected $2"; }
    }
    check .can_multi_conn true
    check .is_read_only true
    check .can_trim false
    check .can_zero false
    check .block_size_preferred $csb
    check '."export-size"' 5242880
    check '.contexts | index("base:allocation") != null' true
    log "OK $img: can_multi_conn=true is_read_only=true block_size_preferred=$csb (cluster size) size=5242880 min=$(echo "$e" | jq .block_size_minimum) max=$(echo "$e" | jq .block_size_maximum)"
done

# Several connections copying in parallel.
plugin_run info-64k.qcow2 -- sh -c 'nbdcopy -C 4 -R 16 "$uri" multi.raw'
qemu-img compare -q -f raw -F qcow2 multi.raw info-64k.qcow2 || fail "nbdcopy -C 4 copy differs"
log "OK nbdcopy -C 4 -R 16 copy identical to info-64k.qcow2"
