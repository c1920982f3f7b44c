/* SPDX-License-Identifier: BSD-3-Clause */
/* Internal snapshots (qcow2 spec, "Snapshots"): the snapshot table of
 * a qcow2 layer, and the guest disk as of one snapshot.
 */
#ifndef Q2_SNAPSHOT_H
#define Q2_SNAPSHOT_H

#include <stdint.h>
#include <stddef.h>

#include "backing_chain.h"

/* Bounds, as qemu's (block/qcow2.h). */
#define SNAPSHOT_MAX_EXTRA_DATA  1024
#define SNAPSHOT_MAX_TABLE_BYTES (1024 * (uint64_t) QCOW2_MAX_SNAPSHOTS)

struct snapshot {
  char *id;                   /* NUL-terminated; may be empty */
  char *name;                 /* NUL-terminated; may be empty */
  uint16_t id_len, name_len;  /* on disk (a NUL inside is possible) */
  uint64_t l1_table_offset;
  uint32_t l1_size;
  uint64_t disk_size;         /* virtual size when taken (extra data;
                                 else the image's size, as qemu) */
  uint64_t vm_state_size;
  uint32_t date_sec, date_nsec;
};

struct snapshot_table {
  uint32_t n;
  struct snapshot *s;
};

/* Read the snapshot table of qcow2 layer L, with the bounds qemu
 * checks when it opens the image (extra data, table size).  Returns 0,
 * or -1 with q2_error set ("FILE: snapshot N: ...").
 */
int snapshot_table_read (struct layer *l, struct snapshot_table *t);
void snapshot_table_free (struct snapshot_table *t);

/* What qemu checks of the L1 table of snapshot S of layer L when it
 * loads it: size and alignment (no I/O).  Returns 0 or -1 with
 * q2_error set.
 */
int snapshot_check_l1 (const struct layer *l, const struct snapshot *s);

/* The first snapshot whose id (if ID) and name (if NAME) match, as
 * qemu's snapshot.id= / snapshot.name= options choose.  -1 if none.
 */
long snapshot_find (const struct snapshot_table *t, const char *id,
                    const char *name);

/* The guest disk as of snapshot S of C's top layer, as qemu serves it
 * with "qemu-nbd -l" (qcow2_snapshot_load_tmp, which also checks the
 * snapshot's L1 table as done here): a chain whose top is a
 * second opening of the top image with the snapshot's L1 table, over
 * the same backing layers (shared with C, not owned).  qemu keeps the
 * active virtual size, so does this.  Returns NULL with q2_error set.
 */
struct chain *snapshot_chain_open (const struct chain *c,
                                   const struct snapshot *s);
void snapshot_chain_close (struct chain *sc);

#endif
