#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Test driver for the TESTS named test-X-via.filter (tests/Makefile.am):
# runs test-X.sh with QCOW2MAP_VIA=filter, so that its images are served
# by the qcow2map filter over nbdkit's file plugin and checked against the
# same references (qemu-img convert, qemu-nbd maps) as through the plugin.
set -e
t=${1%-via.filter}
t=${t##*/}
QCOW2MAP_VIA=filter exec bash "$(cd "$(dirname "$0")" && pwd)/$t.sh"
