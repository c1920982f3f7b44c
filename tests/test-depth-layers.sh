#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Layer views layer/N (N = 1 top .. 3 base) of two 3-layer chains, served by
# the plugin alone and with the depth filter stacked on it (pass-through):
#  - bytes equal qemu-img convert -O raw of that image alone, its backing
#    file removed (a copy rebased with qemu-img rebase -u -b '');
#  - base:allocation follows the layer rules, checked against qemu-img map
#    --output=json of that single image: "data":true -> 0 (data),
#    present zero without data -> 2 (zero, not hole), not present -> 3
#    (hole,zero: not allocated in this layer).  A raw layer is allocated
#    everywhere (its holes are zero, not hole).
# Also: nbdinfo --list shows every view with a description.
depth_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$depth_testsdir/functions.sh"
source "$depth_testsdir/depth-functions.sh"

# layer_expected IMG FMT PREFIX : PREFIX.raw and PREFIX.map (normalized
# expected base:allocation of IMG alone).
layer_expected() {
    local img=$1 fmt=$2 p=$3 alone=$1
    if [ "$fmt" = qcow2 ]; then
        alone="$p.alone.qcow2"
        cp "$img" "$alone"
        qemu-img rebase -q -u -b '' "$alone" || hard_error "qemu-img rebase -u -b '' failed"
        [ "$(qemu-img info --output=json "$alone" | jq -r '."backing-filename" // "none"')" = none ] ||
            hard_error "$alone still has a backing file"
    fi
    qemu-img convert -f "$fmt" -O raw "$alone" "$p.raw" || fail "qemu-img convert of $alone failed"
    qemu-img map -f "$fmt" --output=json "$alone" > "$p.qmap.json" || fail "qemu-img map of $alone failed"
    jq '[.[] | {offset: .start, length: .length,
                type: (if .data then 0 elif .present and .zero then 2
                       elif (.present | not) then 3 else error("unexpected qemu-img map entry \(.)") end)}]' \
        "$p.qmap.json" | map_normalize > "$p.map" || hard_error "cannot convert qemu-img map of $alone"
}

