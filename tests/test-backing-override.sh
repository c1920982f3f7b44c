#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# backing=, backing-format=, backing.N= (and backing-format.N=) replace the
# backing file an image records, as qemu's json: "backing" option does:
#  - a moved base (qcow2, and raw with and without backing-format=;
#    backing-format=file: the file's bytes, as qemu's "driver": "file");
#  - a recorded backing file that exists, replaced by another image;
#  - backing= (empty): no backing file, qemu's "backing": null;
#  - backing.2= for layer 2 of a 3-layer chain (moved, and removed);
# each compared with qemu opening the same json: filename: guest bytes
# (qemu-img convert), base:allocation (qemu-nbd), and through the depth
# filter (which opens the chain itself) depth.json and every depth view
# against qemu-nbd -A; layer/2 follows the override.
# Errors: backing.N for a layer the chain does not have, a missing file,
# a bad format, a backing-format.N for a layer without a backing file, a
# raw layer given a backing file: one line naming the parameter.
depth_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$depth_testsdir/functions.sh"
source "$depth_testsdir/depth-functions.sh"

qnode() { qcow2_node "$1" "${2:-}"; }
rawnode() { echo "{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$1\"}}"; }

# check_override IMG QEMU_JSON PARAMS... : plugin (check_image) and depth
# filter (check_chain) with PARAMS against qemu on json:QEMU_JSON.
check_override() {
    local img=$1 json=$2; shift 2
    QEMU_REF="json:$json" check_image "$img" "$@"
    QEMU_REF="json:$json" CHAIN_PARAMS="$*" check_chain "$img"
}

mkdir moved
mkimg base.qcow2 4M
qio base.qcow2 'write -P 0x11 0 3M' 'write -z 512k 64k'
mkimg -b base.qcow2 -F qcow2 top.qcow2
qio top.qcow2 'write -P 0x22 1M 128k' 'write -z 2M 64k'
mv base.qcow2 moved/
expect_startup_error top.qcow2 'No such file' 'base\.qcow2'

# Moved base: format probed, and given.
check_override top.qcow2 "$(qnode top.qcow2 "$(qnode moved/base.qcow2)")" backing=moved/base.qcow2
check_override top.qcow2 "$(qnode top.qcow2 "$(qnode moved/base.qcow2)")" backing=moved/base.qcow2 backing-format=qcow2
# Absolute path, from another directory.
mkdir run
(cd run && QEMU_REF="json:$(qnode ../top.qcow2 "$(qnode "$TESTDIR/moved/base.qcow2")")" \
    check_image ../top.qcow2 backing="$TESTDIR/moved/base.qcow2")

# Removed backing file: qemu's "backing": null.
check_override top.qcow2 "$(qnode top.qcow2 null)" backing=

# A recorded backing file that exists, replaced by another one (smaller: the
# override's own size counts, zeros past its end).
mkimg other.qcow2 2M
qio other.qcow2 'write -P 0x33 0 2M'
mkimg -b other.qcow2 -F qcow2 top2.qcow2 4M
qio top2.qcow2 'write -P 0x44 64k 64k'
check_override top2.qcow2 "$(qnode top2.qcow2 "$(qnode moved/base.qcow2)")" backing=moved/base.qcow2

