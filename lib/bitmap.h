/* SPDX-License-Identifier: BSD-3-Clause */
/* Persistent dirty bitmaps (qcow2 spec, "Bitmaps extension"): which
 * guest ranges a bitmap marks dirty, read from its bitmap table and
 * data clusters on demand (a bitmap is never loaded whole).  The
 * bitmap directory is read and checked when the layer is opened
 * (bitmap_directory.h, the layer's "bitmaps").
 */
#ifndef Q2_BITMAP_H
#define Q2_BITMAP_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#include "layer.h"
#include "bitmap_directory.h"

/* Index of the first bitmap named NAME, or -1. */
long bitmap_find (const struct qcow2_bitmap_directory *d, const char *name);

/* Is guest OFFSET dirty in bitmap B of layer L?  Sets *DIRTY and, in
 * *LENGTH (1..COUNT), how far the same answer holds.  Returns 0, or -1
 * with q2_error naming file, bitmap and guest offset.  Thread-safe.
 */
int bitmap_dirty (struct layer *l, const struct qcow2_bitmap *b,
                  uint64_t offset, uint64_t count, bool *dirty,
                  uint64_t *length);

/* The dirty map of bitmap B as "nbdinfo --json
 * --map=qemu:dirty-bitmap:NAME" prints it for qemu-nbd -B NAME.
 * Returns a malloc'd document (*LEN bytes) or NULL with q2_error set.
 */
char *bitmap_json (struct layer *l, const struct qcow2_bitmap *b,
                   size_t *len);

#endif
