#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The bitmap/NAME and bitmap/NAME.json exports of persistent dirty bitmaps,
# compared with qemu-nbd -r -B NAME:
#  - several bitmaps: enabled (64k), disabled, granularity 1M and 512k, on a
#    disk whose size is not a multiple of the granularity;
#  - 512-byte clusters and granularity, so that one bitmap spans several
#    bitmap table entries, one of them crafted "all ones";
#  - a bitmap in the top image of a chain;
#  - an in-use (inconsistent) bitmap: not listed, refused with qemu's words;
#  - a directory entry breaking qemu's constraints: startup refused;
#  - the incremental backup round trip: a full copy, writes (data, zeroes,
#    discards, compressed) through qemu-io, then nbdcopy of bitmap/NAME over
#    the full copy equals the new state, and clean ranges are left untouched
#    (nbdcopy --destination-is-zero -S 0 --request-size=GRANULARITY: it skips
#    request-sized chunks that are all zero extents and copies the others
#    whole, so chunks must be granules).
source "$(dirname "$0")/functions.sh"

# ---- several bitmaps
size=$((4 * 1024 * 1024 + 300 * 1024))
mkimg multi.qcow2 $size
qio multi.qcow2 'write -P 0x01 0 1M'
qemu-img bitmap --add multi.qcow2 b64k
qemu-img bitmap --add multi.qcow2 off
qemu-img bitmap --add -g 1M multi.qcow2 b1m
qio multi.qcow2 'write -P 0x02 64k 4k' 'write -z 512k 64k' 'write -P 0x03 2M 100k' 'discard 128k 64k'
qemu-img bitmap --disable multi.qcow2 off      # disabled: keeps what it had
qemu-img bitmap --add -g 512k multi.qcow2 b512k
qio multi.qcow2 'write -P 0x04 4M 200k' 'write -P 0x05 3M 1k'
qemu-img info multi.qcow2 | sed -n '/bitmaps:/,/refcount bits/p' | sed 's/^/    /'
for b in b64k off b1m b512k; do check_bitmap multi.qcow2 $b; done
list_exports multi.qcow2 | grep '^bitmap/' | sort > multi.list
printf '%s\n' bitmap/b1m bitmap/b1m.json bitmap/b512k bitmap/b512k.json bitmap/b64k bitmap/b64k.json \
    bitmap/off bitmap/off.json | sort > multi.want
diff -u multi.want multi.list || fail "multi.qcow2: bitmap exports listed differ"
check_image multi.qcow2

# ---- small clusters: several bitmap table entries, one crafted all-ones
mkimg -o cluster_size=512 small.qcow2 8M
qemu-img bitmap --add -g 512 small.qcow2 fine
qio small.qcow2 'write -P 0x11 1M 8k' 'write -P 0x12 2040k 16k' 'write -P 0x13 6M 1k' 'write -P 0x14 7M 512'
check_bitmap small.qcow2 fine
# Bitmap table entry 1 (guest 2M..4M) := 1, "all bits set".
read -r tbl < <(python3 - small.qcow2 <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
off = 104 if struct.unpack('>I', d[4:8])[0] >= 3 else 72
hl = struct.unpack('>I', d[100:104])[0]
off = hl
while True:
    t, l = struct.unpack('>II', d[off:off + 8])
    if t == 0: sys.exit("no bitmaps extension")
    if t == 0x23852875:
        n, _, size, doff = struct.unpack('>IIQQ', d[off + 8:off + 32]); break
    off += 8 + (l + 7) // 8 * 8
print(struct.unpack('>Q', d[doff:doff + 8])[0])
PY
)
poke_be small.qcow2 $((tbl + 8)) 8 1
check_bitmap small.qcow2 fine

# ---- a chain: the bitmap is the top image's, the bytes the chain's
mkimg base.qcow2 2M
qio base.qcow2 'write -P 0x21 0 2M'
mkimg -b base.qcow2 -F qcow2 top.qcow2 3M
qemu-img bitmap --add top.qcow2 since
qio top.qcow2 'write -P 0x22 256k 64k' 'write -z 1M 64k' 'write -P 0x23 2M 64k' 'discard 1536k 64k'
check_bitmap top.qcow2 since

# ---- in use: qemu will not serve it
cp multi.qcow2 inuse.qcow2
dir_off=$(python3 - inuse.qcow2 <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
off = struct.unpack('>I', d[100:104])[0]
while True:
    t, l = struct.unpack('>II', d[off:off + 8])
    if t == 0x23852875:
        print(struct.unpack('>Q', d[off + 24:off + 32])[0]); break
    off += 8 + (l + 7) // 8 * 8
PY
)
flags=$(peek_be inuse.qcow2 $((dir_off + 12)) 4)
poke_be inuse.qcow2 $((dir_off + 12)) 4 $((flags | 1))      # the first bitmap: b64k
qemu-img info inuse.qcow2 | grep -q 'in-use' || hard_error "recipe: b64k not in use"
(qemu-nbd -r -B b64k -f qcow2 --fork --pid-file="$_SOCKDIR/inuse.pid" --socket="$_SOCKDIR/inuse.sock" inuse.qcow2 2> qemu-inuse.err &&
    hard_error "qemu-nbd served an in-use bitmap") || true
