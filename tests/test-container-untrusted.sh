#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The container analysis (file/N, file/N.json) of crafted images whose
# metadata claims sizes the file cannot hold: memory and time must be
# bounded by the file, not by the claims, and the counts must stay
# qemu-img check's.  (These are the defects a first fuzzing run found;
# see fuzz/ and README.md, "Fuzzing".)
#  - every bitmap of the directory claims a 1 GiB bitmap table: qemu
#    refuses to open such an image; we either refuse too or analyse it
#    without allocating the claim;
#  - every snapshot claims a 32 MiB L1 table (its real one moved to the
#    end of the file, so that the rest reads as zeros): same counts as
#    qemu-img check, and no 32 MiB allocation;
#  - a refcount table of 16 clusters whose entries all point at one
#    refcount block: same counts as qemu-img check, in bounded time (the
#    overrun statistics once walked every entry's block: minutes);
#  - 256 L1 entries all pointing at one L2 table whose 8192 entries all
#    map one data cluster without the COPIED flag (2 million references
#    and COPIED mismatches from a 450 KiB file): same counts as qemu-img
#    check, no memory per reference (the metadata map keeps one entry per
#    structure), and work per distinct L2 table, not per L1 entry;
#  - file and backing file names that are not UTF-8: file/N.json is valid
#    JSON and says the names as qemu-img info --output=json does.
container_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$container_testsdir/functions.sh"
source "$container_testsdir/container-functions.sh"

cat > craft.py <<'PY'
import struct, sys

def be(f, off, fmt):
    f.seek(off)
    return struct.unpack('>' + fmt, f.read(struct.calcsize('>' + fmt)))[0]

def put(f, off, fmt, v):
    f.seek(off)
    f.write(struct.pack('>' + fmt, v))

def append_cluster_aligned(f, cs, data):
    f.seek(0, 2)
    end = (f.tell() + cs - 1) // cs * cs
    f.seek(end)
    f.write(data)
    return end