# serve_layers HOW TOP N PREFIX : with HOW = plugin or filter, read every
# layer/i (bytes with and without extents, map) and nbdinfo --list.
serve_layers() {
    local how=$1 top=$2
    export CL_HOW=$1 CL_N=$3 CL_P=$4
    local cmd=(bash -c '
        set -e
        q=${uri#*\?}
        nbdinfo --list --json "$uri" > "$CL_P.$CL_HOW.list.json"
        for ((i = 1; i <= CL_N; i++)); do
            u="nbd+unix:///layer/$i?$q"
            nbdcopy --no-extents "$u" "$CL_P.$CL_HOW.$i.raw"
            nbdcopy "$u" "$CL_P.$CL_HOW.$i.ext.raw"
            nbdinfo --json --map "$u" > "$CL_P.$CL_HOW.$i.json"
        done')
    if [ "$how" = plugin ]; then
        plugin_run "$top" -- "${cmd[@]}" || fail "serving the layers of $top (plugin alone) failed"
    else
        local rc=0
        depth_run "$top" -- "${cmd[@]}" || rc=$?
        assert_no_crash "$rc" "$DEPTH_LAST_STDERR" "layer/N of $top through the depth filter (nbdcopy, nbdinfo --map)"
        [ "$rc" -eq 0 ] || fail "serving the layers of $top (plugin + depth filter) failed"
    fi
}

# compare_layers HOW TOP N FILES... : compare what serve_layers read.
compare_layers() {
    local how=$1 top=$2 n=$3 p=$4 i; shift 4
    for ((i = 1; i <= n; i++)); do
        compare_bytes "$p.exp$i.raw" "$p.$how.$i.raw" "layer/$i of $top ($how, nbdcopy --no-extents)"
        compare_bytes "$p.exp$i.raw" "$p.$how.$i.ext.raw" "layer/$i of $top ($how, nbdcopy)"
        map_normalize < "$p.$how.$i.json" > "$p.$how.$i.map"
        compare_files "$p.exp$i.map" "$p.$how.$i.map" \
            "base:allocation of layer/$i of $top ($how) vs qemu-img map of $1 alone (offset length type)"
        log "OK ($how) layer/$i of $top = $1 alone: $(stat -c %s "$p.exp$i.raw") bytes identical (with and without extents); map == qemu-img map: $(map_summary "$p.$how.$i.map")"
        shift
    done
}

# check_layers TOP N FILE_1 FMT_1 ... FILE_N FMT_N
check_layers() {
    local top=$1 n=$2; shift 2
    local files=() i
    next_id
    local p="$TESTDIR/layers$ID"
    for ((i = 1; i <= n; i++)); do
        files+=("$1")
        layer_expected "$1" "$2" "$p.exp$i"
        shift 2
    done

    # The plugin alone.
    serve_layers plugin "$top" "$n" "$p"
    compare_layers plugin "$top" "$n" "$p" "${files[@]}"
    local names want containers=""
    # qcow2 layers also have container views (file/N, file/N.json).
    for ((i = 1; i <= n; i++)); do
        if [ "$(head -c 4 "${files[i-1]}" | od -An -tx1 | tr -d ' ')" = 514649fb ]; then
            containers+="file/$i file/$i.json "
        fi
    done
    names=$(jq -r '.exports[] | .["export-name"]' "$p.plugin.list.json" | sort | tr '\n' ' ')
    want=$( { echo; echo map.json; for ((i = 1; i <= n; i++)); do echo "layer/$i"; echo "layer/$i.map.json"; done; printf '%s\n' $containers; } | sort | tr '\n' ' ')
    [ "$names" = "$want" ] || { show_file "$p.plugin.list.json"; fail "nbdinfo --list (plugin alone): exports [$names], expected [$want]"; }

    # With the depth filter: the layer views pass through unchanged, and
    # nbdinfo --list shows every view with a description.
    serve_layers filter "$top" "$n" "$p"
    compare_layers filter "$top" "$n" "$p" "${files[@]}"
    names=$(jq -r '.exports[] | .["export-name"]' "$p.filter.list.json" | sort | tr '\n' ' ')
    want=$( { echo; echo depth.json; echo map.json; for ((i = 1; i <= n; i++)); do echo "layer/$i"; echo "layer/$i.map.json"; echo "depth/$i"; done; printf '%s\n' $containers; } | sort | tr '\n' ' ')
    [ "$names" = "$want" ] || { show_file "$p.filter.list.json"; fail "nbdinfo --list: exports [$names], expected [$want]"; }
    jq -e '[.exports[] | .description | type == "string" and length > 0] | all' "$p.filter.list.json" > /dev/null ||
        { show_file "$p.filter.list.json"; fail "nbdinfo --list: an export has no description"; }
    log "OK nbdinfo --list through the filter: $(jq '.exports | length' "$p.filter.list.json") exports, each with a description:"
    jq -r '.exports[] | "      \"\(.["export-name"])\": \(.description)"' "$p.filter.list.json"
    rm -f "$p".*.raw
}

# ---- chain A: qcow2 <- qcow2 <- qcow2, data, zero clusters, discards,
# compressed clusters, a shorter base.
mkimg la-base.qcow2 1536k
qio la-base.qcow2 'write -P 0x11 0 1M' 'write -z 128k 64k' 'write -c -P 0x12 1344k 64k'
mkimg -b la-base.qcow2 -F qcow2 la-mid.qcow2 2M
qio la-mid.qcow2 'write -P 0x21 64k 192k' 'write -z 512k 64k' 'discard 640k 64k' \
    'write -z -u 1600k 64k' 'write -P 0x22 1900k 4k'
mkimg -b la-mid.qcow2 -F qcow2 la-top.qcow2 2M
qio la-top.qcow2 'write -P 0x31 0 64k' 'write -z 192k 64k' 'discard 320k 64k' \
    'write -c -P 0x32 768k 64k' 'write -P 0x33 1700k 10k'
check_layers la-top.qcow2 3 la-top.qcow2 qcow2 la-mid.qcow2 qcow2 la-base.qcow2 qcow2

# ---- chain B: raw <- qcow2 <- qcow2: the raw layer is allocated everywhere.
truncate -s 1M lb-base.raw
qemu-io -f raw -c 'write -P 0x41 0 100k' -c 'write -P 0x42 600k 8k' lb-base.raw > /dev/null ||
    hard_error "qemu-io failed on lb-base.raw"
mkimg -b lb-base.raw -F raw lb-mid.qcow2
qio lb-mid.qcow2 'write -P 0x51 64k 64k' 'write -z 256k 64k'
mkimg -b lb-mid.qcow2 -F qcow2 lb-top.qcow2
qio lb-top.qcow2 'write -P 0x61 512k 128k'
check_layers lb-top.qcow2 3 lb-top.qcow2 qcow2 lb-mid.qcow2 qcow2 lb-base.raw raw
