#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Create the chain base.qcow2 <- top.qcow2 (64 MiB guest) of the README's
# and the plugin man page's snapshot, bitmap and map.json examples, in the
# current directory: the base holds 32 MiB of data; the top layer writes
# 1 MiB at 1M, a zero cluster at 32M and a compressed cluster at 40M, then
# takes the internal snapshot "before-upgrade" and adds the persistent
# bitmap "backup-1" (the full backup is the snapshot), then writes 64 KiB
# at 1M and 2 MiB at 48M (what the bitmap records as dirty).
set -euo pipefail
qemu-img create -q -f qcow2 base.qcow2 64M
qemu-io -c 'write -P 0xaa 0 32M' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 64M
qemu-io -c 'write -P 0xcc 1M 1M' -c 'write -z 32M 1M' -c 'write -c -P 0xdd 40M 64k' \
    top.qcow2 >/dev/null
qemu-img snapshot -c before-upgrade top.qcow2
qemu-img bitmap --add top.qcow2 backup-1
qemu-io -c 'write -P 0xee 1M 64k' -c 'write -P 0xff 48M 2M' top.qcow2 >/dev/null
