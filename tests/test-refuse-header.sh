#!/usr/bin/env bash
# Malformed headers are refused at startup (nbdkit exits non-zero, one message
# naming the file and the cause).  Each case starts from a valid v3 image
# (64k clusters, some data) and edits one header field with dd; qemu's own
# reaction (qemu-img info) is logged for reference.
# Header layout (docs/interop/qcow2.txt): 0 magic, 4 version,
# 8 backing_file_offset (u64), 16 backing_file_size (u32), 20 cluster_bits,
# 24 size (u64), 32 crypt_method, 36 l1_size, 40 l1_table_offset (u64),
# 48 refcount_table_offset (u64), 56 refcount_table_clusters, 60 nb_snapshots,
# 64 snapshots_offset (u64), 72 incompatible_features (u64), 80 compatible,
# 88 autoclear, 96 refcount_order, 100 header_length, 104 compression_type.
source "$(dirname "$0")/functions.sh"

mkimg template.qcow2 2G
qio template.qcow2 'write -P 0x11 0 64k' 'write -P 0x12 1G 64k'
eof=$(stat -c %s template.qcow2)
l1=$(peek_be template.qcow2 40 8)
rt=$(peek_be template.qcow2 48 8)

# bad NAME REGEX OFFSET WIDTH VALUE [OFFSET WIDTH VALUE]...
bad() {
    local name=$1.qcow2 regex=$2; shift 2
    cp template.qcow2 "$name"
    while [ $# -gt 0 ]; do poke_be "$name" "$1" "$2" "$3"; shift 3; done
    log "$name: qemu-img info says: $(qemu-img info "$name" 2>&1 >/dev/null | head -n1 | cut -c1-160)"
    expect_startup_error "$name" "$regex"
}

bad magic          'magic|not a qcow2|qcow2'      0 4 0x514649fa
bad version1       'version'                      4 4 1
bad version4       'version'                      4 4 4
bad incompat-bit10 'incompatible.?feature'       72 8 $((1 << 10))
bad incompat-bit63 'incompatible.?feature'       72 8 $((1 << 63))
bad cluster-bits30 'cluster'                     20 4 30
bad cluster-bits8  'cluster'                     20 4 8
bad l1-past-eof    'l1'                          40 8 $(( (eof / 65536 + 16) * 65536 ))
bad l1-unaligned   'l1'                          40 8 $((l1 + 8))
bad l1-too-small   'l1'                          36 4 1
bad l1-huge        'l1'                          36 4 $((1 << 30))
bad rt-unaligned   'refcount'                    48 8 $((rt + 8))
bad rt-past-eof    'refcount'                    48 8 $(( (eof / 65536 + 16) * 65536 ))
bad refcount-order7 'refcount'                   96 4 7
bad header-length-short 'header'                100 4 48
bad header-length-huge  'header'                100 4 $((1 << 20))
bad backing-past-eof    'backing'                 8 8 $((eof + 4096)) 16 4 10
bad backing-name-long   'backing'                 8 8 4096 16 4 60000
bad snapshots-past-eof  'snapshot'               60 4 1 64 8 $(( (eof / 65536 + 16) * 65536 ))
bad snapshots-unaligned 'snapshot'               60 4 1 64 8 4100
bad size-huge      'size|l1'                     24 8 $(( 1 << 62 ))
bad data-file-bit-no-name 'data'                 72 8 4
bad compression-type-bad 'compression'           72 8 8 104 1 7

# Not refused: header_length 105 breaks the spec's "multiple of 8" rule, but
# qemu 7.2 accepts it (the extension area then starts at byte 105, in the
# zeroed padding, i.e. no extensions).  Served like qemu serves it.
cp template.qcow2 header-length-105.qcow2
poke_be header-length-105.qcow2 100 4 105
check_image_sparse header-length-105.qcow2

# Extended L2 needs clusters of at least 16k (qemu's rule): 4k + bit 4.
mkimg -o cluster_size=4k extl2-4k.qcow2 1M
qcow2_set_incompat_bit extl2-4k.qcow2 4
log "extl2-4k.qcow2: qemu-img info says: $(qemu-img info extl2-4k.qcow2 2>&1 >/dev/null | head -n1)"
expect_startup_error extl2-4k.qcow2 'extended|subcluster|cluster'

# A header extension whose length runs past the end of the header cluster.
cp template.qcow2 ext-overrun.qcow2
off=$(find_bytes ext-overrun.qcow2 6803f857 4096)   # feature name table
[ -n "$off" ] || hard_error "feature table extension not found"
poke_be ext-overrun.qcow2 $((off + 4)) 4 $((1 << 20))
log "ext-overrun.qcow2: qemu-img info says: $(qemu-img info ext-overrun.qcow2 2>&1 >/dev/null | head -n1)"
expect_startup_error ext-overrun.qcow2 'extension|header'

# Truncated files: 50 bytes (inside the 72-byte v2 header), 100 bytes (inside
# the v3 header), the header cluster only, and an empty file.
head -c 50 template.qcow2 > trunc50.qcow2
expect_startup_error trunc50.qcow2 'trunc|short|small|end of file|eof|header'
head -c 100 template.qcow2 > trunc100.qcow2
expect_startup_error trunc100.qcow2 'trunc|short|small|end of file|eof|header'
head -c 65536 template.qcow2 > trunc-header-cluster.qcow2
expect_startup_error trunc-header-cluster.qcow2 'trunc|short|small|end of file|eof|l1|refcount|past'
: > empty.qcow2
expect_startup_error empty.qcow2 'trunc|short|small|end of file|eof|header|empty|magic|not a qcow2'

# Not a qcow2 file at all: raw data.
head -c 1M /dev/zero > raw.qcow2
expect_startup_error raw.qcow2 'magic|not a qcow2|qcow2'

# A missing file.
expect_startup_error does-not-exist.qcow2 'no such file|not found|open'
