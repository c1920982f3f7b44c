#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Image locking with the depth filter, which opens the chain a second time
# in the same process (its own file descriptions, its own OFD locks):
#  - no conflict with the plugin: every file (image, qcow2 backing file,
#    external data file) is locked twice at qemu's reader bytes, and the
#    guest disk and depth.json are served correctly; a second server
#    (plugin alone) and qemu-img info read the same chain meanwhile;
#  - while it serves, a qemu writer gets qemu's lock error;
#  - a writer on the backing file: refused with one line;
#  - the filter honours the plugin's locking=off and force-share=on.
depth_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$depth_testsdir/functions.sh"
source "$depth_testsdir/depth-functions.sh"

mkimg base.qcow2 2M
qio base.qcow2 'write -P 0x11 0 1M'
mkimg -o data_file=top.raw -b base.qcow2 -F qcow2 top.qcow2
qio top.qcow2 'write -P 0x22 512k 512k'
files=(top.qcow2 top.raw base.qcow2)
R="$TESTDIR/ref"
qemu_depth_refs top.qcow2 "$R"

# -------------------------------------------- the filter and the plugin
next_id
pidA="$_SOCKDIR/a$ID.pid" sockA="$_SOCKDIR/a$ID.sock"
nbdkit_background "$sockA" "$pidA" "plugin server" "$PLUGIN" file=top.qcow2
depth_run top.qcow2 -- bash -c "
    set -e
    \"\$LOCK_BYTES\" -c ${files[*]} > locks.txt
    nbdcopy \"\$uri\" guest.raw
    nbdcopy 'nbd+unix:///?socket=$sockA' guest-a.raw
    nbdcopy \"nbd+unix:///depth.json?socket=\$unixsocket\" depth.json
    qemu-img info --backing-chain top.qcow2 > info.out
    if qemu-io -f qcow2 -c 'write 0 4k' top.qcow2 > qio.out 2>&1; then exit 1; fi
    if qemu-io -f raw -c 'write 0 4k' top.raw > qio-data.out 2>&1; then exit 1; fi
" || fail "serving with the depth filter beside a plugin server and qemu-img info failed"
_kill_pidfile "$pidA"
# Three holders of byte 100 etc.: server A, and the plugin and the filter
# of the depth server.
for f in "${files[@]}"; do echo "100:3 201:3 203:3"; done > want.txt
diff -u want.txt locks.txt || fail "lock bytes (server A + plugin + filter)"
compare_bytes "$R.full.raw" guest.raw "guest disk through the filter"
compare_bytes "$R.full.raw" guest-a.raw "guest disk through the second server"
depth_normalize < depth.json > depth.map
compare_files "$R.qdepth.map" depth.map "depth map (qemu-nbd -A vs depth.json)"
grep -q '^backing file: base.qcow2' info.out || fail "qemu-img info: $(cat info.out)"
grep -qF "can't open device top.qcow2: Failed to get \"write\" lock" qio.out ||
    fail "qemu-io on top.qcow2: $(cat qio.out)"
grep -qF "can't open device top.raw: Failed to get \"write\" lock" qio-data.out ||
    fail "qemu-io on top.raw: $(cat qio-data.out)"
log "OK plugin + filter each lock ${files[*]} (100 201 203), beside another server and qemu-img info; qemu-io refused: $(head -n1 qio.out)"

# ------------------------------------------ a writer on the backing file
writer_start qcow2 base.qcow2
rc=0
DEPTH_QUIET=1 depth_run top.qcow2 -- true || rc=$?
[ "$rc" -ne 0 ] || fail "served although a writer holds base.qcow2"
[ "$(wc -l < "$DEPTH_LAST_STDERR")" -eq 1 ] &&
    grep -qF "$(pwd -P)/base.qcow2: Failed to get shared \"write\" lock: another process has the image open for writing" \
         "$DEPTH_LAST_STDERR" ||
    { show_file "$DEPTH_LAST_STDERR"; fail "expected one line naming base.qcow2"; }
log "OK refused: $(cat "$DEPTH_LAST_STDERR")"

# ------------------------------------------------------------ overrides
depth_run top.qcow2 locking=off -- sh -c '
    nbdcopy "nbd+unix:///depth.json?socket=$unixsocket" off.json' ||
    fail "locking=off: not served with the filter despite the writer"
writer_stop
cmp depth.json off.json || fail "depth.json differs with locking=off"
depth_run top.qcow2 locking=off -- sh -c '"$LOCK_BYTES" top.qcow2 top.raw base.qcow2 > off-locks.txt'
[ -z "$(tr -d ' \n' < off-locks.txt)" ] || fail "locking=off: locks held: $(cat off-locks.txt)"
depth_run top.qcow2 force-share=on -- sh -c '"$LOCK_BYTES" -c top.qcow2 top.raw base.qcow2 > fs-locks.txt'
[ "$(sort -u fs-locks.txt)" = "100:2" ] || fail "force-share=on: locks $(cat fs-locks.txt)"
rc=0
DEPTH_QUIET=1 depth_run top.qcow2 locking=maybe -- true || rc=$?
[ "$rc" -ne 0 ] && [ "$(wc -l < "$DEPTH_LAST_STDERR")" -eq 1 ] &&
    grep -q 'locking=maybe: expected on, off or auto' "$DEPTH_LAST_STDERR" ||
    { show_file "$DEPTH_LAST_STDERR"; fail "locking=maybe"; }
log "OK locking=off (served despite a writer, no locks), force-share=on (byte 100 only), bad value refused"
