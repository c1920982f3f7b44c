#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The plugin is read-only and never writes any file of the chain:
#  - nbdinfo --can write reports false (exit status 2), --is read-only true;
#  - writes by a client are refused (qemu-io cannot open it read-write,
#    nbdcopy to the export fails);
#  - after serving (reads, a full copy, map queries, refused writes), the
#    image, its backing files and its external data file have unchanged
#    mtime, size and sha256.
source "$(dirname "$0")/functions.sh"

mkimg ro-base.qcow2 2M
qio ro-base.qcow2 'write -P 0x41 0 2M'
mkimg -o data_file=ro-top.raw -b ro-base.qcow2 -F qcow2 ro-top.qcow2
qio ro-top.qcow2 'write -P 0x42 64k 64k'
# Dirty + lazy refcounts: a writer would want to repair it on open.
mkimg -o lazy_refcounts=on -b ro-top.qcow2 -F qcow2 ro-dirty.qcow2
qio ro-dirty.qcow2 'write -P 0x43 1M 4k'
qcow2_set_incompat_bit ro-dirty.qcow2 0
files=(ro-base.qcow2 ro-top.qcow2 ro-top.raw ro-dirty.qcow2)
qemu-img convert -f qcow2 -O raw ro-dirty.qcow2 expected.raw   # before the snapshot

touch -d '2001-02-03 04:05:06' "${files[@]}"
stat -c '%n %s %Y' "${files[@]}" > before.stat
sha256sum "${files[@]}" > before.sha

rc=0
plugin_run ro-dirty.qcow2 -- sh -c 'nbdinfo --can write "$uri"' || rc=$?
[ "$rc" -eq 2 ] || fail "nbdinfo --can write: exit status $rc, expected 2 (false)"
log "OK nbdinfo --can write: false (exit 2)"
plugin_run ro-dirty.qcow2 -- sh -c 'nbdinfo --is read-only "$uri"' ||
    fail "nbdinfo --is read-only: not read-only"
log "OK nbdinfo --is read-only: true"

head -c 64k /dev/zero | tr '\0' '\125' > junk.raw
# Every command is checked (set -e), and each write must fail because the
# export is read-only, not for another reason.
plugin_run ro-dirty.qcow2 -- bash -c '
    set -e
    nbdcopy "$uri" copy.raw
    nbdinfo --map "$uri" > /dev/null
    if qemu-io -f raw "$uri" -c "write -P 0x99 0 4k" > qio-write.out 2>&1; then
        echo "qemu-io could write"; exit 1; fi
    if nbdcopy junk.raw "$uri" > nbdcopy-write.out 2>&1; then
        echo "nbdcopy could write"; exit 1; fi
    qemu-io -r -f raw "$uri" -c "read -P 0x43 1M 4k" -c "read -P 0x42 64k 64k" > qio-read.out
' || fail "a write was accepted, or a read failed"
grep -q "Could not open image: Permission denied" qio-write.out ||
    { show_file qio-write.out; fail "qemu-io's write did not fail for lack of write permission"; }
grep -q "the destination is read-only" nbdcopy-write.out ||
    { show_file nbdcopy-write.out; fail "nbdcopy's write did not fail because the export is read-only"; }
# qemu-io exits 0 even when a pattern does not match: read its output.
[ "$(grep -c '^read [0-9]*/[0-9]* bytes' qio-read.out)" -eq 2 ] && ! grep -q 'Pattern verification failed' qio-read.out ||
    { show_file qio-read.out; fail "reading back the written patterns failed"; }
compare_bytes expected.raw copy.raw "nbdcopy of ro-dirty.qcow2 made while testing writes"
log "OK writes refused: qemu-io: $(head -n1 qio-write.out | cut -c1-120); nbdcopy: $(head -n1 nbdcopy-write.out | cut -c1-120)"

stat -c '%n %s %Y' "${files[@]}" > after.stat
sha256sum "${files[@]}" > after.sha
diff -u before.stat after.stat || fail "mtime or size of a chain file changed"
diff -u before.sha after.sha || fail "content of a chain file changed"
log "OK ${#files[@]} files unchanged after serving: $(tr '\n' ';' < after.stat)"

# (last, as qemu is involved on the reference side)
check_image ro-dirty.qcow2
