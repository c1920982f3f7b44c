#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Images with internal snapshots and persistent dirty bitmaps: the active
# state is served (not a snapshot's), whatever the snapshot table and bitmap
# directory contain.
#  - v3 image, two snapshots, then writes, zeroes and discards so that the
#    active L1 differs from the snapshots' L1 tables (and clusters shared with
#    snapshots, refcount > 1, are COWed);
#  - v2 image with a snapshot;
#  - v3 image with persistent bitmaps (enabled and disabled), written after
#    the bitmaps were added, plus a snapshot.
#  - the snapshot's content is checked to differ from what is served.
source "$(dirname "$0")/functions.sh"

img=snap.qcow2
mkimg "$img" 4M
qio "$img" 'write -P 0x11 0 2M'
qemu-img snapshot -c s1 "$img"
qio "$img" 'write -P 0x12 64k 64k' 'write -P 0x13 3M 64k'
qemu-img snapshot -c s2 "$img"
qio "$img" 'write -P 0x14 0 4k' 'write -z 512k 128k' 'discard 1M 64k' 'write -P 0x15 3M 4k'
qemu-img snapshot -l "$img" | sed 's/^/    /'
check_image "$img"

# The served disk is not snapshot s1.
qemu-img convert -f qcow2 -O raw -l snapshot.name=s1 "$img" s1.raw
plugin_run "$img" -- sh -c 'nbdcopy "$uri" served.raw'
if cmp -s s1.raw served.raw; then fail "$img: served the content of snapshot s1"; fi
log "OK $img: the served disk differs from snapshot s1 ($(cmp s1.raw served.raw | head -n1))"

img=snap-v2.qcow2
mkimg -o compat=0.10 "$img" 2M
qio "$img" 'write -P 0x21 0 1M'
qemu-img snapshot -c first "$img"
qio "$img" 'write -P 0x22 256k 64k' 'write -P 0x23 1536k 4k' 'discard 0 64k'
check_image "$img"

img=bitmaps.qcow2
mkimg "$img" 4M
qio "$img" 'write -P 0x31 0 1M'
qemu-img bitmap --add "$img" b-enabled
qemu-img bitmap --add --disable "$img" b-disabled
qemu-img bitmap --add -g 512k "$img" b-gran
qio "$img" 'write -P 0x32 2M 64k' 'write -z 0 64k' 'write -P 0x33 3M 4k'
qemu-img snapshot -c withbitmaps "$img"
qio "$img" 'write -P 0x34 3M 8k'
qemu-img info "$img" | grep -A1 'name:' | sed 's/^/    /' | head -n 6
[ "$(qemu-img info --output=json "$img" | jq '.["format-specific"].data.bitmaps | length')" -eq 3 ] ||
    hard_error "$img should have 3 bitmaps"
check_image "$img"
