#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# External data files (incompatible feature bit 2), with relative names that
# must be resolved relative to the directory of the qcow2 image, not the
# current directory: the images live in img/, the plugin runs from run/.
# (qemu 7.2 itself opens a relative data file name relative to its current
# directory, so the qemu reference side of check_image runs in img/.)
#  - data_file=NAME.raw, with data, zero clusters, discards;
#  - data_file_raw=on (the raw file is a valid raw image of the disk);
#  - an external data file in a subdirectory (data/sub.raw);
#  - an image with an external data file and a backing file;
#  - data file names that look like protocol or json: names
#    ("nbd:colon.raw", 'json:{"driver":"file"}'): qemu >= 9.1 (and
#    Debian 12's 7.2, which has the fix) opens them as plain file names
#    (qemu commit 7ead94699861, CVE-2024-4467), and so do we.
source "$(dirname "$0")/functions.sh"

mkdir img run img/data
cd img
mkimg -o data_file=ext.raw ext.qcow2 2M
qio ext.qcow2 'write -P 0x21 0 64k' 'write -P 0x22 300k 5k' 'write -P 0x23 1M 512k' \
    'write -z 1088k 64k' 'discard 1280k 64k' 'write -P 0x24 2044k 4k'
mkimg -o data_file=extraw.raw,data_file_raw=on extraw.qcow2 2M
qio extraw.qcow2 'write -P 0x31 0 64k' 'write -P 0x32 300k 5k' 'write -z 640k 128k' \
    'discard 1M 64k' 'write -P 0x33 2047k 1k'
mkimg -o data_file=data/sub.raw,cluster_size=4k sub.qcow2 1M
qio sub.qcow2 'write -P 0x41 8k 12k' 'write -P 0x42 999k 1k'
mkimg ebase.qcow2 1M
qio ebase.qcow2 'write -P 0x51 0 1M'
mkimg -o data_file=etop.raw -b ebase.qcow2 -F qcow2 etop.qcow2
qio etop.qcow2 'write -P 0x52 64k 4k' 'write -z 256k 64k' 'write -P 0x53 700k 100k'
# qemu-img create would parse the name; amend only records it.
i=0
for n in 'nbd:colon.raw' 'json:{"driver":"file"}'; do
    i=$((i + 1)); f=colon$i; mkimg -o data_file=$f.raw $f.qcow2 1M
    qio $f.qcow2 'write -P 0x61 0 64k' 'write -z 128k 64k' 'write -P 0x62 900k 8k'
    cp $f.raw "$n"
    qemu-img amend -f qcow2 -o "data_file=${n//,/,,}" $f.qcow2 ||
        hard_error "qemu-img amend -o data_file=$n failed"
    rm $f.raw
    [ "$(qemu-img info --output=json $f.qcow2 | jq -r '.["format-specific"].data["data-file"]')" = "$n" ] ||
        hard_error "$f.qcow2: data file name is not $n"
done
[ -f ext.raw ] && [ -f extraw.raw ] && [ -f data/sub.raw ] && [ -f etop.raw ] ||
    hard_error "data files not where expected"
for f in ext extraw sub etop; do
    [ $(( $(qcow2_incompat $f.qcow2) & 4 )) -ne 0 ] || hard_error "$f.qcow2 lacks the data file bit"
done

cd ../run
for f in ext extraw sub etop colon1 colon2; do
    check_image ../img/$f.qcow2
done
# And with an absolute path to the image, still from run/.
check_image "$TESTDIR/img/ext.qcow2"

# The data file must not be looked up in the current directory: put a decoy
# ext.raw with different content in run/ and check again.
head -c 2M /dev/zero | tr '\0' '\377' > ext.raw
check_image ../img/ext.qcow2
