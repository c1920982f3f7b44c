#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Backing loops must be refused at startup (made with qemu-img rebase -u,
# which does not open the new backing file):
#  - a -> b -> a
#  - self loop a -> a
#  - a -> b -> c -> b (the loop does not include the top image)
#  - a loop through a different name for the same file (symlink).
source "$(dirname "$0")/functions.sh"

loop_names='(loop1|loop2)\.qcow2'

mkimg loop1.qcow2 1M
mkimg -b loop1.qcow2 -F qcow2 loop2.qcow2
qemu-img rebase -u -b loop2.qcow2 -F qcow2 loop1.qcow2
expect_startup_error loop1.qcow2 'loop' "$loop_names"
expect_startup_error loop2.qcow2 'loop' "$loop_names"

mkimg self.qcow2 1M
qemu-img rebase -u -b self.qcow2 -F qcow2 self.qcow2
expect_startup_error self.qcow2 'loop'

mkimg c.qcow2 1M
mkimg -b c.qcow2 -F qcow2 b.qcow2
mkimg -b b.qcow2 -F qcow2 a.qcow2
qemu-img rebase -u -b b.qcow2 -F qcow2 c.qcow2
expect_startup_error a.qcow2 'loop' '(a|b|c)\.qcow2'

mkimg sl1.qcow2 1M
ln -s sl1.qcow2 alias.qcow2
mkimg -b alias.qcow2 -F qcow2 sl2.qcow2
qemu-img rebase -u -b sl2.qcow2 -F qcow2 sl1.qcow2
expect_startup_error sl2.qcow2 'loop' '(sl1|sl2|alias)\.qcow2'

# Not a loop: a file of the chain named again as a *raw* backing file
# ends the chain there (found by difftest).  qemu opens it as raw bytes,
# so the guest shows the qcow2 file itself where the top image has no
# cluster.
mkimg -o cluster_size=4k selfraw.qcow2 64k
qio selfraw.qcow2 'write -P 7 4k 4k'
qemu-img rebase -u -b selfraw.qcow2 -F raw selfraw.qcow2
mkimg -o cluster_size=4k mid.qcow2 64k
qio mid.qcow2 'write -P 8 8k 4k'
mkimg -o cluster_size=4k -b mid.qcow2 -F qcow2 topraw.qcow2
qemu-img rebase -u -b mid.qcow2 -F qcow2 topraw.qcow2
qemu-img rebase -u -b topraw.qcow2 -F raw mid.qcow2
for img in selfraw.qcow2 topraw.qcow2; do
    qemu-img convert -f qcow2 -O raw "$img" "$img.raw" ||
        fail "$img: qemu-img convert must open a chain ending in a raw file of the chain"
    [ "$(head -c 3 "$img.raw")" = QFI ] ||
        fail "$img: qemu's guest must start with the raw backing file's qcow2 magic"
    # (check_image would compare map.json, which needs qemu-img info
    # --backing-chain: that one calls the chain a loop)
    plugin_run "$img" -- sh -c 'nbdcopy "$uri" "$0" && nbdinfo --json --map "$uri" > "$1"' \
        "$PWD/$img.ours" "$PWD/$img.ours.map" || fail "$img: not served"
    compare_bytes "$img.raw" "$img.ours" "guest bytes of $img"
    qemu_nbd_start "$PWD/$img"
    nbdinfo --json --map "$QEMU_NBD_URI" | map_normalize > "$img.qemu.norm"
    qemu_nbd_stop
    map_normalize < "$img.ours.map" > "$img.ours.norm"
    _compare_maps "$img.ours.norm" "$img.qemu.norm" "$img"
done
log "OK a file of the chain named again as a raw backing file: served as qemu serves it"
