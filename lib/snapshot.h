/* SPDX-License-Identifier: BSD-3-Clause */
/* Using an internal snapshot (qcow2 spec, "Snapshots"): finding it by
 * id or name, the check qemu makes of its L1 table when it loads it,
 * and the guest disk as of that snapshot.  The snapshot table itself
 * is read (once, when the layer is opened) by snapshot_table.c.
 */
#ifndef Q2_SNAPSHOT_H
#define Q2_SNAPSHOT_H

#include "backing_chain.h"
#include "snapshot_table.h"

/* What qemu checks of the L1 table of snapshot S of layer L when it
 * loads it: size and alignment (no I/O).  Returns 0 or -1 with
 * q2_error set.
 */
int snapshot_check_l1 (const struct layer *l, const struct qcow2_snapshot *s);

/* The first snapshot whose id (if ID) and name (if NAME) match, as
 * qemu's snapshot.id= / snapshot.name= options choose.  -1 if none.
 */
long snapshot_find (const struct qcow2_snapshot_table *t, const char *id,
                    const char *name);

/* The guest disk as of snapshot S of C's top layer, as qemu serves it
 * with "qemu-nbd -l" (qcow2_snapshot_load_tmp, which also checks the
 * snapshot's L1 table as done here): a chain whose top is a
 * second opening of the top image with the snapshot's L1 table, over
 * the same backing layers (shared with C, not owned).  qemu keeps the
 * active virtual size, so does this.  Returns NULL with q2_error set.
 */
struct chain *snapshot_chain_open (const struct chain *c,
                                   const struct qcow2_snapshot *s);
void snapshot_chain_close (struct chain *sc);

#endif
