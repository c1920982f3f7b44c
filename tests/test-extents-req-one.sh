#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# base:allocation with NBD_CMD_FLAG_REQ_ONE (qemu's NBD client always
# sets it): the one extent returned is the longest the metadata proves,
# not one L2 slice (32 MiB with 64 KiB clusters).  At offsets every 3 MiB
# (and 1 MiB before and after each extent boundary of qemu's map), the
# REQ_ONE extent must have qemu's type and end exactly where the extent of
# qemu-nbd's merged map (nbdinfo --map) containing that offset ends.
# Images: data across several L2 slices, a zero stretch, unallocated
# space; its zlib twin (every compressed cluster is its own run inside
# the plugin); a 2-layer chain whose data comes from both layers.
source "$(dirname "$0")/functions.sh"

py=$(nbd_python)
export RO_PY=$py

mkimg plain.qcow2 256M
qio plain.qcow2 'write -P 1 0 100M' 'write -z 100M 10M' 'write -P 2 110M 80M'
qemu-img convert -c -f qcow2 -O qcow2 plain.qcow2 zlib.qcow2
mkimg -b plain.qcow2 -F qcow2 top.qcow2
qio top.qcow2 'write -P 3 50M 1M' 'write -P 4 140M 3M'

for img in plain.qcow2 zlib.qcow2 top.qcow2; do
    qemu_nbd_start "$img"
    nbdinfo --json --map "$QEMU_NBD_URI" | map_normalize > "$img.qemu.map"
    qemu_nbd_stop
    # Offsets: every 3 MiB, and around each boundary of qemu's map.
    { seq 0 $((3 << 20)) $(((256 << 20) - 1))
      awk '{ e = $1 + $2; for (d = -1048576; d <= 1048576; d += 1048576)
             if (e + d >= 0 && e + d < 268435456) print e + d }' "$img.qemu.map"
    } | sort -n -u > "$img.offsets"
    export RO_OFFSETS="$TESTDIR/$img.offsets" RO_OUT="$TESTDIR/$img.ours"
    plugin_run "$img" -- sh -c '"$RO_PY" -c "
import nbd, sys
h = nbd.NBD(); h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION); h.connect_uri(sys.argv[1])
size = h.get_size()
out = open(sys.argv[3], \"w\")
for line in open(sys.argv[2]):
    off = int(line)
    got = []
    h.block_status(size - off, off, lambda ctx, o, ents, err: got.extend(ents) or 0,
                   nbd.CMD_FLAG_REQ_ONE)
    print(off, got[0], got[1], file=out)
" "$uri" "$RO_OFFSETS" "$RO_OUT"' 2> /dev/null || fail "$img: REQ_ONE block status failed"
    awk -v img="$img" '
        NR == FNR { start[NR] = $1; end[NR] = $1 + $2; type[NR] = $3; n = NR; next }
        {
            off = $1; len = $2; t = $3; found = 0
            for (i = 1; i <= n; i++)
                if (start[i] <= off && off < end[i]) { found = 1; break }
            if (!found) { print img ": offset " off " is not in qemu map"; bad++; next }
            if (t != type[i] || off + len != end[i]) {
                print img ": offset " off ": REQ_ONE extent length " len " type " t \
                      ", qemu: ends at " end[i] " (length " end[i] - off ") type " type[i]
                bad++
            }
            if (len > longest) longest = len
            checked++
        }
        END {
            if (bad) exit 1
            printf "%d offsets, longest REQ_ONE extent %d bytes\n", checked, longest > "/dev/stderr"
            if (longest <= 33554432) { print img ": no REQ_ONE extent longer than one L2 slice (32 MiB)"; exit 1 }
        }' "$img.qemu.map" "$img.ours" 2> "$img.summary" > "$img.diff" ||
        { show_file "$img.diff"; fail "$img: REQ_ONE extents differ from qemu's merged map"; }
    log "OK $img: REQ_ONE extents end where qemu's merged map does: $(cat "$img.summary")"
done
