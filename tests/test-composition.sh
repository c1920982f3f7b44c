#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The plugin and the depth filter composed with nbdkit's own filters, as
# the man pages' "Composition with other filters" sections say:
#  - blocksize minblock=4096 (which rounds the export size down to a
#    multiple of 4096): file/N.json and depth.json keep their whole content
#    (padded with spaces to a multiple of 4 KiB), in either filter order;
#    the guest views are unchanged;
#  - a size-changing filter between the depth filter and the plugin: the
#    depth views are refused with a message naming that cause;
#  - cow over the plugin: one overlay shared by every export (a write to ""
#    shows in layer/2 and in file/1);
#  - --filter=depth --filter=cow: every export read-only (the depth filter
#    opens what is below it read-only);
#  - --filter=cow --filter=depth: writable, the overlay again shared by all
#    exports (a write to "" shows in depth/2).
depth_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$depth_testsdir/functions.sh"
source "$depth_testsdir/depth-functions.sh"

mkimg base.qcow2 4M
qio base.qcow2 'write -P 0x11 0 2M'
mkimg -b base.qcow2 -F qcow2 top.qcow2
qio top.qcow2 'write -P 0x22 1M 64k' 'write -z 3M 64k'
export C_DIR=$TESTDIR

# ---- JSON exports under blocksize minblock=4096
plugin_run top.qcow2 -- sh -c '
    nbdcopy "nbd+unix:///file/1.json?socket=$unixsocket" "$C_DIR/plain-file1.json"' ||
    fail "reading file/1.json failed"
depth_run top.qcow2 -- sh -c '
    nbdcopy "nbd+unix:///depth.json?socket=$unixsocket" "$C_DIR/plain-depth.json"' ||
    fail "reading depth.json failed"
for f in plain-file1.json plain-depth.json; do
    size=$(stat -c %s "$f")
    [ "$size" -gt 0 ] && [ $((size % 4096)) -eq 0 ] ||
        fail "$f: $size bytes, expected a non-zero multiple of 4096"
    [ "$(tail -c 1 "$f" | od -An -c | tr -d ' ')" = '\n' ] || fail "$f does not end in a newline"
    # After the document: spaces only, then the newline.
    jq -e . "$f" > /dev/null || fail "$f is not valid JSON"
done
log "OK file/1.json $(stat -c %s plain-file1.json) bytes, depth.json $(stat -c %s plain-depth.json) bytes: multiples of 4096, valid JSON"

# Over the plugin: file/1.json and the guest disk.
plugin_run top.qcow2 --filter=blocksize minblock=4096 -- sh -c '
    nbdcopy "nbd+unix:///file/1.json?socket=$unixsocket" "$C_DIR/bs-file1.json"
    nbdinfo --size "$uri" > "$C_DIR/bs-guest.size"' ||
    fail "serving with --filter=blocksize minblock=4096 failed"
cmp plain-file1.json bs-file1.json || fail "file/1.json differs under --filter=blocksize minblock=4096"
[ "$(cat bs-guest.size)" = 4194304 ] || fail "guest size under blocksize: $(cat bs-guest.size)"
# blocksize outside the depth filter, and between it and the plugin.
plugin_run top.qcow2 --filter=blocksize --filter="$FILTER" minblock=4096 -- sh -c '
    nbdcopy "nbd+unix:///depth.json?socket=$unixsocket" "$C_DIR/bs-outer-depth.json"' ||
    fail "serving with --filter=blocksize --filter=depth failed"
depth_run top.qcow2 --filter=blocksize minblock=4096 -- sh -c '
    nbdcopy "nbd+unix:///depth.json?socket=$unixsocket" "$C_DIR/bs-inner-depth.json"
    nbdcopy "nbd+unix:///file/1.json?socket=$unixsocket" "$C_DIR/bs-inner-file1.json"' ||
    fail "serving with --filter=depth --filter=blocksize failed"
cmp plain-depth.json bs-outer-depth.json || fail "depth.json differs under --filter=blocksize --filter=depth"
cmp plain-depth.json bs-inner-depth.json || fail "depth.json differs under --filter=depth --filter=blocksize"
cmp plain-file1.json bs-inner-file1.json || fail "file/1.json differs under --filter=depth --filter=blocksize"
log "OK blocksize minblock=4096 (over the plugin, outside and inside the depth filter): JSON exports whole"

