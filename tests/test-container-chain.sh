#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Container views along backing chains: every qcow2 layer N has file/N and
# file/N.json (listed, described with the layer's path), a raw layer has
# neither, nor does a layer number past the chain.
#  - ov.qcow2 -> base.qcow2: base has freed clusters (discard with
#    pass-discard-request=off), the overlay a few writes: file/1 and file/2
#    both checked, with round trips (the copy of file/1 keeps the relative
#    backing name, resolved next to it);
#  - top.qcow2 -> mid.qcow2 -> base.raw: file/1, file/2 exist and are
#    checked; file/3 (raw) and file/4 (no such layer) do not exist.
container_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$container_testsdir/functions.sh"
source "$container_testsdir/container-functions.sh"

mkimg base.qcow2 4M
qio base.qcow2 'write -P 0xe1 0 2M' 'write -P 0xe2 3M 64k'
qemu-io --image-opts -c 'discard 1M 512k' "driver=qcow2,file.filename=base.qcow2,pass-discard-request=off" > /dev/null ||
    hard_error "discard failed on base.qcow2"
mkimg -b base.qcow2 -F qcow2 ov.qcow2
qio ov.qcow2 'write -P 0xe3 512k 64k' 'write -P 0xe4 1M 4k' 'write -z 3M 64k'

container_check ov.qcow2 1 ov.qcow2 0
jq -e '.header."backing-file" == "base.qcow2" and .header."backing-format" == "qcow2"' "$CONTAINER_JSON" > /dev/null ||
    fail "ov.qcow2: file/1.json backing-file/backing-format wrong"
jq -e '[.metadata[] | select(.type == "backing-file-name")] | length == 1' "$CONTAINER_JSON" > /dev/null ||
    fail "ov.qcow2: no backing-file-name entry in the metadata map"
container_check ov.qcow2 2 base.qcow2 0 smaller
jq -e '.header."backing-file" == null' "$CONTAINER_JSON" > /dev/null || fail "base.qcow2: file/2.json has a backing file"
container_expect_no_view ov.qcow2 3

truncate -s 4M base.raw
printf 'raw layer data' | dd of=base.raw bs=1 seek=$((2 * 1024 * 1024)) conv=notrunc status=none
mkimg -b base.raw -F raw mid.qcow2
qio mid.qcow2 'write -P 0xe5 0 1M'
mkimg -b mid.qcow2 -F qcow2 top.qcow2
qio top.qcow2 'write -P 0xe6 64k 64k'
container_check top.qcow2 1 top.qcow2 0
container_check top.qcow2 2 mid.qcow2 0
jq -e '.header."backing-file" == "base.raw" and .header."backing-format" == "raw"' "$CONTAINER_JSON" > /dev/null ||
    fail "mid.qcow2: file/2.json backing-file/backing-format wrong"
container_expect_no_view top.qcow2 3
container_expect_no_view top.qcow2 4
container_done
