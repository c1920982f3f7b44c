#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Image locking compatible with qemu (lib/image_lock.c).
#  - We hold on every file of the chain the OFD lock bytes that qemu-nbd -r
#    holds on a qcow2 file (100 = consistent read used, 201/203 = write and
#    resize not shared), read from /proc/locks and compared with qemu-nbd's.
#  - A qemu writer first (qemu-nbd without -r, or an interactive qemu-io) on
#    the image, a qcow2 backing file, a raw backing file or an external data
#    file: we refuse to start with one line naming that file.
#  - We first: qemu-io writing any of those files fails with qemu's own lock
#    error, and the file is unchanged.
#  - Two qcow2map servers, qemu-img info and qemu-nbd -r read the same chain
#    at once, with correct bytes.
#  - force-share=on serves despite a writer (and lets a writer in);
#    locking=off takes no lock at all; bad values are refused.
#  - Another process refusing to share "consistent read" stops us as it
#    stops qemu-nbd -r.
source "$(dirname "$0")/functions.sh"

: "${LOCK_HOLDER:=$top_builddir/tests/lock-holder}"
[ -x "$LOCK_HOLDER" ] || hard_error "lock-holder not built: $LOCK_HOLDER"

# refused EXPECTED_FILE MESSAGE [PARAMS...]: the plugin on top.qcow2 (or
# $IMG) must fail to start with exactly one error line naming EXPECTED_FILE
# and containing MESSAGE.
refused() {
    local file=$1 msg=$2; shift 2
    local rc=0
    plugin_run "${IMG:-top.qcow2}" "$@" -- true 2> /dev/null || rc=$?
    [ "$rc" -ne 0 ] || fail "served ${IMG:-top.qcow2} although $file is held"
    [ "$(wc -l < "$PLUGIN_LAST_STDERR")" -eq 1 ] ||
        { show_file "$PLUGIN_LAST_STDERR"; fail "expected one line on stderr"; }
    grep -qF "$(pwd -P)/$file: $msg" "$PLUGIN_LAST_STDERR" ||
        { show_file "$PLUGIN_LAST_STDERR"; fail "expected '$(pwd -P)/$file: $msg'"; }
    log "OK refused: $(cat "$PLUGIN_LAST_STDERR")"
}

WRITE_MSG='Failed to get shared "write" lock: another process has the image open for writing'

# ------------------------------------------------------------- images
mkimg base.qcow2 4M
qio base.qcow2 'write -P 0x11 0 1M'
mkimg -b base.qcow2 -F qcow2 top.qcow2
qio top.qcow2 'write -P 0x22 1M 1M'
qemu-img create -q -f raw raw.img 4M
qemu-io -f raw -c 'write -P 0x33 0 1M' raw.img > /dev/null
mkimg -b raw.img -F raw over-raw.qcow2
mkimg -o data_file=ext.raw ext.qcow2 4M
qio ext.qcow2 'write -P 0x44 2M 1M'
qemu-img convert -O raw top.qcow2 top.expected

# --------------------------------------------------- which bytes we hold
qemu_nbd_start top.qcow2
qemu_top=$(lock_bytes top.qcow2) qemu_base=$(lock_bytes base.qcow2)
qemu_nbd_stop
[ "$qemu_top" = "100 201 203" ] && [ "$qemu_base" = "100 201 203" ] ||
    hard_error "qemu-nbd -r holds '$qemu_top' on top.qcow2, '$qemu_base' on base.qcow2"
[ -z "$(lock_bytes top.qcow2)$(lock_bytes base.qcow2)" ] || hard_error "locks left over"

for chain in "top.qcow2 base.qcow2" "over-raw.qcow2 raw.img" "ext.qcow2 ext.raw"; do
    set -- $chain
    plugin_run "$1" -- "$LOCK_BYTES" "$1" "$2" > bytes.txt
    { echo "$1 $(sed -n 1p bytes.txt)"; echo "$2 $(sed -n 2p bytes.txt)"; } >> ours.txt
