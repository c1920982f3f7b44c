#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The qcow2map filter over "nbdkit file dir=": each image of the directory
# is its own decoded export NAME, with its views NAME/VIEW (export_name.h).
#  - bytes and base:allocation of NAME equal qemu's (qemu-img convert,
#    qemu-nbd map), "NAME/" is the same disk, NAME/layer/1 too;
#  - NAME/snapshot/s1 reads what qemu-img convert -l s1 reads,
#    NAME/map.json is the plugin's map.json;
#  - nbdinfo --list: an image no client has opened is listed alone, with
#    the plugin's name; once opened, with all its views and descriptions;
#  - (servers run with -v: nbdkit keeps stderr in the background only so)
#  - an image with a backing file fails its connection with one line that
#    names the backing file and says that backing= gives it; with
#    backing.1= it is served, with qemu's bytes; a file that is not qcow2
#    fails its connection; an unknown view fails; the server serves the
#    other images all along;
#  - the depth filter stacked over the qcow2map filter: depth.json equals
#    qemu-nbd -A's map over the file plugin; without file= it refuses with
#    one line.  (nbdinfo --list stops at an export it cannot
#    open, so the images that are refused live in a second directory.)
source "$(dirname "$0")/functions.sh"

mkdir shelf
mkimg shelf/plain.qcow2 8M
qio shelf/plain.qcow2 'write -P 0x11 0 1M' 'write -c -P 0x22 2M 128k' 'write -z 4M 64k'
mkimg shelf/snap.qcow2 4M
qio shelf/snap.qcow2 'write -P 0x33 0 512k'
qemu-img snapshot -c s1 shelf/snap.qcow2
qio shelf/snap.qcow2 'write -P 0x44 0 64k'
mkdir more
mkimg more/base.qcow2 4M
qio more/base.qcow2 'write -P 0x55 0 2M'
mkimg -b base.qcow2 -F qcow2 more/top.qcow2
qio more/top.qcow2 'write -P 0x66 1M 64k'
head -c 1M /dev/urandom > more/raw.img
cp shelf/plain.qcow2 more/
sums_before=$(sha256sum shelf/* more/* | sha256sum)

for i in shelf/plain shelf/snap more/top; do
    qemu-img convert -O raw "$i.qcow2" "$(basename "$i").ref.raw"
done
qemu-img convert -l s1 -O raw shelf/snap.qcow2 snap-s1.ref.raw
qemu_nbd_start shelf/plain.qcow2
nbdinfo --json --map "$QEMU_NBD_URI" | map_normalize > plain.qemu.map
qemu_nbd_stop

sock=$_SOCKDIR/dir.sock pidf=$_SOCKDIR/dir.pid
nbdkit_background "$sock" "$pidf" "nbdkit file dir=shelf --filter=qcow2map" \
    -v --log=stderr -r file dir=shelf --filter="$QCOW2MAP_FILTER" 2> server.err
u() { echo "nbd+unix:///$1?socket=$sock"; }

# Listing before any image was opened: the plugin's exports alone.
nbdinfo --list --json "$(u '')" > list0.json 2> list0.err || true
jq -r '.exports[] | .["export-name"]' list0.json | sort > list0.names
printf '%s\n' plain.qcow2 snap.qcow2 | while read -r n; do
    grep -qx "$n" list0.names || { cat list0.names >&2; fail "first listing lacks $n"; }
done
grep -q 'plain.qcow2/' list0.names && fail "views listed before the image was opened"
log "OK before any connection, nbdinfo --list shows the images alone: $(tr '\n' ' ' < list0.names)"

# Bytes and maps of each image and view.
nbdcopy "$(u plain.qcow2)" plain.raw
compare_bytes plain.ref.raw plain.raw "plain.qcow2 through file dir= and the filter"
nbdcopy --no-extents "$(u plain.qcow2/)" plain2.raw
compare_bytes plain.ref.raw plain2.raw "plain.qcow2/ (the same disk)"
nbdcopy "$(u plain.qcow2/layer/1)" plain3.raw
compare_bytes plain.ref.raw plain3.raw "plain.qcow2/layer/1"
nbdinfo --json --map "$(u plain.qcow2)" | map_normalize > plain.ours.map
_compare_maps plain.ours.map plain.qemu.map "plain.qcow2 through file dir="
# map.json: the plugin's document (one decoder; test-basic-v2-v3 compares
# the plugin's with qemu-img map, and the .filter tests the filter's).
nbdcopy "$(u plain.qcow2/map.json)" plain.map.json
nbdkit_v plugin.err -U - -r "$PLUGIN" shelf/plain.qcow2 \
    --run 'nbdcopy "nbd+unix:///map.json?socket=$unixsocket" plain.plugin.map.json'
cmp plain.plugin.map.json plain.map.json || fail "plain.qcow2/map.json differs from the plugin's map.json"
nbdcopy "$(u snap.qcow2)" snap.raw
compare_bytes snap.ref.raw snap.raw "snap.qcow2"
nbdcopy "$(u snap.qcow2/snapshot/s1)" snap-s1.raw
compare_bytes snap-s1.ref.raw snap-s1.raw "snap.qcow2/snapshot/s1 (expected: qemu-img convert -l s1)"
log "OK bytes of plain.qcow2, plain.qcow2/, plain.qcow2/layer/1, snap.qcow2, snap.qcow2/snapshot/s1; map of plain.qcow2 equals qemu's, its map.json the plugin's"

# Listing now: the opened images with their views and descriptions.
nbdinfo --list --json "$(u '')" > list1.json 2> list1.err || true
for n in plain.qcow2 plain.qcow2/map.json plain.qcow2/layer/1 plain.qcow2/file/1.json \
         snap.qcow2/snapshot/s1; do
    d=$(jq -r --arg n "$n" '.exports[] | select(.["export-name"] == $n) | .description' list1.json)
    [ -n "$d" ] || { jq . list1.json >&2; fail "export $n not listed after its image was opened"; }
    log "  listed $n: $d"
done

_kill_pidfile "$pidf"

# Refusals fail their connection only.
sock=$_SOCKDIR/more.sock pidf=$_SOCKDIR/more.pid
nbdkit_background "$sock" "$pidf" "nbdkit file dir=more --filter=qcow2map" \
    -v --log=stderr -r file dir=more --filter="$QCOW2MAP_FILTER" 2> server.err
if nbdinfo --size "$(u top.qcow2)" > /dev/null 2> top.err; then
    fail "top.qcow2 (with a backing file) was served without backing="
fi
grep -E "plugin export 'top.qcow2': backing file 'base.qcow2': .*backing=PATH" server.err > /dev/null ||
    { show_file server.err; fail "no line naming the backing file of top.qcow2 and backing="; }
log "OK top.qcow2 refused: $(grep -m1 "backing file 'base.qcow2'" server.err)"
if nbdinfo --size "$(u raw.img)" > /dev/null 2> raw.err; then
    fail "raw.img (not qcow2) was served"
fi
grep -q "plugin export 'raw.img': magic: not a qcow2 image" server.err ||
    { show_file server.err; fail "no line saying raw.img is not qcow2"; }
if nbdinfo --size "$(u plain.qcow2/layer/2)" > /dev/null 2>&1; then
    fail "plain.qcow2/layer/2 (no such layer) was served"
fi
grep -q "plugin export 'plain.qcow2': export 'layer/2' not found" server.err ||
    { show_file server.err; fail "no line saying layer/2 of plain.qcow2 does not exist"; }
nbdcopy "$(u plain.qcow2)" plain4.raw
compare_bytes plain.ref.raw plain4.raw "plain.qcow2 after the refusals"
log "OK refusals (backing file, not qcow2, no such view) failed their connections only"
_kill_pidfile "$pidf"

# With backing.1=, the filter reads the backing file from the local file.
sock=$_SOCKDIR/dir2.sock pidf=$_SOCKDIR/dir2.pid
nbdkit_background "$sock" "$pidf" "nbdkit file dir=more --filter=qcow2map backing.1=" \
    -v --log=stderr -r file dir=more --filter="$QCOW2MAP_FILTER" backing.1="$PWD/more/base.qcow2" 2> server2.err
nbdcopy "$(u top.qcow2)" top.raw
compare_bytes top.ref.raw top.raw "top.qcow2 with backing.1=shelf/base.qcow2"
nbdcopy "$(u top.qcow2/layer/2)" base.raw
qemu-img convert -O raw more/base.qcow2 base.ref.raw
compare_bytes base.ref.raw base.raw "top.qcow2/layer/2 (the local backing file)"
_kill_pidfile "$pidf"
log "OK top.qcow2 served with backing.1=: its bytes and its layer 2 equal qemu's"

# The depth filter over the qcow2map filter: it maps the chain itself from
# the local file= it is given (nbdkit-depth-filter(1)), so over the file
# plugin its depth.json is qemu's qemu:allocation-depth; over a plugin
# without file= it refuses to start with one line.
(cd more && qemu-nbd -r -t -e 0 -f qcow2 -A --fork --pid-file="$_SOCKDIR/qa.pid" \
    --socket="$_SOCKDIR/qa.sock" top.qcow2) || fail "qemu-nbd -A failed"
nbdinfo --json --map=qemu:allocation-depth "nbd+unix:///?socket=$_SOCKDIR/qa.sock" |
    map_normalize > depth.qemu
_kill_pidfile "$_SOCKDIR/qa.pid"
nbdkit_v depth.err -U - -r file file=more/top.qcow2 --filter="$FILTER" --filter="$QCOW2MAP_FILTER" \
    backing.1="$PWD/more/base.qcow2" \
    --run 'nbdcopy "nbd+unix:///depth.json?socket=$unixsocket" depth.json' ||
    fail "the depth filter over the qcow2map filter failed"
json_unpad depth.json depth.unpadded.json
map_normalize < depth.unpadded.json > depth.ours
_compare_maps depth.ours depth.qemu "depth.json through --filter=depth --filter=qcow2map (qemu-nbd -A)"
log "OK depth filter over the qcow2map filter: depth.json = qemu-nbd -A ($(wc -l < depth.ours) extents)"
rc=0
nbdkit_v depth2.err -U - -r eval get_size='echo 1M' pread='dd if=/dev/zero count=$3 iflag=count_bytes status=none' \
    --filter="$FILTER" --filter="$QCOW2MAP_FILTER" --run true || rc=$?
[ "$rc" -ne 0 ] && grep -q "file=" depth2.err || { show_file depth2.err; fail "the depth filter without file= did not refuse"; }
log "OK depth filter over the qcow2map filter without file=: refused: $(grep -m1 error depth2.err)"

[ "$(sha256sum shelf/* more/* | sha256sum)" = "$sums_before" ] || fail "an image of the directories changed"
log "OK no image of the directory changed"
