#!/usr/bin/env bash
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
acceptance_case reftable-max-size-past-eof      t.qcow2    opens
# Active L1 table (header fields).
acceptance_case l1-unaligned                    t.qcow2    refuses  'l1_table_offset'
acceptance_case l1-unaligned-size-0             t.qcow2    refuses  'l1_table_offset'
acceptance_case l1-offset-huge                  t.qcow2    refuses  'l1_table_offset'
acceptance_case l1-too-small                    t.qcow2    refuses  'l1_size'
acceptance_case l1-too-large                    t.qcow2    refuses  'l1_size'
acceptance_case size-huge                       t.qcow2    refuses  'l1_size'
acceptance_case l1-past-eof                     t.qcow2    opens
acceptance_case l1-partly-past-eof              t.qcow2    opens
# Snapshot table: the offset is checked even without snapshots.
acceptance_case snapshots-unaligned-nb-0        t.qcow2    refuses  'snapshots_offset'
acceptance_case snapshots-huge-nb-0             t.qcow2    refuses  'snapshots_offset'
acceptance_case snapshots-past-eof-nb-0         t.qcow2    opens
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
