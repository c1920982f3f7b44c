#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# json-max-size: the JSON exports of one server share one memory budget
# (lib/json_budget.h), so that a fragmented image cannot make the server
# allocate without bound.  On an image of 8192 alternating data and
# unallocated 4 KiB clusters (map.json about 1 MiB):
#  1. json-max-size=256K: opening map.json fails with one line naming the
#     file and json-max-size; the guest disk still serves qemu's bytes,
#     and map.json fails again the same way (no half document kept);
#  2. json-max-size = 1.5 x map.json: map.json opens (same document as
#     with the default budget); layer/1.map.json, which would take the
#     total past the budget, fails; file/1.json (a few KiB) still opens,
#     so the failed document gave its charge back; map.json still reads
#     the same;
#  3. the depth filter's depth.json, in the filter's own budget: fails
#     with json-max-size=256K, opens with the default.
depth_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$depth_testsdir/functions.sh"
source "$depth_testsdir/depth-functions.sh"

py=$(nbd_python)
export JB_PY=$py

mkimg -o cluster_size=4096 frag.qcow2 64M
cmds=()
for ((i = 0; i < 8192; i++)); do cmds+=(-c "write -P $((i % 250 + 1)) $((i * 8192)) 4k"); done
qemu-io -f qcow2 "${cmds[@]}" frag.qcow2 > /dev/null
qemu-img convert -f qcow2 -O raw frag.qcow2 frag.raw

# try EXPORT OUT [nbdkit args]: copy export EXPORT to OUT; sets $rc.
try() {
    local export=$1 out=$2; shift 2
    export JB_EXPORT=$export JB_OUT="$TESTDIR/$out"
    rm -f "$out"
    rc=0
    plugin_run frag.qcow2 "$@" -- sh -c \
        'nbdcopy "nbd+unix:///$JB_EXPORT?socket=$unixsocket" "$JB_OUT"' 2> /dev/null || rc=$?
}
# refused EXPORT [nbdkit args]: the export fails to open, saying why.
refused() {
    local export=$1; shift
    try "$export" refused.out "$@"
    [ "$rc" -ne 0 ] || fail "$export ($*): opened, expected the json-max-size error"
    nbdkit_errors "$PLUGIN_LAST_STDERR" |
        grep -q "frag.qcow2: the JSON exports would need more than json-max-size=" ||
        { show_file "$PLUGIN_LAST_STDERR"; fail "$export ($*): no error naming the file and json-max-size"; }
}

# The reference: map.json with the default budget.
try map.json full.json
[ "$rc" = 0 ] || fail "map.json with the default json-max-size failed"
json_unpad full.json full-doc.json
n=$(jq length full-doc.json)
[ "$n" -ge 8192 ] || fail "map.json has $n entries, expected at least 8192"
doc=$(stat -c %s full-doc.json)
log "OK map.json (default json-max-size): $n entries, $doc bytes"

# 1. A budget smaller than the document.
refused map.json json-max-size=256K
[ "$(nbdkit_errors "$PLUGIN_LAST_STDERR" | grep -c 'json-max-size')" = 1 ] ||
    fail "map.json (json-max-size=256K): expected one error line from nbdkit"
export JB_RAW="$TESTDIR/frag.raw"
plugin_run frag.qcow2 json-max-size=256K -- sh -c '
    nbdcopy "nbd+unix:///map.json?socket=$unixsocket" - > /dev/null 2>&1 && exit 1
    nbdcopy "nbd+unix:///map.json?socket=$unixsocket" - > /dev/null 2>&1 && exit 1
    nbdcopy "$uri" - | cmp - "$JB_RAW"' 2> /dev/null ||
    fail "json-max-size=256K: map.json opened, or the guest disk is not qemu's afterwards"
[ "$(nbdkit_errors "$PLUGIN_LAST_STDERR" | grep -c 'json-max-size')" = 2 ] ||
    fail "json-max-size=256K: map.json refused twice, expected one error line from nbdkit each time"
log "OK json-max-size=256K: map.json refused (twice, one line each), the guest disk still serves qemu's bytes"

# 2. One budget for all documents; a failed one gives its charge back.
budget=$((doc * 3 / 2))
export JB_FULL="$TESTDIR/full.json" JB_DIR="$TESTDIR"
rc=0
plugin_run frag.qcow2 json-max-size=$budget -- sh -c '
    nbdcopy "nbd+unix:///map.json?socket=$unixsocket" - | cmp - "$JB_FULL" || exit 1
    nbdcopy "nbd+unix:///layer/1.map.json?socket=$unixsocket" - > /dev/null 2>&1 && exit 2
    nbdcopy "nbd+unix:///file/1.json?socket=$unixsocket" "$JB_DIR/file1.json" || exit 3
    jq -e .metadata "$JB_DIR/file1.json" > /dev/null || exit 3
    nbdcopy "nbd+unix:///map.json?socket=$unixsocket" - | cmp - "$JB_FULL" || exit 4' 2> /dev/null || rc=$?
case $rc in
    0) ;;
    1) fail "json-max-size=$budget: map.json differs from the default budget's" ;;
    2) fail "json-max-size=$budget: layer/1.map.json opened beyond the shared budget" ;;
    3) fail "json-max-size=$budget: file/1.json refused after a failed document (charge not given back)" ;;
    *) fail "json-max-size=$budget: map.json no longer reads the same ($rc)" ;;
esac
nbdkit_errors "$PLUGIN_LAST_STDERR" | grep -q "json-max-size=$budget bytes" ||
    fail "json-max-size=$budget: layer/1.map.json failed without the json-max-size error"
log "OK json-max-size=$budget (1.5 x map.json): map.json served, layer/1.map.json refused, file/1.json served"

# 3. The depth filter's depth.json.
depth_json() {
    export JB_OUT="$TESTDIR/$1"; shift
    rc=0
    plugin_run frag.qcow2 --filter="$FILTER" "$@" -- sh -c \
        'nbdcopy "nbd+unix:///depth.json?socket=$unixsocket" "$JB_OUT"' 2> /dev/null || rc=$?
}
depth_json depth-small.json json-max-size=256K
[ "$rc" -ne 0 ] || fail "depth.json opened with json-max-size=256K"
nbdkit_errors "$PLUGIN_LAST_STDERR" |
    grep -q "frag.qcow2: the JSON exports would need more than json-max-size=262144" ||
    fail "depth.json (json-max-size=256K): no error naming the file and json-max-size"
depth_json depth.json
[ "$rc" = 0 ] || fail "depth.json with the default json-max-size failed"
json_unpad depth.json depth-doc.json
[ "$(jq length depth-doc.json)" -ge 8192 ] || fail "depth.json: fewer than 8192 extents"
log "OK depth.json: refused with json-max-size=256K, $(stat -c %s depth-doc.json) bytes with the default"
