#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Relative backing file names are resolved against the directory of the image
# that names them, not the current directory:
#   a/top.qcow2  -> "../b/mid.qcow2"
#   b/mid.qcow2  -> "../c/base.qcow2"   (relative to b/, not to a/)
#   c/base.qcow2 -> "base.raw"           (c/base.raw)
# and the plugin runs from a fourth directory, run/.  Decoys with the same
# names are placed where a wrong resolution would find them.  Also a chain
# with an absolute backing name, and file= given as an absolute path.
source "$(dirname "$0")/functions.sh"

mkdir a b c run
truncate -s 2M c/base.raw
qemu-io -f raw c/base.raw -c 'write -P 0x81 0 2M' > /dev/null
(cd c && mkimg -b base.raw -F raw base.qcow2 && qio base.qcow2 'write -P 0x82 0 64k')
(cd b && mkimg -b ../c/base.qcow2 -F qcow2 mid.qcow2 && qio mid.qcow2 'write -P 0x83 1M 64k')
(cd a && mkimg -b ../b/mid.qcow2 -F qcow2 top.qcow2 && qio top.qcow2 'write -P 0x84 1600k 4k')
qemu-img info --backing-chain a/top.qcow2 | grep -E '^(image|backing file):' | sed 's/^/    /'

# Decoys: what a resolution relative to the wrong directory would open.
mkdir -p run/c b/b
mkimg run/c/base.qcow2 2M; qio run/c/base.qcow2 'write -P 0xee 0 2M'
mkimg b/b/mid.qcow2 2M;    qio b/b/mid.qcow2 'write -P 0xee 0 2M'

cd run
check_image ../a/top.qcow2
check_image "$TESTDIR/a/top.qcow2"
cd "$TESTDIR/a"
check_image top.qcow2

# Absolute backing name.
cd "$TESTDIR"
mkimg -b "$TESTDIR/b/mid.qcow2" -F qcow2 a/abs-top.qcow2
qio a/abs-top.qcow2 'write -P 0x85 0 4k'
cd run
check_image ../a/abs-top.qcow2

# A backing name with qemu's file protocol, "file:NAME": qemu strips the
# prefix and opens NAME from its working directory, not from the image's
# directory; the plugin from the directory nbdkit started in.  A decoy
# where the image's directory would find it.
cd "$TESTDIR"
mkdir fp
qemu-img create -q -f qcow2 -u -b file:c/base.qcow2 -F qcow2 fp/ftop.qcow2 2M
qio fp/ftop.qcow2 'write -P 0x86 64k 4k'
mkdir -p fp/c; mkimg fp/c/base.qcow2 2M; qio fp/c/base.qcow2 'write -P 0xee 0 2M'
# (qemu as the reference from this directory too: a json: name is opened
# from the current directory, not from the image's)
fjson() { printf 'json:{"driver": "qcow2", "file": {"driver": "file", "filename": "%s"}}' "$1"; }
QEMU_REF=$(fjson fp/ftop.qcow2) check_image fp/ftop.qcow2
qemu-img create -q -f qcow2 -u -b "file:$TESTDIR/b/mid.qcow2" -F qcow2 fp/fabs.qcow2 2M
cd run
QEMU_REF=$(fjson ../fp/fabs.qcow2) check_image ../fp/fabs.qcow2
