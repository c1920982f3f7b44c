#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Dirty and corrupt images are served read-only, as they are (qemu -r does
# the same):
#  - lazy_refcounts=on, written by a qemu-io that then aborts (qemu-io's
#    "abort" command): a genuinely dirty image, dirty bit set, refcounts not
#    up to date;
#  - the dirty bit (incompatible bit 0, u64 at offset 72) set by hand on a
#    clean image;
#  - the corrupt bit (incompatible bit 1) set by hand;
#  - both bits.
# The corrupt bit gives a warning on stderr naming the file (checked as
# the exact line); an image without it gives none.
source "$(dirname "$0")/functions.sh"

ulimit -c 0
img=lazy-dirty.qcow2
mkimg -o lazy_refcounts=on "$img" 2M
qio "$img" 'write -P 0x41 0 64k'
if bash -c 'qemu-io -f qcow2 -c "write -P 0x42 512k 128k" -c "write -P 0x43 1M 4k" -c abort "$1"; exit $?' \
        sh "$img" > /dev/null 2>&1; then
    hard_error "qemu-io abort did not abort"
fi
[ $(( $(qcow2_incompat "$img") & 1 )) -eq 1 ] || hard_error "$img is not dirty after abort"
log "$img: dirty bit set by an aborted qemu-io; qemu-img check says: $(qemu-img check "$img" 2>&1 | grep -Ei 'leak|error|clean' | head -n1)"
check_image "$img"

img=dirty-bit.qcow2
mkimg -o lazy_refcounts=on "$img" 2M
qio "$img" 'write -P 0x44 0 1M' 'write -z 64k 64k'
qcow2_set_incompat_bit "$img" 0
check_image "$img"

img=corrupt-bit.qcow2
mkimg "$img" 2M
qio "$img" 'write -P 0x45 0 1M' 'discard 128k 64k'
qcow2_set_incompat_bit "$img" 1
qemu-img info "$img" | grep -q 'corrupt: true' || hard_error "corrupt bit not seen by qemu"
check_image "$img"
# The warning, on stderr, exactly once, naming the file.
warning="nbdkit: qcow2map: warning: $TESTDIR/$img is marked corrupt; serving it read-only"
[ "$(grep -Fxc -- "$warning" "$PLUGIN_LAST_STDERR")" -eq 1 ] ||
    { show_file "$PLUGIN_LAST_STDERR"; fail "$img: expected the warning '$warning' once on stderr"; }
log "OK plugin warned: $warning"

img=dirty-corrupt.qcow2
mkimg -o lazy_refcounts=on "$img" 2M
qio "$img" 'write -P 0x46 1M 1M'
qcow2_set_incompat_bit "$img" 0
qcow2_set_incompat_bit "$img" 1
check_image "$img"
warning="nbdkit: qcow2map: warning: $TESTDIR/$img is marked corrupt; serving it read-only"
[ "$(grep -Fxc -- "$warning" "$PLUGIN_LAST_STDERR")" -eq 1 ] ||
    { show_file "$PLUGIN_LAST_STDERR"; fail "$img: expected the warning '$warning' once on stderr"; }
log "OK plugin warned: $warning"

# No such warning for an image without the corrupt bit.
check_image dirty-bit.qcow2
! grep -qi 'corrupt' "$PLUGIN_LAST_STDERR" ||
    { show_file "$PLUGIN_LAST_STDERR"; fail "dirty-bit.qcow2 (not corrupt): a corrupt warning was printed"; }
log "OK no corrupt warning for dirty-bit.qcow2"