done
cat > want.txt <<EOF
top.qcow2 $qemu_top
base.qcow2 $qemu_base
over-raw.qcow2 100 201 203
raw.img 100 201 203
ext.qcow2 100 201 203
ext.raw 100 201 203
EOF
diff -u want.txt ours.txt || fail "lock bytes differ"
log "OK lock bytes as qemu-nbd -r on qcow2 files ($qemu_top), and on raw backing and data files"
[ -z "$(lock_bytes top.qcow2)$(lock_bytes ext.raw)" ] || fail "locks left after the server exited"

# ------------------------------------------- a writer first: we refuse
for case in "qcow2 top.qcow2 top.qcow2" "qcow2 base.qcow2 top.qcow2" \
            "raw raw.img over-raw.qcow2" "raw ext.raw ext.qcow2"; do
    read -r fmt file img <<< "$case"
    writer_start "$fmt" "$file"
    IMG=$img refused "$file" "$WRITE_MSG"
    writer_stop
done

# An interactive qemu-io (a writer that stays open, reading commands from
# a fifo), as a VM would hold its disk.
mkfifo qio.fifo
qemu-io -f qcow2 top.qcow2 < qio.fifo > qio.out 2>&1 &
echo $! > "$_SOCKDIR/qemu-io.pid"
exec 3> qio.fifo
# Wait (bounded by the test timeout) until it holds "write" (byte 101).
deadline=$((SECONDS + QCOW2MAP_TEST_TIMEOUT))
until [[ " $(lock_bytes top.qcow2) " == *" 101 "* ]]; do
    [ "$SECONDS" -lt "$deadline" ] || hard_error "qemu-io did not open top.qcow2: $(cat qio.out)"
    sleep 0.02
done
refused top.qcow2 "$WRITE_MSG"
echo 'write -P 0x55 3M 64k' >&3
exec 3>&-
wait "$(cat "$_SOCKDIR/qemu-io.pid")" || fail "qemu-io failed: $(cat qio.out)"
rm -f "$_SOCKDIR/qemu-io.pid"
grep -q 'wrote 65536/65536 bytes at offset 3145728' qio.out || fail "qemu-io: $(cat qio.out)"
qemu-img convert -O raw top.qcow2 top.expected
log "OK refused while an interactive qemu-io held top.qcow2 (which then wrote and quit)"

# --------------------------- we first: a qemu writer gets qemu's lock error
for case in "qcow2 top.qcow2 top.qcow2" "qcow2 base.qcow2 top.qcow2" \
            "raw raw.img over-raw.qcow2" "raw ext.raw ext.qcow2"; do
    read -r fmt file img <<< "$case"
    sha256sum "$file" > before.sha
    rc=0
    plugin_run "$img" -- sh -c "
        qemu-io -f $fmt -c 'write -P 0x66 0 4k' $file > qio-write.out 2>&1 && exit 1
        nbdinfo --size \"\$uri\" > /dev/null" || rc=$?
    [ "$rc" -eq 0 ] || { show_file qio-write.out; fail "qemu-io could write $file while we served $img"; }
    grep -qF "qemu-io: can't open device $file: Failed to get \"write\" lock" qio-write.out ||
        { show_file qio-write.out; fail "qemu-io on $file: not qemu's lock error"; }
    sha256sum -c --quiet before.sha || fail "$file changed"
    log "OK while serving $img: $(head -n1 qio-write.out)"
done

# ------------------------- many readers at once: two servers, qemu-img info
next_id
pidA="$_SOCKDIR/a$ID.pid" sockA="$_SOCKDIR/a$ID.sock"
nbdkit_background "$sockA" "$pidA" "first server" "${_nbdkit_plugin[@]}" file=top.qcow2
qemu_nbd_start top.qcow2
plugin_run top.qcow2 -- bash -c "
    set -e
    nbdcopy \"\$uri\" b.raw
    nbdcopy 'nbd+unix:///?socket=$sockA' a.raw
    nbdcopy '$QEMU_NBD_URI' q.raw
    qemu-img info top.qcow2 > info.out
    qemu-img info --backing-chain top.qcow2 > info-chain.out" ||
    fail "two servers, qemu-nbd -r and qemu-img info could not all read top.qcow2"
