#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Create the demo backing chain base.qcow2 <- top.qcow2 (64 MiB guest) in
# the current directory: the chain of the README and the man pages'
# examples, and of tests/test-literal-outputs.sh, which pins their output.
set -euo pipefail
qemu-img create -q -f qcow2 base.qcow2 64M
qemu-io -c 'write -P 0xaa 0 8M' -c 'write -P 0xbb 32M 4M' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 64M
qemu-io -c 'write -P 0xcc 1M 1M' -c 'write -z 32M 1M' top.qcow2 >/dev/null
