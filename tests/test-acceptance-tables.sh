#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# qemu-exact acceptance of the tables the header points to: the refcount
# table, the active L1 table (its header fields; its entries are checked when
# read) and the snapshot table.  Same method as test-acceptance-header.sh:
# each case crafts an image (tests/craft.py), asserts qemu 7.2's verdict, and
# checks that the plugin refuses naming the field or serves what qemu serves.
# qemu's rules (block/qcow2.c qcow2_validate_table, block/qcow2-snapshot.c
# qcow2_read_snapshots): a table must be cluster aligned, end below 2^63 and
# stay within qemu's size limit, but it may lie past the end of the file,
# where it reads as zeros.
source "$(dirname "$0")/functions.sh"

mkimg t.qcow2 8M
qio t.qcow2 'write -P 0x11 0 64k' 'write -P 0x22 4M 64k'

#               case                            template   verdict  field (regex)
# Refcount table.
acceptance_case reftable-clusters-0             t.qcow2    refuses  'refcount_table_clusters'
acceptance_case reftable-too-large              t.qcow2    refuses  'refcount_table_clusters'
acceptance_case reftable-unaligned              t.qcow2    refuses  'refcount_table_offset'
acceptance_case reftable-offset-huge            t.qcow2    refuses  'refcount_table_offset'
acceptance_case reftable-past-eof               t.qcow2    opens
# qemu's block layer reads nothing past 2^63 - 2^30, not even zeros.
acceptance_case reftable-past-qemu-max          t.qcow2    refuses  'refcount_table_offset.*largest offset'
acceptance_case reftable-max-size-past-eof      t.qcow2    opens
acceptance_case reftable-sparse                 t.qcow2    opens
# Active L1 table (header fields).
acceptance_case l1-unaligned                    t.qcow2    refuses  'l1_table_offset'
acceptance_case l1-unaligned-size-0             t.qcow2    refuses  'l1_table_offset'
acceptance_case l1-offset-huge                  t.qcow2    refuses  'l1_table_offset'
acceptance_case l1-too-small                    t.qcow2    refuses  'l1_size'
acceptance_case l1-too-large                    t.qcow2    refuses  'l1_size'
acceptance_case size-huge                       t.qcow2    refuses  'l1_size'
acceptance_case l1-past-eof                     t.qcow2    opens
acceptance_case l1-past-qemu-max                t.qcow2    refuses  'l1_table_offset.*largest offset'
acceptance_case l1-past-qemu-max-size-0         t.qcow2    opens
acceptance_case l1-partly-past-eof              t.qcow2    opens
# Snapshot table: the offset is checked even without snapshots.
acceptance_case snapshots-unaligned-nb-0        t.qcow2    refuses  'snapshots_offset'
acceptance_case snapshots-huge-nb-0             t.qcow2    refuses  'snapshots_offset'
acceptance_case snapshots-past-eof-nb-0         t.qcow2    opens
acceptance_case snapshots-past-qemu-max-nb-0    t.qcow2    opens
acceptance_case snapshots-past-qemu-max         t.qcow2    refuses  'snapshot table entry 0.*largest offset'
acceptance_case snapshots-unaligned             t.qcow2    refuses  'snapshots_offset'
acceptance_case snapshots-too-many              t.qcow2    refuses  'nb_snapshots'
acceptance_case snapshots-past-eof              t.qcow2    opens
acceptance_case snapshots-max-count-past-eof    t.qcow2    opens
acceptance_case snapshot-extra-1024             t.qcow2    opens
acceptance_case snapshot-extra-1025             t.qcow2    refuses  'entry 0: extra_data_size'
acceptance_case snapshot-extra-huge-past-eof    t.qcow2    refuses  'entry 0: extra_data_size'
acceptance_case snapshot-entry-runs-past-eof    t.qcow2    opens
acceptance_case snapshot-bad-l1                 t.qcow2    opens
# A table of 64 MiB is the most qemu reads (a sparse file of that size).
acceptance_case snapshots-size-under-limit      t.qcow2    opens
acceptance_case snapshots-size-over-limit       t.qcow2    refuses  'nb_snapshots.*snapshot table is more than'

# Bitmap directory: qemu loads the persistent bitmaps when it opens an image
# (block/qcow2-bitmap.c, qcow2_load_dirty_bitmaps) and refuses the image if
# one is malformed.  Template: two bitmaps, b0 (64k granularity) and b1.
mkimg tb.qcow2 8M
qemu-img bitmap --add tb.qcow2 b0
qemu-img bitmap --add -g 128k tb.qcow2 b1
qio tb.qcow2 'write -P 0x11 0 64k'
acceptance_case bitmap-dir-size-0               tb.qcow2   refuses  'bitmap_directory_size'
acceptance_case bitmap-dir-size-short           tb.qcow2   refuses  'bitmap_directory_size'
acceptance_case bitmap-dir-past-eof             tb.qcow2   refuses  'bitmap directory entry.*bitmap_table_size'
acceptance_case bitmap-nb-more-than-entries     tb.qcow2   refuses  'nb_bitmaps'
acceptance_case bitmap-nb-less-than-entries     tb.qcow2   refuses  'nb_bitmaps'
acceptance_case bitmap-extra-data               tb.qcow2   refuses  'extra_data_size'
acceptance_case bitmap-granularity-8            tb.qcow2   refuses  'granularity_bits'
acceptance_case bitmap-granularity-32           tb.qcow2   refuses  'granularity_bits'
acceptance_case bitmap-type-2                   tb.qcow2   refuses  ': type: invalid'
acceptance_case bitmap-reserved-flag            tb.qcow2   refuses  'flags'
acceptance_case bitmap-table-unaligned          tb.qcow2   refuses  'bitmap_table_offset'
acceptance_case bitmap-dir-past-qemu-max        tb.qcow2   refuses  'bitmap_directory_offset.*largest offset'
acceptance_case bitmap-table-past-qemu-max      tb.qcow2   refuses  'bitmap_table_offset.*largest offset'
acceptance_case bitmap-table-size-0             tb.qcow2   refuses  'bitmap_table_size'
acceptance_case bitmap-table-size-wrong         tb.qcow2   refuses  'bitmap_table_size'
acceptance_case bitmap-table-entry-reserved     tb.qcow2   refuses  'bitmap table entry 0'
acceptance_case bitmap-table-entry-unaligned    tb.qcow2   refuses  'bitmap table entry 0'
acceptance_case bitmap-table-entry-all-ones     tb.qcow2   opens
acceptance_case bitmap-in-use-bad-table         tb.qcow2   opens
acceptance_case bitmap-duplicate-name           tb.qcow2   refuses  'two bitmaps'
acceptance_case bitmap-duplicate-name-in-use    tb.qcow2   opens