qmsg=$(sed 's/^qemu-nbd: //' qemu-inuse.err)
[ -n "$qmsg" ] || hard_error "qemu-nbd said nothing"
list_exports inuse.qcow2 | grep '^bitmap/' | sort > inuse.list
grep -v '^bitmap/b64k' multi.want | diff -u - inuse.list || fail "inuse.qcow2: listed bitmap exports"
for e in bitmap/b64k bitmap/b64k.json; do
    export E=$e
    if plugin_run inuse.qcow2 -- sh -c 'nbdinfo --size "nbd+unix:///$E?socket=$unixsocket"' > /dev/null 2>&1; then
        fail "inuse.qcow2: $e was served"
    fi
    grep -qF "$qmsg" "$PLUGIN_LAST_STDERR" || { show_file "$PLUGIN_LAST_STDERR"; fail "inuse.qcow2: $e: expected qemu's message: $qmsg"; }
done
check_bitmap inuse.qcow2 off      # the others still are served
log "OK in-use bitmap b64k: not listed, refused with qemu's message ($qmsg)"

# ---- a directory entry qemu rejects (reserved flag bit): startup refused
cp multi.qcow2 badflag.qcow2
poke_be badflag.qcow2 $((dir_off + 12)) 4 $((flags | 0x10))
if qemu-img info badflag.qcow2 > /dev/null 2>&1; then hard_error "recipe: qemu opens badflag.qcow2"; fi
expect_startup_error badflag.qcow2 "Bitmap 'b64k' doesn't satisfy the constraints"

# ---- the incremental backup round trip
mkimg -o cluster_size=64k vm.qcow2 6M
qio vm.qcow2 'write -P 0x31 0 3M' 'write -P 0x32 4M 1M'
qemu-img bitmap --add vm.qcow2 backup-1
qemu-img convert -f qcow2 -O raw vm.qcow2 full.raw           # the full backup
qio vm.qcow2 \
    'write -P 0x41 64k 4k' \
    'write -z 1M 128k' \
    'discard 2M 64k' \
    'write -c -P 0x42 3M 64k' \
    'write -P 0x43 4608k 8k' \
    'write -z -u 5M 64k' \
    'write -P 0x00 2560k 64k'
cp full.raw poisoned.raw
# A clean range (not written since the bitmap began) marked in the copy:
# applying the increment must leave it alone.
dd if=/dev/zero bs=64k count=1 status=none | tr '\0' '\356' |
    dd of=poisoned.raw bs=64k seek=24 conv=notrunc status=none      # 1536k
check_bitmap vm.qcow2 backup-1
jq -e '.[] | select(.type == 1 and .offset <= 1572864 and .offset + .length > 1572864)' \
    "$(ls "$TESTDIR"/bm*.qemu-dirty.json | tail -n1)" > /dev/null && hard_error "recipe: 1536k is dirty"
for dst in full.raw poisoned.raw; do
    export DST=$TESTDIR/$dst
    plugin_run vm.qcow2 -- sh -c '
        nbdcopy --destination-is-zero -S 0 --request-size=65536 -- "nbd+unix:///bitmap/backup-1?socket=$unixsocket" \
            [ nbdkit --exit-with-parent file "$DST" ]' ||
        fail "nbdcopy of bitmap/backup-1 over $dst failed"
done
qemu-img compare -f raw -F qcow2 full.raw vm.qcow2 > compare.out || { cat compare.out; fail "full.raw + bitmap/backup-1 differs from vm.qcow2"; }
log "OK backup round trip: full copy + nbdcopy --destination-is-zero -S 0 --request-size=65536 bitmap/backup-1 = new state ($(cat compare.out))"
cmp -s <(dd if=poisoned.raw bs=64k skip=24 count=1 status=none) \
       <(dd if=/dev/zero bs=64k count=1 status=none | tr '\0' '\356') ||
    fail "the copy of bitmap/backup-1 touched a clean range"
cmp -s <(dd if=poisoned.raw bs=64k skip=0 count=24 status=none) <(dd if=full.raw bs=64k skip=0 count=24 status=none) &&
cmp -s <(dd if=poisoned.raw bs=64k skip=25 status=none) <(dd if=full.raw bs=64k skip=25 status=none) ||
    fail "poisoned.raw + increment differs from the new state outside the marked clean range"
log "OK the increment left a clean range untouched and wrote every dirty one (zeroed ranges included)"