# Raw backing file, moved: probed (not qcow2 -> raw) and given.
truncate -s 4M base.raw
qemu-io -f raw -c 'write -P 0x55 0 1M' -c 'write -P 0x56 3M 512k' base.raw > /dev/null
mkimg -b base.raw -F raw top-raw.qcow2 4M
qio top-raw.qcow2 'write -P 0x66 512k 64k'
mv base.raw moved/
check_override top-raw.qcow2 "$(qnode top-raw.qcow2 "$(rawnode moved/base.raw)")" backing=moved/base.raw
check_override top-raw.qcow2 "$(qnode top-raw.qcow2 "$(rawnode moved/base.raw)")" backing=moved/base.raw backing-format=raw
# backing-format=file: qemu's file protocol driver alone, the same bytes
# (of a qcow2 file: its header and tables, as qemu serves them).  qemu's
# reference: a copy of the overlay that records the moved file with
# backing format "file" (a json: "backing" with "driver": "file" is
# refused by qemu: the parent's "file" option is inherited).
for t in top-raw.qcow2:moved/base.raw top.qcow2:moved/base.qcow2; do
    cp "${t%%:*}" "ref-file-${t%%:*}"
    qemu-img rebase -u -b "$TESTDIR/${t#*:}" -F file "ref-file-${t%%:*}"
    QEMU_REF="$TESTDIR/ref-file-${t%%:*}" check_image "${t%%:*}" backing="${t#*:}" backing-format=file
    QEMU_REF="$TESTDIR/ref-file-${t%%:*}" CHAIN_PARAMS="backing=${t#*:} backing-format=file" check_chain "${t%%:*}"
done

# Three layers, top -> mid -> base; the base of the middle layer moved.
mkimg b3.qcow2 4M
qio b3.qcow2 'write -P 0x71 0 4M'
mkimg -b b3.qcow2 -F qcow2 m3.qcow2
qio m3.qcow2 'write -P 0x72 1M 1M'
mkimg -b m3.qcow2 -F qcow2 t3.qcow2
qio t3.qcow2 'write -P 0x73 1536k 64k'
mkdir moved2 && mv b3.qcow2 moved2/
expect_startup_error t3.qcow2 'No such file' 'b3\.qcow2'
check_override t3.qcow2 "$(qnode t3.qcow2 "$(qnode m3.qcow2 "$(qnode moved2/b3.qcow2)")")" backing.2=moved2/b3.qcow2
# Layer 2 without a backing file.
check_override t3.qcow2 "$(qnode t3.qcow2 "$(qnode m3.qcow2 null)")" backing.2=
# Both layers overridden: top -> moved2/b3 directly (m3 skipped).
check_override t3.qcow2 "$(qnode t3.qcow2 "$(qnode moved2/b3.qcow2)")" backing.1=moved2/b3.qcow2

# layer/2 follows the override: the moved base alone.
qemu-img convert -f qcow2 -O raw moved2/b3.qcow2 b3.raw
plugin_run t3.qcow2 backing.2=moved2/b3.qcow2 -- sh -c 'nbdcopy "nbd+unix:///layer/3?${uri#*\?}" layer3.raw'
compare_bytes b3.raw layer3.raw "layer/3 of t3.qcow2 with backing.2=moved2/b3.qcow2"
log "OK layer/3 of t3.qcow2 is moved2/b3.qcow2"

# Errors: one line naming the parameter.
expect_startup_error t3.qcow2 'backing\.4=: .*has only 3 layer' 't3\.qcow2' backing.2=moved2/b3.qcow2 backing.4=
expect_startup_error top.qcow2 'backing-format\.3=: .*has only 2 layer' 'top\.qcow2' backing=moved/base.qcow2 backing-format.3=qcow2
expect_startup_error top.qcow2 'No such file' 'backing=nowhere\.qcow2: ' backing=nowhere.qcow2
expect_startup_error top.qcow2 'the format must be qcow2, raw or file' 'backing-format=vmdk: ' backing-format=vmdk
expect_startup_error top.qcow2 'expected backing\.N with N a layer number' 'backing\.0: ' backing.0=moved/base.qcow2
expect_startup_error top.qcow2 'backing-format\.1=qcow2: layer 1 .* has no backing file' 'top\.qcow2' backing= backing-format=qcow2
expect_startup_error top-raw.qcow2 'backing\.2=: layer 2 .* is a raw image' 'base\.raw' backing=moved/base.raw backing.2=moved/base.qcow2
# A qcow2 image read as raw is served as raw, as qemu would; a raw file read
# as qcow2 is refused.
expect_startup_error top-raw.qcow2 'magic|not a qcow2' 'base\.raw' backing=moved/base.raw backing-format=qcow2
