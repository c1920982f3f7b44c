/* SPDX-License-Identifier: BSD-3-Clause */
/* Persistent dirty bitmaps (qcow2 spec, "Bitmaps extension"): the
 * bitmap directory of a qcow2 layer, and which guest ranges a bitmap
 * marks dirty, read from its bitmap table and data clusters on demand
 * (a bitmap is never loaded whole).
 */
#ifndef Q2_BITMAP_H
#define Q2_BITMAP_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#include "layer.h"

#define BITMAP_FLAG_IN_USE (1u << 0)  /* not saved cleanly: inconsistent */
#define BITMAP_FLAG_AUTO   (1u << 1)  /* enabled (tracks writes) */

struct bitmap {
  char *name;                  /* NUL-terminated */
  uint16_t name_len;           /* on disk (a NUL inside is possible) */
  uint64_t table_offset;
  uint32_t table_size;         /* entries */
  uint32_t flags;
  unsigned granularity_bits;   /* one bit covers 2^granularity_bits bytes */
};

struct bitmap_directory {
  uint32_t n;
  struct bitmap *b;
};

/* Read and check the bitmap directory of qcow2 layer L as qemu does
 * when it opens the image (qemu then refuses the image on any error):
 * the directory's layout, each entry's constraints, and, for bitmaps
 * not in use, every bitmap table entry and the table's size.  Bitmaps
 * count only when the extension is valid (autoclear bit set).
 * Returns 0, or -1 with q2_error set (qemu's words where it has some).
 */
int bitmap_directory_read (struct layer *l, struct bitmap_directory *d);
void bitmap_directory_free (struct bitmap_directory *d);

/* Index of the bitmap named NAME, or -1. */
long bitmap_find (const struct bitmap_directory *d, const char *name);

/* Is guest OFFSET dirty in bitmap B of layer L?  Sets *DIRTY and, in
 * *LENGTH (1..COUNT), how far the same answer holds.  Returns 0, or -1
 * with q2_error naming file, bitmap and guest offset.  Thread-safe.
 */
int bitmap_dirty (struct layer *l, const struct bitmap *b, uint64_t offset,
                  uint64_t count, bool *dirty, uint64_t *length);

/* The dirty map of bitmap B as "nbdinfo --json
 * --map=qemu:dirty-bitmap:NAME" prints it for qemu-nbd -B NAME.
 * Returns a malloc'd document (*LEN bytes) or NULL with q2_error set.
 */
char *bitmap_json (struct layer *l, const struct bitmap *b, size_t *len);

#endif
