#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The depth filter must not change the plugin's own exports: through the
# filter, without depth=, the default export "" is the guest disk of the whole
# chain exactly as qemu serves it (bytes with and without extents, and the
# base:allocation map), and so is layer/1 of a single-image chain (bytes and
# map of the image alone, as qemu-img map shows).  Block status is requested
# on these pass-through exports by nbdinfo --map and by nbdcopy.
depth_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$depth_testsdir/functions.sh"
source "$depth_testsdir/depth-functions.sh"

mkimg base.qcow2 1M
qio base.qcow2 'write -P 0x11 0 768k'
mkimg -b base.qcow2 -F qcow2 mid.qcow2
qio mid.qcow2 'write -P 0x22 128k 128k' 'write -z 512k 64k'
mkimg -b mid.qcow2 -F qcow2 top.qcow2
qio top.qcow2 'write -P 0x33 0 64k' 'write -z 192k 64k' 'write -P 0x34 900k 8k'

R="$TESTDIR/ref"
qemu_depth_refs top.qcow2 "$R"

export T_DIR=$TESTDIR
rc=0
depth_run top.qcow2 -- bash -c '
    set -e
    nbdcopy --no-extents "$uri" "$T_DIR/default.raw"
    nbdinfo --json --map "$uri" > "$T_DIR/default.json"
    nbdcopy "$uri" "$T_DIR/default.ext.raw"' || rc=$?
assert_no_crash "$rc" "$DEPTH_LAST_STDERR" "export \"\" through the depth filter (nbdinfo --map, nbdcopy)"
[ "$rc" -eq 0 ] || fail "serving \"\" through the depth filter failed (exit $rc)"

compare_bytes "$R.full.raw" "$TESTDIR/default.raw" "\"\" through the filter (nbdcopy --no-extents)"
compare_bytes "$R.full.raw" "$TESTDIR/default.ext.raw" "\"\" through the filter (nbdcopy)"
map_normalize < "$TESTDIR/default.json" > "$TESTDIR/default.map"
compare_files "$R.qalloc.map" "$TESTDIR/default.map" "base:allocation of \"\" through the filter vs qemu-nbd"
log "OK \"\" through the depth filter == qemu's guest disk: bytes identical (with and without extents), map identical: $(map_summary "$TESTDIR/default.map")"