what, path = sys.argv[1], sys.argv[2]
with open(path, 'r+b') as f:
    cs = 1 << be(f, 20, 'I')
    if what == 'bitmap-table':
        off = be(f, 100, 'I')                   # header_length
        while be(f, off, 'I') != 0x23852875:    # bitmaps extension
            off += 8 + ((be(f, off + 4, 'I') + 7) & ~7)
        n, d = be(f, off + 8, 'I'), be(f, off + 8 + 16, 'Q')
        for i in range(n):                      # bitmap_table_size = 2^27
            put(f, d + 8, 'I', 1 << 27)
            d += (24 + be(f, d + 20, 'I') + be(f, d + 18, 'H') + 7) & ~7
    elif what == 'snapshot-l1':
        n, off = be(f, 60, 'I'), be(f, 64, 'Q')
        for i in range(n):
            l1, size = be(f, off, 'Q'), be(f, off + 8, 'I')
            f.seek(l1)
            put(f, off, 'Q', append_cluster_aligned(f, cs, f.read(size * 8)))
            put(f, off + 8, 'I', 4 << 20)       # 32 MiB
            off += (40 + be(f, off + 36, 'I') + be(f, off + 12, 'H') +
                    be(f, off + 14, 'H') + 7) & ~7
    elif what == 'shared-l2':
        # Every L1 entry points at the first L2 table, whose every entry
        # maps the first data cluster, without the COPIED flag.
        l1_size, l1 = be(f, 36, 'I'), be(f, 40, 'Q')
        l1e = be(f, l1, 'Q')
        l2 = l1e & 0x00fffffffffffe00
        l2e = be(f, l2, 'Q') & ~(1 << 63)
        f.seek(l1)
        f.write(struct.pack('>Q', l1e) * l1_size)
        f.seek(l2)
        f.write(struct.pack('>Q', l2e) * (cs // 8))
    elif what == 'shared-refblock':
        block = be(f, be(f, 48, 'Q'), 'Q')
        table = struct.pack('>Q', block) * (16 * cs // 8)
        put(f, 48, 'Q', append_cluster_aligned(f, cs, table))
        put(f, 56, 'I', 16)
PY

# serve_json IMG OUT [SECONDS] : file/1.json of IMG into OUT, and the
# peak RSS (VmHWM, KiB) of the nbdkit server that served it into
# OUT.hwm, within SECONDS (default 30) of wall-clock time.  (With --run,
# nbdkit forks: the parent runs the command, the child serves; so the
# server is the nbdkit child of the command's parent.)  Returns nbdkit's
# status.
serve_json() {
    QCOW2MAP_TEST_TIMEOUT=${3:-30} plugin_run "$1" -- bash -c '
        nbdcopy "nbd+unix:///file/1.json?socket=$unixsocket" "'"$2"'"
        for p in $(cat /proc/$PPID/task/*/children); do
            [ "$(cat /proc/$p/comm)" = nbdkit ] &&
                awk "/^VmHWM:/ {print \$2}" /proc/$p/status > "'"$2"'.hwm"
        done
        [ -s "'"$2"'.hwm" ]'
}

# same_check JSON IMG : our check counts are qemu-img check's (which
# leaves out a count of 0).
same_check() {
    local q; q=$(layer_qemu_check "$2" "$2.qcheck")
    [ "$q" = 2 ] || hard_error "$2: qemu-img check exit status $q, expected 2 (corruptions)"
    local k
    for k in leaks corruptions image-end-offset; do
        [ "$(jq_num "$1" ".check.\"$k\"")" = "$(jq_num "$2.qcheck.json" ".\"$k\" // 0")" ] ||
            fail "$2: $k: ours $(jq ".check.\"$k\"" "$1"), qemu-img check $(jq ".\"$k\" // 0" "$2.qcheck.json")"
    done
    log "$2: leaks, corruptions, image-end-offset as qemu-img check: $(jq -c .check "$1")"
}

# hwm_within IMG BASE_KIB SLACK_KIB
hwm_within() {
    local hwm; hwm=$(cat "$1.json.hwm")
    [ "$hwm" -le $(($2 + $3)) ] ||
        fail "$1: peak RSS $hwm KiB, more than the intact image's $2 KiB + $3 KiB"
    log "$1: peak RSS $hwm KiB (intact image: $2 KiB)"
}

slack=$((8 * 1024))             # KiB; a claim below is 32 MiB or more

# --- a 1 GiB bitmap table claimed by each of two bitmaps.
mkimg -o cluster_size=4k bm.qcow2 1M
qemu-img bitmap --add bm.qcow2 b0
qemu-img bitmap --add bm.qcow2 b1
qio bm.qcow2 'write -P 0x5a 0 64k'
serve_json bm.qcow2 bm-intact.json || fail "bm.qcow2 (intact): not served"
cp bm.qcow2 bm-big.qcow2
python3 craft.py bitmap-table bm-big.qcow2
if (cd "$TESTDIR" && qemu-img info bm-big.qcow2) > /dev/null 2>&1; then
    hard_error "qemu-img opens bm-big.qcow2: the test expects qemu to refuse it"
fi
rc=0; serve_json bm-big.qcow2 bm-big.qcow2.json || rc=$?
if [ "$rc" -ne 0 ]; then
    # qemu refuses the image; so may we, at startup, naming the file.
    grep -q "bm-big.qcow2" "$PLUGIN_LAST_STDERR" ||
        fail "bm-big.qcow2: refused without naming the file"
    log "bm-big.qcow2: refused at startup, as qemu does"
else
    jq -e . bm-big.qcow2.json > /dev/null || fail "bm-big.qcow2: file/1.json is not valid JSON"
    hwm_within bm-big.qcow2 "$(cat bm-intact.json.hwm)" "$slack"
fi

# --- 32 MiB L1 tables claimed by four snapshots.
mkimg -o cluster_size=4k snap.qcow2 1M
qio snap.qcow2 'write -P 0x6b 0 64k'
for s in 1 2 3 4; do qemu-img snapshot -c "s$s" snap.qcow2; done
serve_json snap.qcow2 snap-intact.json || fail "snap.qcow2 (intact): not served"
cp snap.qcow2 snap-big.qcow2
python3 craft.py snapshot-l1 snap-big.qcow2
serve_json snap-big.qcow2 snap-big.qcow2.json || fail "snap-big.qcow2: file/1.json not served"
hwm_within snap-big.qcow2 "$(cat snap-intact.json.hwm)" "$slack"
same_check snap-big.qcow2.json snap-big.qcow2

# --- 131072 refcount table entries, all pointing at the same block.
mkimg shared.qcow2 1M
qio shared.qcow2 'write -P 0x7c 0 64k'
python3 craft.py shared-refblock shared.qcow2
start=$(date +%s)
serve_json shared.qcow2 shared.qcow2.json 10 || fail "shared.qcow2: file/1.json not served in 10 s"
log "shared.qcow2: analysed in $(($(date +%s) - start)) s"
same_check shared.qcow2.json shared.qcow2

# --- 2^21 references to one data cluster through one L2 table.
mkimg shared-l2.qcow2 128G
qio shared-l2.qcow2 'write -P 0x8d 0 64k'
serve_json shared-l2.qcow2 shared-l2-intact.json || fail "shared-l2.qcow2 (intact): not served"
python3 craft.py shared-l2 shared-l2.qcow2
[ "$(peek_be shared-l2.qcow2 36 4)" = 256 ] || hard_error "shared-l2.qcow2: l1_size is not 256 (premise)"
serve_json shared-l2.qcow2 shared-l2.qcow2.json || fail "shared-l2.qcow2: file/1.json not served"
hwm_within shared-l2.qcow2 "$(cat shared-l2-intact.json.hwm)" "$slack"
same_check shared-l2.qcow2.json shared-l2.qcow2
[ "$(jq '[.metadata[] | select(.type == "l2-table")] | length' shared-l2.qcow2.json)" = 1 ] ||
    fail "shared-l2.qcow2: the shared L2 table is not listed once in the metadata map"

# --- names that are not UTF-8 (a stray \xff, a truncated sequence, an
# overlong '/', a surrogate, and valid é and U+1F600 around them).
odd=$(printf 'b\xffa\xe2\x82s\xc0\xafe\xed\xa0\x80-\xc3\xa9\xf0\x9f\x98\x80')
qemu-img create -q -f raw "$odd.raw" 1M
qemu-img create -q -f qcow2 -b "$odd.raw" -F raw "top$odd.qcow2" 1M
serve_json "top$odd.qcow2" odd.json || fail "non-UTF-8 names: file/1.json not served"
jq -e . odd.json > /dev/null || { show_file odd.json; fail "non-UTF-8 names: file/1.json is not valid JSON"; }
qemu-img info --output=json "$TESTDIR/top$odd.qcow2" > odd-qemu.json
[ "$(jq '.header."backing-file"' odd.json)" = "$(jq '."backing-filename"' odd-qemu.json)" ] ||
    fail "backing file name: ours $(jq '.header."backing-file"' odd.json), qemu $(jq '."backing-filename"' odd-qemu.json)"
[ "$(jq .file odd.json)" = "$(jq .filename odd-qemu.json)" ] ||
    fail "file name: ours $(jq .file odd.json), qemu $(jq .filename odd-qemu.json)"
grep -q 'b\\uFFFDa\\uFFFDs\\uFFFDe\\uFFFD-\\u00E9\\uD83D\\uDE00.raw' odd.json ||
    fail "backing file name not escaped as qemu escapes it: $(grep backing-file odd.json)"
log "non-UTF-8 names: $(jq -c .header.\"backing-file\" odd.json), as qemu-img info"

# Every other case of qemu's decoder and escapes, compared as bytes with
# qemu-img info's JSON: control characters, '"', '\\', DEL, \xC0\x80
# (U+0000 in qemu's modified UTF-8), a noncharacter, a code point past
# U+10FFFF, a 5-byte sequence, a lone continuation byte, a lead byte at
# the end.
odd2=$(printf 'x\t\n\r\b\f"\\\x7f\x01\xc0\x80\xef\xbf\xbe\xf4\x90\x80\x80\xf8\x88\x80\x80\x80\x80y\xc3')
qemu-img create -q -f raw "$odd2" 1M
qemu-img create -q -f qcow2 -b "$odd2" -F raw odd2.qcow2 1M
serve_json odd2.qcow2 odd2.json || fail "odd2.qcow2: file/1.json not served"
jq -e . odd2.json > /dev/null || { show_file odd2.json; fail "odd2.qcow2: file/1.json is not valid JSON"; }
qemu-img info --output=json odd2.qcow2 > odd2-qemu.json
ours=$(sed -n 's/^ *"backing-file": \(".*"\),$/\1/p' odd2.json)
theirs=$(sed -n 's/^ *"backing-filename": \(".*"\),$/\1/p' odd2-qemu.json)
[ -n "$theirs" ] && [ "$ours" = "$theirs" ] ||
    fail "backing file name escaped as $ours, qemu-img info: $theirs"
log "odd2.qcow2: backing file $ours, byte for byte as qemu-img info"

log "OK"
