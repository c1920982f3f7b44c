#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Startup refusals caused by files other than the top image:
#  - the backing file is missing (deleted after the overlay was created), at
#    the first and at the second level of a chain;
#  - the backing file name is a directory;
#  - the backing format in the header is one the plugin does not handle (vmdk);
#  - the external data file is missing;
#  - an encrypted image deep in the chain is in test-refuse-encryption.sh.
source "$(dirname "$0")/functions.sh"

mkimg gone.qcow2 1M
mkimg -b gone.qcow2 -F qcow2 orphan.qcow2
qio orphan.qcow2 'write -P 0x11 0 64k'
rm gone.qcow2
expect_startup_error orphan.qcow2 'no such file|not found|missing|open' 'gone\.qcow2'

mkimg gone2.qcow2 1M
mkimg -b gone2.qcow2 -F qcow2 mid.qcow2
mkimg -b mid.qcow2 -F qcow2 top.qcow2
rm gone2.qcow2
expect_startup_error top.qcow2 'no such file|not found|missing|open' 'gone2\.qcow2'

mkdir adir.qcow2
mkimg -u -b adir.qcow2 -F qcow2 over-dir.qcow2 1M
expect_startup_error over-dir.qcow2 'directory|regular|not a|open|read' 'adir\.qcow2'

qemu-img create -q -f vmdk disk.vmdk 1M
mkimg -b disk.vmdk -F vmdk over-vmdk.qcow2 1M
expect_startup_error over-vmdk.qcow2 'format|vmdk' 'over-vmdk\.qcow2|disk\.vmdk'

mkimg -o data_file=lost.raw withdata.qcow2 1M
qio withdata.qcow2 'write -P 0x22 0 64k'
rm lost.raw
expect_startup_error withdata.qcow2 'no such file|not found|missing|open|data' 'lost\.raw'
