/* SPDX-License-Identifier: BSD-3-Clause */
/* The snapshot table (qcow2 spec, "Snapshots"): one entry per internal
 * snapshot, read and validated with qemu 7.2's rules
 * (block/qcow2-snapshot.c, qcow2_read_snapshots) when an image is
 * opened.  The snapshots' own L1 tables are not checked here: qemu
 * does not check them at open either, only when a snapshot is used.
 */
#ifndef Q2_SNAPSHOT_TABLE_H
#define Q2_SNAPSHOT_TABLE_H

#include <stdint.h>
#include <stdbool.h>

#include "hostfile.h"
#include "qcow2_header.h"

/* qemu's limits (block/qcow2.h). */
#define QCOW2_MAX_SNAPSHOT_EXTRA_DATA 1024
#define QCOW2_MAX_SNAPSHOTS_SIZE      (1024 * QCOW2_MAX_SNAPSHOTS)

struct qcow2_snapshot {
  uint64_t entry_offset;         /* host offset of the entry */
  uint64_t l1_table_offset;      /* as stored: not validated */
  uint32_t l1_size;              /* as stored: not validated */
  char *id;                      /* NUL-terminated: qemu compares these */
  char *name;                    /*   as C strings */
  uint16_t id_size, name_size;   /* on disk (a NUL inside is possible) */
  uint32_t date_sec, date_nsec;
  uint64_t vm_clock_nsec;
  uint64_t vm_state_size;        /* the 64-bit extra field if present */
  uint64_t disk_size;            /* virtual size when the snapshot was
                                    taken; the image's own size if the
                                    entry predates the field */
  uint32_t extra_data_size;      /* known fields and unknown extra data */
};

struct qcow2_snapshot_table {
  uint32_t count;
  struct qcow2_snapshot *entries;
  uint64_t offset;               /* snapshots_offset */
  uint64_t length;               /* bytes from the table's start to the
                                    end of the last name, unpadded
                                    (qemu's snapshots_size) */
};

/* Read the snapshot table of image file F whose validated header is H.
 * As in qemu, entries past the end of the file read as zeros, an entry
 * may carry at most 1024 bytes of extra data, and the table may not be
 * longer than 64 MiB.  Memory: the entries (at most 65536) plus their
 * names, whose length is bounded by the bytes the file holds.
 * Returns 0, or -1 with q2_error set to "PATH: <field>: <cause>".
 */
int qcow2_snapshot_table_read (struct qcow2_snapshot_table *t,
                               const struct hostfile *f,
                               const struct qcow2_header *h);
void qcow2_snapshot_table_free (struct qcow2_snapshot_table *t);

#endif
