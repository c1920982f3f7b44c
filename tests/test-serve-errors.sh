#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Errors found while serving fail only the request concerned (EIO), with a
# message naming the file; the server keeps serving.  Each case uses ONE
# nbdkit and ONE NBD connection (qemu-io -r -f raw "$uri" with several read
# commands): reads of the damaged region fail, reads elsewhere - before and
# after the failures - succeed with the right bytes.  What qemu 7.2 reads
# despite the damage reads here too, with qemu's bytes (each rule is
# compared with qemu in test-accept-l1-l2.sh):
#  1. data clusters past the end of the file (file truncated below them)
#     read as zeros, as in qemu; an unaligned host cluster offset fails;
#  2. an L2 table past the end of the file maps nothing (zeros here); an
#     unaligned L2 table offset fails the whole range the table maps;
#  3. reserved bits in L2 and L1 entries are ignored, as qemu does;
#  4. corrupt compressed data: zlib and zstd clusters overwritten with 0xff.
source "$(dirname "$0")/functions.sh"

# assert_logged NAME_RE CAUSE_RE : nbdkit's stderr of the last run has an
# error line naming the file (NAME_RE) whose text, file names removed,
# matches CAUSE_RE.
assert_logged() {
    local name=$1 cause=$2
    if ! grep -E -- "$name" "$PLUGIN_LAST_STDERR" |
         sed -E "s#[^ :'\"]*\.(qcow2|raw)##g" | grep -Eiq -- "$cause"; then
        show_file "$PLUGIN_LAST_STDERR"
        fail "no error message naming /$name/ with a cause matching /$cause/ (file names excluded)"
    fi
    log "  logged: $(grep -E -m1 -- "$name" "$PLUGIN_LAST_STDERR" | cut -c1-220)"
}

# --- 1. data cluster past EOF
img=truncated.qcow2
mkimg "$img" 4M
qio "$img" 'write -P 0xa1 0 64k' 'write -P 0xb1 1M 64k' 'write -P 0xc1 2M 64k'
ha=$(host_offset_of "$img" 0); hb=$(host_offset_of "$img" 1048576); hc=$(host_offset_of "$img" 2097152)
size=$(stat -c %s "$img")
log "$img: host offsets A=$ha B=$hb C=$hc, file size $size"
[ "$hb" -eq $((hc - 65536)) ] && [ "$((hc + 65536))" -eq "$size" ] && [ "$ha" -lt "$hb" ] ||
    hard_error "unexpected layout of $img"
truncate -s $((hc - 32768)) "$img"
qemu-io -r -f qcow2 -c 'read -P 0 2M 64k' -c 'read -P 0 1056k 32k' "$img" | grep -Eq '^(Pattern|read failed)' &&
    hard_error "qemu does not read zeros past the end of $img"
expect_reads "$img" -- \
    ok:0:64k:0xa1 \
    ok:2M:64k:0x00 \
    ok:$((2097152 + 4096)):4k:0x00 \
    ok:1M:32k:0xb1 \
    ok:$((1048576 + 32768)):32k:0x00 \
    ok:3M:64k:0x00 \
    ok:0:4k:0xa1
pos=$(l2_entry_pos "$img" 0)
poke_be "$img" "$pos" 8 $(( $(peek_be "$img" "$pos" 8) | 512 ))
expect_reads "$img" -- ok:1M:32k:0xb1 fail:0:4k fail:0:128k ok:3M:64k:0x00 ok:1M:4k:0xb1
assert_logged 'truncated\.qcow2' 'L2 table at 0x[0-9a-f]+, index 0 .*not aligned'

# --- 2. L2 table past EOF, then unaligned: 1G disk, two L1 entries.
img=l2-past-eof.qcow2
mkimg "$img" 1G
qio "$img" 'write -P 0xd1 0 64k' 'write -P 0xd2 768M 64k'
pos=$(l1_entry_pos "$img" $((768 << 20)))
l1e=$(peek_be "$img" "$pos" 8)
poke_be "$img" "$pos" 8 $(( (1 << 63) | (1 << 30) ))
expect_reads "$img" -- ok:0:64k:0xd1 ok:768M:64k:0x00 ok:512M:4k:0x00 ok:1M:4k:0x00 ok:0:4k:0xd1
poke_be "$img" "$pos" 8 $(( l1e | 512 ))
expect_reads "$img" -- ok:0:64k:0xd1 fail:768M:64k fail:512M:4k ok:1M:4k:0x00 ok:0:4k:0xd1
assert_logged 'l2-past-eof\.qcow2' 'L1 index 1: L2 table offset 0x[0-9a-f]+ is not aligned'

# --- 3. reserved bits
img=l2-reserved.qcow2
mkimg "$img" 1M
qio "$img" 'write -P 0xe1 0 64k' 'write -P 0xe2 64k 64k'
pos=$(l2_entry_pos "$img" 65536)
poke_be "$img" $((pos + 7)) 1 $(( $(peek_be "$img" $((pos + 7)) 1) | 2 ))
expect_reads "$img" -- ok:0:64k:0xe1 ok:64k:4k:0xe2 ok:128k:64k:0x00 ok:0:4k:0xe1

img=l1-reserved.qcow2
mkimg "$img" 1G
qio "$img" 'write -P 0xe3 0 64k' 'write -P 0xe4 768M 64k'
pos=$(l1_entry_pos "$img" $((768 << 20)))
poke_be "$img" "$pos" 8 $(( $(peek_be "$img" "$pos" 8) | (1 << 57) ))
expect_reads "$img" -- ok:0:64k:0xe3 ok:768M:64k:0xe4 ok:4k:4k:0xe3

# --- 4. corrupt compressed clusters
truncate -s 1M csrc.raw
qemu-io -f raw csrc.raw -c 'write -P 0x11 0 64k' -c 'write -P 0x22 64k 64k' -c 'write -P 0x33 128k 64k' > /dev/null
for ct in zlib zstd; do
    img=badcomp-$ct.qcow2
    qemu-img convert -c -f raw -O qcow2 -o compression_type=$ct csrc.raw "$img"
    read -r host nbytes <<< "$(compressed_cluster "$img" 65536)"
    log "$img: compressed cluster for guest 64k at host $host ($nbytes bytes max); overwriting 16 bytes with 0xff"
    head -c 16 /dev/zero | tr '\0' '\377' | dd of="$img" bs=1 seek="$host" conv=notrunc status=none
    # qemu agrees the cluster is unreadable:
    if qemu-io -r -f qcow2 -c 'read 64k 4k' "$img" > /dev/null 2>&1; then
        hard_error "qemu can still read the corrupted cluster of $img"
    fi
    expect_reads "$img" -- ok:0:64k:0x11 fail:64k:64k fail:$((65536 + 512)):512 ok:128k:64k:0x33 \
        ok:192k:64k:0x00 ok:0:512:0x11
    assert_logged "badcomp-$ct\\.qcow2" 'corrupt|deflate|zlib|zstd|decompress|invalid'  
done
