#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Backing file without a backing format header extension: the format must be
# probed (qcow2 magic -> qcow2, otherwise raw), as qemu does when opening.
#
# qemu-img 7.2 refuses to create such images (create -u without -F, rebase -u
# without -F and amend all fail with "backing format must be specified"), so
# the images are created normally and the backing format extension
# (magic 0xE2792ACA, found by scanning the first cluster) is then edited:
#  - v3 top over a qcow2 base: the extension's magic is changed to an unknown
#    extension type (0x7e57ab1e), which readers must skip;
#  - v2 top over a raw base: the magic is set to 0, the end-of-extensions
#    marker, dropping it and everything after it;
#  - v3 top over a v3 middle (both without the extension) over a raw base.
source "$(dirname "$0")/functions.sh"

mkimg pbase.qcow2 2M
qio pbase.qcow2 'write -P 0x71 0 2M'
mkimg -b pbase.qcow2 -F qcow2 ptop.qcow2
qio ptop.qcow2 'write -P 0x72 64k 64k' 'write -z 1M 64k'
drop_backing_fmt ptop.qcow2 0x7e57ab1e
check_image ptop.qcow2

truncate -s 2M praw.raw
qemu-io -f raw praw.raw -c 'write -P 0x73 0 1M' > /dev/null
mkimg -o compat=0.10 -b praw.raw -F raw ptop-v2.qcow2
qio ptop-v2.qcow2 'write -P 0x74 512k 4k'
drop_backing_fmt ptop-v2.qcow2 0
check_image ptop-v2.qcow2

mkimg -b praw.raw -F raw pmid.qcow2
qio pmid.qcow2 'write -P 0x75 1500k 4k'
mkimg -b pmid.qcow2 -F qcow2 ptop2.qcow2
qio ptop2.qcow2 'write -P 0x76 0 4k'
drop_backing_fmt pmid.qcow2 0x7e57ab1e
drop_backing_fmt ptop2.qcow2 0x7e57ab1e
check_image ptop2.qcow2
