#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The snapshot/NAME and snapshot-id/ID exports: the guest disk as of an
# internal snapshot of the top image, compared with qemu loading the same
# snapshot (qemu-img convert -l, qemu-nbd -r -l): bytes, extents, size.
#  - v3: several snapshots at different virtual sizes (resize between them),
#    writes, zeroes and discards after each, over a shorter backing file;
#  - v2 (compat=0.10);
#  - extended L2 (subcluster writes before and after the snapshot);
#  - compressed clusters in a snapshot, overwritten later;
#  - names: a name used twice (snapshot/NAME is qemu's first match, the
#    second is listed by id), an empty name (listed by id), id selection;
#  - the listing, and unknown names refused.
source "$(dirname "$0")/functions.sh"

# ---- v3, sizes change between snapshots, over a backing file
mkimg base.qcow2 3M
qio base.qcow2 'write -P 0xb0 0 3M'
mkimg -b base.qcow2 -F qcow2 top.qcow2 2M
qio top.qcow2 'write -P 0x01 0 512k' 'write -z 1M 64k'
qemu-img snapshot -c small top.qcow2
qemu-img resize -q top.qcow2 6M
qio top.qcow2 'write -P 0x02 256k 64k' 'write -P 0x03 4M 1M' 'discard 0 64k'
qemu-img snapshot -c big top.qcow2
qio top.qcow2 'write -P 0x04 0 8k' 'write -z 4M 128k' 'write -P 0x05 5M 4k'
qemu-img snapshot -c later top.qcow2
qemu-img resize -q --shrink top.qcow2 5M
qio top.qcow2 'write -P 0x06 64k 64k'
qemu-img snapshot -l top.qcow2 | sed 's/^/    /'
for s in small big later; do
    check_snapshot top.qcow2 "snapshot/$s" "snapshot.name=$s"
done
check_snapshot top.qcow2 snapshot-id/2 snapshot.id=2
check_image top.qcow2     # the active state is still what "" serves

# ---- v2
mkimg -o compat=0.10 v2.qcow2 2M
qio v2.qcow2 'write -P 0x21 0 1M'
qemu-img snapshot -c first v2.qcow2
qio v2.qcow2 'write -P 0x22 256k 64k' 'discard 512k 64k'
qemu-img snapshot -c second v2.qcow2
qio v2.qcow2 'write -P 0x23 0 2M'
check_snapshot v2.qcow2 snapshot/first snapshot.name=first
check_snapshot v2.qcow2 snapshot/second snapshot.name=second

# ---- extended L2
mkimg -o extended_l2=on,cluster_size=64k extl2.qcow2 2M
qio extl2.qcow2 'write -P 0x31 4k 4k' 'write -P 0x32 64k 2k' 'write -z 128k 8k'
qemu-img snapshot -c sub extl2.qcow2
qio extl2.qcow2 'write -P 0x33 0 4k' 'write -P 0x34 70k 4k' 'write -z 4k 2k'
check_snapshot extl2.qcow2 snapshot/sub snapshot.name=sub

# ---- compressed clusters
mkimg comp.qcow2 2M
qio comp.qcow2 'write -c -P 0x41 0 64k' 'write -c -P 0x42 128k 64k' 'write -P 0x43 1M 64k'
qemu-img snapshot -c packed comp.qcow2
qio comp.qcow2 'write -P 0x44 0 64k' 'write -z 128k 64k'
check_snapshot comp.qcow2 snapshot/packed snapshot.name=packed

