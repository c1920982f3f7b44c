#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The qcow2map filter over a source that fails, and never written to:
#  A. nbdkit's error filter under the decoder failing every read: the
#     connection fails with one line naming the source and the host offset;
#     once the errors stop (error-pread-file removed), the same server
#     serves the image with qemu's bytes;
#  B. a plugin whose reads fail past a host offset (nbdkit's eval plugin):
#     on ONE connection, reads of the guest range stored there fail (EIO)
#     with a line naming the source, the guest offset and the cause, and
#     reads elsewhere, before and after, succeed with the right bytes;
#  C. the image file truncated under a running server: a new connection
#     reads it as qemu reads the truncated file (data clusters past the
#     end read as zeros), bytes and map equal to qemu's;
#  D. nbdkit without -r: the export is read-only, a write fails, and the
#     image is unchanged.
source "$(dirname "$0")/functions.sh"

mkimg img.qcow2 8M
qio img.qcow2 'write -P 0x11 0 64k' 'write -P 0x22 4M 64k' 'write -P 0x33 6M 64k'
qemu-img convert -O raw img.qcow2 img.ref.raw
sum_before=$(sha256sum < img.qcow2)
h4=$(host_offset_of img.qcow2 4194304); h6=$(host_offset_of img.qcow2 6291456)
[ "$h4" -lt "$h6" ] || hard_error "unexpected layout: 4M at $h4, 6M at $h6"

# --- A. error filter under the decoder
sock=$_SOCKDIR/a.sock pidf=$_SOCKDIR/a.pid
touch trigger
nbdkit_background "$sock" "$pidf" "nbdkit file --filter=qcow2map --filter=error" \
    -v --log=stderr -r file img.qcow2 --filter="$QCOW2MAP_FILTER" --filter=error \
    error-pread=EIO error-pread-rate=100% error-pread-file="$PWD/trigger" 2> a.err
uri="nbd+unix:///?socket=$sock"
if nbdinfo --size "$uri" > /dev/null 2> a.client.err; then
    fail "A: the image was served while every read of the source failed"
fi
grep -E "error: plugin export '': read of [0-9]+ bytes at host offset 0: Input/output error" a.err > a.lines ||
    { show_file a.err; fail "A: no line naming the source and the failed read"; }
log "OK A: connection refused: $(head -n1 a.lines)"
rm trigger
nbdcopy "$uri" a.raw
compare_bytes img.ref.raw a.raw "A: the image once the source reads again"
log "OK A: the same server serves the image once the errors stop"
_kill_pidfile "$pidf"

# --- B. reads fail past host offset h4 (eval plugin), one connection
# (The script's commands must not inherit the ASan runtime that a
# sanitized build preloads into nbdkit: dd aborts under it.)
size=$(stat -c %s img.qcow2)
nbdkit_v b.err -U - -r eval \
    get_size="echo $size" \
    pread='if [ $(($4 + $3)) -gt '"$h4"' ]; then echo "EIO injected failure at $4" >&2; exit 1; fi
           unset LD_PRELOAD; dd if='"$PWD"'/img.qcow2 skip=$4 count=$3 iflag=skip_bytes,count_bytes status=none' \
    --filter="$QCOW2MAP_FILTER" \
    --run 'qemu-io -r -f raw "$uri" -c "read -P 0x11 0 64k" -c "read 4M 64k" -c "read -P 0x11 0 64k" -c "read 6M 64k" -c "read -P 0 2M 64k"' \
    > b.out 2>&1 || true
awk '/^read failed/ { print "fail"; next } /^Pattern verification failed/ { print "bad"; next }
     /^read [0-9]+\/[0-9]+ bytes at offset/ { print "ok" }' b.out | tr '\n' ' ' > b.results
[ "$(cat b.results)" = "ok fail ok fail ok " ] ||
    { show_file b.out; show_file b.err; fail "B: reads gave '$(cat b.results)', expected ok fail ok fail ok"; }
grep -E "error: plugin export '': guest offset 4194304: .*host offset $h4: Input/output error" b.err > b.lines ||
    { show_file b.err; fail "B: no line naming the source, guest offset 4194304 and host offset $h4"; }
log "OK B: reads in one connection: $(cat b.results)"
log "  logged: $(head -n1 b.lines)"

# --- C. the file truncated under a running server
cp img.qcow2 trunc.qcow2
sock=$_SOCKDIR/c.sock pidf=$_SOCKDIR/c.pid
nbdkit_background "$sock" "$pidf" "nbdkit file trunc.qcow2 --filter=qcow2map" \
    -v --log=stderr -r file trunc.qcow2 --filter="$QCOW2MAP_FILTER" 2> c.err
uri="nbd+unix:///?socket=$sock"
nbdcopy "$uri" c1.raw
compare_bytes img.ref.raw c1.raw "C: before the truncation"
truncate -s "$h6" trunc.qcow2
qemu-img convert -O raw trunc.qcow2 trunc.ref.raw
nbdcopy "$uri" c2.raw
compare_bytes trunc.ref.raw c2.raw "C: after the truncation (expected: qemu-img convert of the truncated file)"
qemu_nbd_start trunc.qcow2
nbdinfo --json --map "$QEMU_NBD_URI" | map_normalize > c.qemu.map
qemu_nbd_stop
nbdinfo --json --map "$uri" | map_normalize > c.ours.map
_compare_maps c.ours.map c.qemu.map "the truncated trunc.qcow2"
_kill_pidfile "$pidf"
log "OK C: after the file was truncated, a new connection reads it as qemu does"

# --- D. never written
nbdkit_v d.err -U - file img.qcow2 --filter="$QCOW2MAP_FILTER" \
    --run 'nbdinfo --json "$uri" > d.json; qemu-io -f raw "$uri" -c "write -P 0x99 0 64k" 2>&1' > d.out || true
[ "$(jq -r '.exports[0].is_read_only' d.json)" = true ] || { cat d.json >&2; fail "D: export not read-only"; }
grep -q 'write failed\|read-only\|Read-only\|Operation not permitted\|Permission denied' d.out ||
    { show_file d.out; fail "D: the write did not fail"; }
[ "$(sha256sum < img.qcow2)" = "$sum_before" ] || fail "D: img.qcow2 changed"
log "OK D: read-only export without -r, the write failed ($(head -n1 d.out)), image unchanged"
