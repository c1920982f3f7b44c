/* SPDX-License-Identifier: BSD-3-Clause */
/* The bitmap directory (qcow2 spec, "Bitmaps extension" and "Bitmap
 * directory"): the persistent dirty bitmaps of an image.  qemu 7.2
 * loads them whenever it opens an image (qcow2_load_dirty_bitmaps in
 * block/qcow2-bitmap.c) and refuses the image if one is malformed; we
 * read and check them with the same rules, once, when the layer is
 * opened, so that we open what qemu opens.  The bitmaps' data is not
 * read here (it cannot make qemu's open fail): see bitmap.h.
 */
#ifndef Q2_BITMAP_DIRECTORY_H
#define Q2_BITMAP_DIRECTORY_H

#include <stdint.h>
#include <stdbool.h>

#include "hostfile.h"
#include "qcow2_header.h"

#define QCOW2_BITMAP_IN_USE (1U << 0)   /* not saved cleanly: inconsistent */
#define QCOW2_BITMAP_AUTO   (1U << 1)   /* enabled (tracks writes) */

/* A bitmap table entry: 0 (all bits clear), 1 (all bits set) or the
 * offset of a data cluster.
 */
#define QCOW2_BITMAP_TABLE_OFFSET_MASK UINT64_C (0x00fffffffffffe00)
#define QCOW2_BITMAP_TABLE_ALL_ONES    UINT64_C (1)

struct qcow2_bitmap {
  uint64_t entry_offset;         /* in the directory */
  char *name;                    /* up to its first NUL, as qemu's */
  uint16_t name_size;            /* on disk (a NUL inside is possible) */
  uint64_t table_offset;
  uint32_t table_size;           /* entries */
  uint32_t flags;
  uint8_t type;
  uint8_t granularity_bits;      /* a bit covers 2^granularity_bits bytes */
};

struct qcow2_bitmap_directory {
  uint32_t count;
  struct qcow2_bitmap *entries;  /* in directory order */
};

/* Read and check the bitmap directory of image file F, whose validated
 * header is H, as qemu does when it opens the image: the directory
 * entries, the names (qemu refuses two bitmaps of one name unless the
 * second is in use), and the bitmap table of every bitmap not in use.
 * Nothing to do (D empty) when the image has no valid bitmaps
 * extension.  Reads the directory entry by entry and the tables a
 * cluster at a time.  Memory: the entries (at most 65535) and their
 * names (bounded by the directory size the header check allows).
 * Returns 0, or -1 with q2_error set to "PATH: <field>: <cause>" (qemu's
 * words where it has some).
 */
int qcow2_bitmap_directory_read (struct qcow2_bitmap_directory *d,
                                 const struct hostfile *f,
                                 const struct qcow2_header *h);
void qcow2_bitmap_directory_free (struct qcow2_bitmap_directory *d);

/* qemu's check_table_entry: is bitmap table entry E valid? */
bool qcow2_bitmap_table_entry_ok (uint64_t e, uint64_t cluster_size);

#endif