# ---- names: duplicate, empty
mkimg names.qcow2 1M
qemu-img snapshot -c dup names.qcow2
qio names.qcow2 'write -P 0x51 0 64k'
qemu-img snapshot -c dup names.qcow2
qio names.qcow2 'write -P 0x52 64k 64k'
qemu-img snapshot -c "" names.qcow2
qio names.qcow2 'write -P 0x53 128k 64k'
check_snapshot names.qcow2 snapshot/dup snapshot.name=dup
check_snapshot names.qcow2 snapshot-id/2 snapshot.id=2
check_snapshot names.qcow2 snapshot-id/3 snapshot.id=3
check_snapshot names.qcow2 snapshot-id/1 snapshot.id=1
list_exports names.qcow2 | grep '^snapshot' > names.list
printf '%s\n' snapshot/dup snapshot-id/2 snapshot-id/3 > names.want
diff -u names.want names.list || fail "names.qcow2: snapshot exports listed differ"
log "OK names.qcow2: listed $(tr '\n' ' ' < names.list)"

# ---- a snapshot L1 table past the end of the file reads as zeros (qemu
# checks only its size and alignment, when the snapshot is loaded); a
# misaligned one is refused when the export is opened, the image still served.
sn_off=$(peek_be top.qcow2 64 8)              # snapshots_offset; entry 1 first
cp top.qcow2 l1-eof.qcow2
poke_be l1-eof.qcow2 "$sn_off" 8 $(( ($(stat -c %s l1-eof.qcow2) / 65536 + 16) * 65536 ))
check_snapshot l1-eof.qcow2 snapshot/small snapshot.name=small
cp top.qcow2 l1-odd.qcow2
poke_be l1-odd.qcow2 "$sn_off" 8 $(( $(peek_be top.qcow2 "$sn_off" 8) + 512 ))
if qemu-img convert -f qcow2 -l snapshot.name=small -O raw l1-odd.qcow2 odd.raw 2> qemu-odd.err; then
    hard_error "recipe: qemu loaded a misaligned snapshot L1 table"
fi
check_image l1-odd.qcow2
list_exports l1-odd.qcow2 | grep -q '^snapshot/small$' && fail "l1-odd.qcow2: snapshot/small listed"
if plugin_run l1-odd.qcow2 -- sh -c 'nbdinfo --size "nbd+unix:///snapshot/small?socket=$unixsocket"' > /dev/null 2>&1; then
    fail "l1-odd.qcow2: snapshot/small with a misaligned L1 table was served"
fi
grep -q "snapshot 'small' (id 1): L1 table offset .* is not aligned" "$PLUGIN_LAST_STDERR" ||
    { show_file "$PLUGIN_LAST_STDERR"; fail "l1-odd.qcow2: no clear message"; }
log "OK misaligned snapshot L1 table: export not listed and refused (qemu: $(head -n1 qemu-odd.err)), the rest served"

# Every listed snapshot export has a description naming id and name.
# (Opened first: the qcow2map filter lists the views of an image once a
# client has opened it.)
plugin_run top.qcow2 -- sh -c 'nbdinfo --size "$uri" > /dev/null; nbdinfo --list --json "$uri"' > top.list.json
[ "$(jq -r '.exports[] | select(.["export-name"] | startswith("snapshot")) | .["export-name"]' top.list.json | tr '\n' ' ')" = \
  "snapshot/small snapshot/big snapshot/later " ] || { show_file top.list.json; fail "top.qcow2: snapshot exports"; }
jq -e '[.exports[] | select(.["export-name"] == "snapshot/big") | .description | test("id 2, name .big.")] | any' top.list.json > /dev/null ||
    { show_file top.list.json; fail "snapshot/big: description"; }

# Unknown snapshots are not exports.
for e in snapshot/nosuch snapshot-id/9 snapshot/ snapshot-id/ snapshot; do
    export E=$e
    if plugin_run top.qcow2 -- sh -c 'nbdinfo --size "nbd+unix:///$E?socket=$unixsocket"' > /dev/null 2>&1; then
        fail "export '$e' must not exist"
    fi
    grep -q "export '$e' not found" "$PLUGIN_LAST_STDERR" || { show_file "$PLUGIN_LAST_STDERR"; fail "'$e': no clear message"; }
done
log "OK unknown snapshot exports refused with a message"
