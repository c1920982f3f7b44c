#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The depth=N / depth=N-M filter parameter makes the default export "" the
# depth view: for depth=2, 1-2, 0, 3 and 0-3 on a 3-layer chain (with zero
# clusters), "" must equal the guest bytes masked by qemu's depth map
# (nbdcopy + cmp, and qemu-img compare -f raw "$uri" expected.raw), and its
# base:allocation must be that of the depth/N export of the same server (and
# the expected view map).  The other exports keep working (depth.json
# unchanged, depth/1 is still depth 1, layer/1 is still the top layer), and
# nbdinfo --list describes "" as the restricted view.
depth_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$depth_testsdir/functions.sh"
source "$depth_testsdir/depth-functions.sh"

mkimg base.qcow2 2M
qio base.qcow2 'write -P 0x11 0 1536k'
mkimg -b base.qcow2 -F qcow2 mid.qcow2
qio mid.qcow2 'write -P 0x21 64k 256k' 'write -z 512k 64k' 'write -P 0x22 1900k 64k'
mkimg -b mid.qcow2 -F qcow2 top.qcow2
qio top.qcow2 'write -P 0x31 0 64k' 'write -z 128k 64k' 'write -P 0x32 1M 100k' 'discard 1300k 64k'

R="$TESTDIR/ref"
qemu_depth_refs top.qcow2 "$R"
log "qemu's depth map of top.qcow2: $(depth_summary "$R.qdepth.map")"

# Reference for the untouched exports: depth/1 and layer/1 bytes.
mask_by_depth "$R.full.raw" "$R.qdepth.map" 1 1 "$TESTDIR/exp-depth1.raw"
cp top.qcow2 top-alone.qcow2
qemu-img rebase -q -u -b '' top-alone.qcow2
qemu-img convert -f qcow2 -O raw top-alone.qcow2 "$TESTDIR/exp-layer1.raw"

export P_DIR=$TESTDIR
for spec in 2 1-2 0 3 0-3; do
    lo=${spec%-*}; hi=${spec#*-}
    exp="$TESTDIR/exp-$spec.raw"
    mask_by_depth "$R.full.raw" "$R.qdepth.map" "$lo" "$hi" "$exp"
    expected_view_map "$R.qalloc.map" "$R.qdepth.map" "$lo" "$hi" > "$TESTDIR/exp-$spec.map"
    export P_SPEC=$spec P_EXP=$exp
    rm -f "$TESTDIR"/got-*
    depth_run top.qcow2 depth="$spec" -- bash -c '
        set -e
        q=${uri#*\?}
        nbdcopy --no-extents "$uri" "$P_DIR/got-default.raw"
        nbdcopy "$uri" "$P_DIR/got-default.ext.raw"
        qemu-img compare -f raw -F raw "$uri" "$P_EXP" > "$P_DIR/got-compare.out" 2>&1
        nbdinfo --json --map "$uri" > "$P_DIR/got-default.json"
        nbdinfo --json --map "nbd+unix:///depth/$P_SPEC?$q" > "$P_DIR/got-view.json"
        nbdcopy "nbd+unix:///depth.json?$q" "$P_DIR/got-depth.json"
        nbdcopy "nbd+unix:///depth/1?$q" "$P_DIR/got-depth1.raw"
        nbdcopy --no-extents "nbd+unix:///layer/1?$q" "$P_DIR/got-layer1.raw"
        nbdinfo --list --json "$uri" > "$P_DIR/got-list.json"' ||
        fail "serving top.qcow2 with depth=$spec failed"

    compare_bytes "$exp" "$TESTDIR/got-default.raw" "export \"\" with depth=$spec (nbdcopy --no-extents)"
    compare_bytes "$exp" "$TESTDIR/got-default.ext.raw" "export \"\" with depth=$spec (nbdcopy)"
    grep -q '^Images are identical' "$TESTDIR/got-compare.out" ||
        { show_file "$TESTDIR/got-compare.out"; fail "qemu-img compare of \"\" (depth=$spec) with the expected bytes"; }
    map_normalize < "$TESTDIR/got-default.json" > "$TESTDIR/got-default.map"
    map_normalize < "$TESTDIR/got-view.json" > "$TESTDIR/got-view.map"
    compare_files "$TESTDIR/exp-$spec.map" "$TESTDIR/got-default.map" "base:allocation of \"\" with depth=$spec"
    compare_files "$TESTDIR/got-view.map" "$TESTDIR/got-default.map" "base:allocation of \"\" with depth=$spec vs depth/$spec"
    # The other exports are unaffected.
    depth_normalize < "$TESTDIR/got-depth.json" > "$TESTDIR/got-depth.map"
    compare_files "$R.qdepth.map" "$TESTDIR/got-depth.map" "depth.json with depth=$spec"
    compare_bytes "$TESTDIR/exp-depth1.raw" "$TESTDIR/got-depth1.raw" "depth/1 with depth=$spec"
    compare_bytes "$TESTDIR/exp-layer1.raw" "$TESTDIR/got-layer1.raw" "layer/1 with depth=$spec"
    desc=$(jq -r '.exports[] | select(.["export-name"] == "") | .description' "$TESTDIR/got-list.json")
    case "$desc" in
        *"depth $spec"*) ;;
        *) show_file "$TESTDIR/got-list.json"; fail "nbdinfo --list with depth=$spec: \"\" is described as '$desc'" ;;
    esac
    log "OK depth=$spec: \"\" == guest bytes masked to depth $spec ($(awk -v lo="$lo" -v hi="$hi" '$3 >= lo && $3 <= hi { s += $2 } END { printf "%.0f", s }' "$R.qdepth.map") bytes in range; cmp and $(cat "$TESTDIR/got-compare.out")); map == depth/$spec's == expected: $(map_summary "$TESTDIR/got-default.map"); depth.json, depth/1, layer/1 unchanged; listed as: $desc"
done
