#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# qemu-exact acceptance of the header, its extensions and the backing file
# name: each case crafts an image (tests/craft.py, one function per case)
# from a qemu-img image, asserts qemu 7.2's verdict (qemu-img convert), and
# checks that the plugin agrees: it refuses at startup naming the field, or
# serves the same bytes and map as qemu-nbd.  The rules come from qemu's
# block/qcow2.c (qcow2_do_open, qcow2_read_extensions); see also
# test-acceptance-tables.sh for the tables the header points to.
source "$(dirname "$0")/functions.sh"

mkimg t.qcow2 8M
qio t.qcow2 'write -P 0x11 0 64k' 'write -P 0x22 4M 64k'
mkimg -o cluster_size=4k t4k.qcow2 1M
# 16 MiB, data in its last cluster (for sizes cut inside it)
mkimg tend.qcow2 16M
qio tend.qcow2 'write -P 0x33 16320k 64k'
# with a backing file and a backing format extension ("qcow2")
mkimg tbase.qcow2 1M
qio tbase.qcow2 'write -P 0x44 0 64k'
mkimg -b tbase.qcow2 -F qcow2 tb.qcow2 1M
qio tb.qcow2 'write -P 0x55 512k 64k'

#               case                            template   verdict  field (regex)
# Fixed header (qcow2_do_open, in qemu's order).
acceptance_case magic-bad                       t.qcow2    refuses  'magic'
acceptance_case version-1                       t.qcow2    refuses  'version'
acceptance_case version-4                       t.qcow2    refuses  'version'
acceptance_case cluster-bits-8                  t.qcow2    refuses  'cluster_bits'
acceptance_case cluster-bits-22                 t.qcow2    refuses  'cluster_bits'
acceptance_case header-length-103               t.qcow2    refuses  'header_length'
acceptance_case header-length-cluster-plus-8    t.qcow2    refuses  'header_length'
# Not a multiple of 8: qemu only cares whether extensions can be read there.
acceptance_case header-length-105               t.qcow2    opens
acceptance_case header-length-108               t.qcow2    refuses  'header extension'
acceptance_case compression-type-2              t.qcow2    refuses  'compression_type'
acceptance_case compression-zlib-with-bit       t.qcow2    refuses  'compression_type'
acceptance_case compression-zstd-without-bit    t.qcow2    refuses  'compression_type'
acceptance_case compression-type-ignored-v3-104 t.qcow2    opens
acceptance_case incompat-unknown-bit            t.qcow2    refuses  'incompatible_features'
acceptance_case incompat-bit-63                 t.qcow2    refuses  'incompatible_features'
acceptance_case extended-l2-4k                  t4k.qcow2  refuses  'incompatible_features.*extended'
acceptance_case refcount-order-7                t.qcow2    refuses  'refcount_order'
acceptance_case crypt-method-3                  t.qcow2    refuses  'crypt_method'
# Virtual size not a multiple of 512: qemu serves whole sectors (size 1:
# an empty disk; 16 MiB - 1: 16 MiB - 512, the last cluster's data cut).
acceptance_case size-1                          t.qcow2    opens
acceptance_case size-511                        t.qcow2    opens
acceptance_case size-minus-1                    tend.qcow2 opens
acceptance_case size-plus-511                   tend.qcow2 opens
# Backing file name.
acceptance_case backing-offset-past-cluster     t.qcow2    refuses  'backing_file_offset'
acceptance_case backing-name-past-cluster       t.qcow2    refuses  'backing_file_size'
acceptance_case backing-name-1024               t.qcow2    refuses  'backing_file_size'
acceptance_case backing-name-empty              t.qcow2    opens
# Header extensions (qcow2_read_extensions).
acceptance_case ext-len-past-cluster            t.qcow2    refuses  'header extension.*end of the cluster'
acceptance_case ext-len-past-backing-name       t.qcow2    refuses  'header extension.*backing file name'
acceptance_case ext-head-straddles-backing-name t.qcow2    refuses  'header extension.*backing file name'
acceptance_case ext-end-exactly-at-backing-name t.qcow2    opens
acceptance_case ext-no-end-mark                 t.qcow2    opens
acceptance_case ext-unknown                     t.qcow2    opens
acceptance_case ext-backing-format-15           t.qcow2    opens
acceptance_case ext-backing-format-16           t.qcow2    refuses  'backing format extension'
# The recorded backing format: "file" is qemu's file protocol driver (the
# backing file's bytes as they are: the guest starts with QFI\xfb); an
# empty one (length 0, or a NUL first) is no format: qemu probes; the
# format ends at its first NUL; a format qemu does not open the file with
# (vmdk) is refused.
acceptance_case ext-backing-format-file         tb.qcow2   opens
acceptance_case ext-backing-format-empty        tb.qcow2   opens
acceptance_case ext-backing-format-nul-first    tb.qcow2   opens
acceptance_case ext-backing-format-raw-nul      tb.qcow2   opens
acceptance_case ext-backing-format-vmdk         tb.qcow2   refuses  'backing format'
acceptance_case ext-crypto-without-luks         t.qcow2    refuses  'encryption header extension'
acceptance_case ext-bitmaps-len-16              t.qcow2    refuses  'bitmaps extension.*length'
acceptance_case ext-bitmaps-len-16-no-autoclear t.qcow2    refuses  'bitmaps extension.*length'
acceptance_case ext-bitmaps-reserved            t.qcow2    refuses  'bitmaps extension.*reserved'
acceptance_case ext-bitmaps-zero                t.qcow2    refuses  'nb_bitmaps'
acceptance_case ext-bitmaps-too-many            t.qcow2    refuses  'nb_bitmaps'
acceptance_case ext-bitmaps-dir-unaligned       t.qcow2    refuses  'bitmap_directory_offset'
acceptance_case ext-bitmaps-dir-too-large       t.qcow2    refuses  'bitmap_directory_size'
acceptance_case ext-bitmaps-ignored-without-autoclear t.qcow2 opens
acceptance_case ext-data-file-without-bit       t.qcow2    opens
acceptance_case data-file-bit-without-name      t.qcow2    refuses  'incompatible_features.*data file'
acceptance_case data-file-raw-without-data-file t.qcow2    refuses  'data-file-raw'
# Files shorter than their header: qemu reads zeros past the end of the file.
acceptance_case short-0                         t.qcow2    refuses  'magic'
acceptance_case short-3                         t.qcow2    refuses  'magic'
acceptance_case short-50                        t.qcow2    refuses  'header_length'
acceptance_case short-72                        t.qcow2    refuses  'header_length'
acceptance_case short-100                       t.qcow2    refuses  'header_length'
acceptance_case short-104                       t.qcow2    opens
acceptance_case short-v2-72                     t.qcow2    opens
acceptance_case short-header-cluster            t.qcow2    opens

# Short files once more under valgrind: no read past the end of a buffer
# (a 72-byte file with a v3 magic was read past its heap buffer once).
for c in short-72 short-100 short-104; do
    cp t.qcow2 "$c.qcow2"
    python3 "$top_srcdir/tests/craft.py" "$c" "$c.qcow2"
    rc=0
    valgrind -q --error-exitcode=42 nbdkit -U - -f "${_nbdkit_plugin[@]}" file="$c.qcow2" \
        --run 'nbdinfo --size "$uri"' > "$c.valgrind" 2>&1 || rc=$?
    [ "$rc" -ne 42 ] || { show_file "$c.valgrind"; fail "$c: valgrind reports errors"; }
    grep -q '^==' "$c.valgrind" && { show_file "$c.valgrind"; fail "$c: valgrind output"; }
    log "OK $c under valgrind: no error (nbdkit exit $rc)"
done

# Not qcow2 at all, and a missing file.
head -c 1M /dev/zero > raw.qcow2
expect_startup_error raw.qcow2 'magic|not a qcow2'
expect_startup_error does-not-exist.qcow2 'no such file|not found|open'