# ---- a size-changing filter between the depth filter and the plugin
mkimg odd.qcow2 $((4 * 1048576 + 512))
rc=0
DEPTH_QUIET=1 depth_run odd.qcow2 --filter=blocksize minblock=4096 -- sh -c '
    if nbdinfo --size "nbd+unix:///depth/1?socket=$unixsocket"; then exit 3; fi
    nbdinfo --size "$uri"' > odd.out || rc=$?
[ "$rc" -eq 0 ] || { show_file "$DEPTH_LAST_STDERR"; fail "odd.qcow2 under blocksize: depth/1 served or \"\" refused (rc $rc)"; }
msg="depth filter: the export below it has 4194304 bytes but the guest disk of $TESTDIR/odd.qcow2 has 4194816: a filter between them changes the size (put --filter=depth last, next to the plugin), or the plugin is not qcow2map"
grep -Fq -- "error: $msg" "$DEPTH_LAST_STDERR" ||
    { show_file "$DEPTH_LAST_STDERR"; fail "the depth filter's refusal does not name the size-changing filter"; }
log "OK --filter=depth --filter=blocksize on a $((4 * 1048576 + 512))-byte disk: depth/1 refused: $msg"

# ---- cow: one overlay for every export
# (a function defined inside each bash -c: /bin/sh, which nbdkit --run uses,
# drops exported bash functions)
export IS_RO='is_ro() { nbdinfo --json --no-content "$1" | jq -r .exports[0].is_read_only; }'
plugin_run top.qcow2 --filter=cow -- bash -c '
    set -e; eval "$IS_RO"
    [ "$(is_ro "$uri")" = false ]
    qemu-io -f raw -c "write -P 0x55 0 64k" "$uri"
    qemu-io -f raw -c "read -P 0x55 0 64k" "nbd+unix:///layer/2?socket=$unixsocket"
    qemu-io -f raw -c "read -P 0x55 0 64k" "nbd+unix:///file/1?socket=$unixsocket"' > cow.out 2>&1 ||
    { show_file cow.out; fail "--filter=cow: could not write"; }
[ "$(grep -c '^read 65536/65536' cow.out)" -eq 2 ] && ! grep -q 'Pattern verification failed' cow.out ||
    { show_file cow.out; fail "--filter=cow: the write to \"\" is not seen by layer/2 and file/1"; }
log "OK --filter=cow: a write to \"\" is read back from layer/2 and file/1 (one overlay)"

depth_run top.qcow2 --filter=cow -- bash -c '
    eval "$IS_RO"
    echo "\"\" $(is_ro "$uri") depth/1 $(is_ro "nbd+unix:///depth/1?socket=$unixsocket")"
    if qemu-io -f raw -c "write -P 0x55 0 64k" "$uri" 2>&1; then echo WROTE; fi' > depth-cow.out 2>&1 ||
    { show_file depth-cow.out; fail "--filter=depth --filter=cow failed"; }
grep -Fxq '"" true depth/1 true' depth-cow.out && ! grep -q WROTE depth-cow.out ||
    { show_file depth-cow.out; fail "--filter=depth --filter=cow: expected every export read-only"; }
log "OK --filter=depth --filter=cow: \"\" and depth/1 read-only, a write fails"

plugin_run top.qcow2 --filter=cow --filter="$FILTER" -- bash -c '
    set -e; eval "$IS_RO"
    [ "$(is_ro "$uri")" = false ]
    qemu-io -f raw -c "write -P 0x55 1M 64k" "$uri"
    qemu-io -f raw -c "read -P 0x55 1M 64k" "nbd+unix:///depth/2?socket=$unixsocket"' > cow-depth.out 2>&1 ||
    { show_file cow-depth.out; fail "--filter=cow --filter=depth: could not write"; }
grep -q '^read 65536/65536' cow-depth.out && ! grep -q 'Pattern verification failed' cow-depth.out ||
    { show_file cow-depth.out; fail "--filter=cow --filter=depth: the write to \"\" is not seen by depth/2"; }
log "OK --filter=cow --filter=depth: writable; a write to \"\" at 1M (depth 1) is read back from depth/2 (one overlay)"
