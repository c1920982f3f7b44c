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