for f in a.raw b.raw q.raw; do compare_bytes top.expected "$f" "reader $f"; done
grep -q '^backing file: base.qcow2' info.out || fail "qemu-img info: $(cat info.out)"
[ "$(lock_bytes top.qcow2)" = "100 201 203" ] || fail "locks while serving: $(lock_bytes top.qcow2)"
qemu_nbd_stop
_kill_pidfile "$pidA"
log "OK two qcow2map servers, qemu-nbd -r and qemu-img info read top.qcow2 at once"

# --------------------------------------------------- overrides
writer_start qcow2 top.qcow2
plugin_run top.qcow2 force-share=on -- sh -c 'nbdinfo --size "$uri"' > size.out ||
    fail "force-share=on: not served despite the writer"
plugin_run top.qcow2 locking=off -- sh -c 'nbdinfo --size "$uri"' >> size.out ||
    fail "locking=off: not served despite the writer"
writer_stop
[ "$(cat size.out)" = "$(printf '4194304\n4194304')" ] || fail "sizes: $(cat size.out)"
log "OK force-share=on and locking=off serve despite a writer"

# force-share=on: what qemu's force-share=on holds (consistent read only),
# so a writer can come in; locking=off: nothing at all.
qemu_nbd_start "driver=qcow2,read-only=on,force-share=on,file.filename=top.qcow2" --image-opts
qemu_fs=$(lock_bytes top.qcow2)
qemu_nbd_stop
plugin_run top.qcow2 force-share=yes -- sh -c '
    "$LOCK_BYTES" top.qcow2 > fs-locks.txt
    qemu-io -f qcow2 -c "write -P 0x77 0 4k" top.qcow2 > fs-write.out' ||
    fail "force-share=on: a qemu writer could not open top.qcow2: $(cat fs-write.out)"
[ "$(cat fs-locks.txt)" = "$qemu_fs" ] && [ "$qemu_fs" = 100 ] ||
    fail "force-share=on holds '$(cat fs-locks.txt)', qemu '$qemu_fs'"
plugin_run top.qcow2 locking=off -- sh -c '"$LOCK_BYTES" top.qcow2 base.qcow2 > off-locks.txt'
[ -z "$(tr -d ' \n' < off-locks.txt)" ] || fail "locking=off holds $(cat off-locks.txt)"
log "OK force-share=on holds byte $qemu_fs as qemu's force-share=on, locking=off holds none"

IMG=top.qcow2
for bad in locking=maybe force-share=2; do
    rc=0
    plugin_run top.qcow2 "$bad" -- true 2> /dev/null || rc=$?
    [ "$rc" -ne 0 ] && grep -q "error: ${bad%%=*}=${bad#*=}: expected" "$PLUGIN_LAST_STDERR" ||
        fail "$bad accepted"
done
plugin_run top.qcow2 locking=on -- sh -c 'nbdinfo --size "$uri"' > /dev/null || fail "locking=on"
log "OK bad values refused; locking=on accepted"

# ------------------------- "consistent read" not shared by another process
next_id
"$LOCK_HOLDER" "$_SOCKDIR/h$ID.pid" base.qcow2 200
rc=0
qemu-nbd -r -f qcow2 --fork --pid-file="$_SOCKDIR/x$ID.pid" --socket="$_SOCKDIR/x$ID.sock" \
         top.qcow2 2> qemu-cr.err || rc=$?
[ "$rc" -ne 0 ] && grep -q 'Failed to get "consistent read" lock' qemu-cr.err ||
    hard_error "qemu-nbd -r was not refused: $(cat qemu-cr.err)"
refused base.qcow2 'Failed to get "consistent read" lock: another process forbids'
refused base.qcow2 'Failed to get "consistent read" lock' force-share=on
plugin_run top.qcow2 locking=off -- sh -c 'nbdinfo --size "$uri"' > /dev/null ||
    fail "locking=off refused"
_kill_pidfile "$_SOCKDIR/h$ID.pid"
log "OK consistent read unshared elsewhere: refused as qemu-nbd -r is ($(head -n1 qemu-cr.err))"
