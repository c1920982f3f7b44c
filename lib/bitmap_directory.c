/* SPDX-License-Identifier: BSD-3-Clause */
/* The bitmap directory, read and checked as qemu 7.2 checks it when it
 * opens an image.  See bitmap_directory.h.  Entries are 8-byte
 * aligned: a 24-byte head (bitmap table offset and size, flags, type,
 * granularity bits, name size, extra data size), extra data, the name.
 */
#include <config.h>

#include <endian.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap_directory.h"
#include "qcow2_geometry.h"
#include "be.h"
#include "q2_error.h"

/* qemu's limits and masks (block/qcow2-bitmap.c). */
#define ENTRY_HEAD           24
#define MAX_TABLE_SIZE       0x8000000
#define MAX_PHYS_SIZE        0x20000000
#define MIN_GRANULARITY_BITS 9
#define MAX_GRANULARITY_BITS 31
#define MAX_NAME_SIZE        1023
#define RESERVED_FLAGS       0xfffffffcU
#define TYPE_DIRTY_TRACKING  1
#define TABLE_RESERVED_MASK  UINT64_C (0xff000000000001fe)

static uint32_t
decode_entry (struct qcow2_bitmap *e, const uint8_t *p)
{
  e->table_offset = get_be64 (p);
  e->table_size = get_be32 (p + 8);
  e->flags = get_be32 (p + 12);
  e->type = p[16];
  e->granularity_bits = p[17];
  e->name_size = get_be16 (p + 18);
  return get_be32 (p + 20);     /* extra_data_size */
}

bool
qcow2_bitmap_table_entry_ok (uint64_t e, uint64_t cluster_size)
{
  uint64_t off = e & QCOW2_BITMAP_TABLE_OFFSET_MASK;

  if (e & TABLE_RESERVED_MASK)
    return false;
  return off == 0 ||
    (!(e & QCOW2_BITMAP_TABLE_ALL_ONES) && (off & (cluster_size - 1)) == 0);
}

/* qemu's check_dir_entry: NULL if E is valid, else the field at fault.
 * DISK_LEN is the image's size in whole sectors (bdrv_getlength).
 */
static const char *
entry_fault (const struct qcow2_bitmap *e, const struct qcow2_header *h,
             uint64_t disk_len)
{
  uint64_t phys_bytes = (uint64_t) e->table_size * h->cluster_size;

  if (e->table_size == 0 || e->table_size > MAX_TABLE_SIZE)
    return "bitmap_table_size";
  if (e->table_offset == 0 || offset_into_cluster (h, e->table_offset))
    return "bitmap_table_offset";
  if (e->granularity_bits > MAX_GRANULARITY_BITS ||
      e->granularity_bits < MIN_GRANULARITY_BITS)
    return "granularity_bits";
  if (e->flags & RESERVED_FLAGS)
    return "flags (reserved bits)";
  if (e->name_size > MAX_NAME_SIZE)
    return "name_size";
  if (e->type != TYPE_DIRTY_TRACKING)
    return "type";
  if (phys_bytes > MAX_PHYS_SIZE)
    return "bitmap_table_size (more than 512 MiB of bitmap)";
  /* A bitmap not in use must cover the disk. */
  if (!(e->flags & QCOW2_BITMAP_IN_USE) &&
      disk_len > (phys_bytes * 8) << e->granularity_bits)
    return "bitmap_table_size (the bitmap does not cover the disk)";
  return NULL;
}

/* The bitmap table of a bitmap not in use: every entry valid, and as
 * many clusters as the bitmap needs (qemu's bitmap_table_load and
 * load_bitmap_data).
 */
static int
check_table (const struct hostfile *f, const struct qcow2_header *h,
             const struct qcow2_bitmap *e, uint64_t disk_len)
{
  uint64_t cs = h->cluster_size, bits, needed, i;
  uint64_t t[512];              /* read 4 KiB of the table at a time */
  const uint64_t chunk = sizeof t / sizeof t[0];
  int r = 0;

  if (!hostfile_offset_ok (e->table_offset, (uint64_t) e->table_size * 8))
    return q2_error ("%s: Could not read bitmap '%s' from image: "
                     "bitmap_table_offset: %#" PRIx64
                     " is past the largest offset qemu reads", f->path,
                     e->name, e->table_offset);
  for (i = 0; i < e->table_size && r == 0; i += chunk) {
    uint64_t j, n = e->table_size - i < chunk ? e->table_size - i : chunk;

    if (hostfile_pread (f, t, n * 8, e->table_offset + i * 8) == -1) {
      r = -1;
      break;
    }
    for (j = 0; j < n; j++) {
      uint64_t v = be64toh (t[j]);

      if (!qcow2_bitmap_table_entry_ok (v, cs)) {
        r = q2_error ("%s: Could not read bitmap '%s' from image: "
                      "bitmap table entry %" PRIu64 " (%#" PRIx64
                      ") is invalid", f->path, e->name, i + j, v);
        break;
      }
    }
  }
  if (r == -1)
    return -1;

  bits = (disk_len >> e->granularity_bits) +
    ((disk_len & ((UINT64_C (1) << e->granularity_bits) - 1)) != 0);
  needed = (bits + 8 * cs - 1) / (8 * cs);
  if (needed != e->table_size)
    return q2_error ("%s: Could not read bitmap '%s' from image: "
                     "bitmap_table_size: %" PRIu32 " but "
                     "the bitmap needs %" PRIu64 " clusters", f->path,
                     e->name, e->table_size, needed);
  return 0;
}

/* Read and check the entry at directory offset OFF; *NEXT is where the
 * next one starts.
 */
static int
read_entry (const struct hostfile *f, const struct qcow2_header *h,
            uint64_t off, struct qcow2_bitmap *e, uint64_t *next,
            uint64_t disk_len)
{
  uint64_t size = h->bitmap_directory_size;
  uint8_t head[ENTRY_HEAD];
  char name[MAX_NAME_SIZE + 1];
  const char *fault;
  uint32_t extra_data_size;
  size_t n;

  e->entry_offset = off;
  if (hostfile_pread (f, head, sizeof head,
                      h->bitmap_directory_offset + off) == -1)
    return -1;
  extra_data_size = decode_entry (e, head);
  *next = off + ((ENTRY_HEAD + (uint64_t) e->name_size +
                  extra_data_size + 7) & ~UINT64_C (7));
  if (*next > size)
    return q2_error ("%s: bitmap_directory_size: the bitmap directory "
                     "entry at %" PRIu64 " runs past its end", f->path, off);
  if (extra_data_size != 0)
    return q2_error ("%s: bitmap directory entry at %" PRIu64 ": "
                     "extra_data_size: %" PRIu32 " (qemu supports none)",
                     f->path, off, extra_data_size);
  n = e->name_size < MAX_NAME_SIZE ? e->name_size : MAX_NAME_SIZE;
  if (hostfile_pread (f, name, n,
                      h->bitmap_directory_offset + off + ENTRY_HEAD) == -1)
    return -1;
  name[n] = '\0';
  e->name = strdup (name);
  if (e->name == NULL)
    return q2_error ("strdup: %m");
  fault = entry_fault (e, h, disk_len);
  if (fault)
    return q2_error ("%s: Bitmap '%s' doesn't satisfy the constraints "
                     "(bitmap directory entry at %" PRIu64 "): "
                     "%s: invalid (table offset %#" PRIx64 ", table "
                     "size %" PRIu32 ", flags %#" PRIx32 ", type %u, "
                     "granularity_bits %u, name_size %u)", f->path,
                     e->name, off, fault, e->table_offset, e->table_size,
                     e->flags, e->type, e->granularity_bits, e->name_size);
  return 0;
}

static int
by_name_then_position (const void *a, const void *b)
{
  const struct qcow2_bitmap *x = *(const struct qcow2_bitmap *const *) a;
  const struct qcow2_bitmap *y = *(const struct qcow2_bitmap *const *) b;
  int c = strcmp (x->name, y->name);

  return c ? c : (x > y) - (x < y);
}

/* qemu looks each name up among the bitmaps loaded before it: which
 * entries of E have the name of an earlier one?  A malloc'd array of
 * COUNT flags, or NULL with q2_error set.
 */
static bool *
find_duplicates (const struct qcow2_bitmap *e, uint32_t count)
{
  const struct qcow2_bitmap **sorted = malloc (count * sizeof *sorted);
  bool *dup = calloc (count, sizeof *dup);
  uint32_t i;

  if (sorted == NULL || dup == NULL) {
    free (sorted);
    free (dup);
    q2_error ("malloc: %m");
    return NULL;
  }
  for (i = 0; i < count; i++)
    sorted[i] = &e[i];
  qsort (sorted, count, sizeof *sorted, by_name_then_position);
  for (i = 1; i < count; i++)
    dup[sorted[i] - e] = strcmp (sorted[i - 1]->name, sorted[i]->name) == 0;
  free (sorted);
  return dup;
}

/* The directory: exactly nb_bitmaps entries filling it. */
static int
read_entries (struct qcow2_bitmap_directory *d, const struct hostfile *f,
              const struct qcow2_header *h, uint64_t disk_len)
{
  uint64_t size = h->bitmap_directory_size, off = 0, next;

  while (off < size) {
    if (off + ENTRY_HEAD > size)
      return q2_error ("%s: bitmap_directory_size: the bitmap directory "
                       "ends inside an entry", f->path);
    if (d->count == h->nb_bitmaps)
      return q2_error ("%s: nb_bitmaps: the bitmap directory has more "
                       "than %" PRIu32 " entries", f->path, h->nb_bitmaps);
    d->count++;                 /* so that free releases its name */
    if (read_entry (f, h, off, &d->entries[d->count - 1], &next,
                    disk_len) == -1)
      return -1;
    off = next;
  }
  if (d->count != h->nb_bitmaps)
    return q2_error ("%s: nb_bitmaps: %" PRIu32 " but the bitmap directory "
                     "has %" PRIu32 " entries", f->path, h->nb_bitmaps,
                     d->count);
  return 0;
}

/* Each bitmap as qemu loads it, in order. */
static int
check_bitmaps (const struct qcow2_bitmap_directory *d,
               const struct hostfile *f, const struct qcow2_header *h,
               uint64_t disk_len)
{
  bool *dup = find_duplicates (d->entries, d->count);
  uint32_t i;
  int r = 0;

  if (dup == NULL)
    return -1;
  for (i = 0; i < d->count && r == 0; i++) {
    const struct qcow2_bitmap *e = &d->entries[i];

    if (e->flags & QCOW2_BITMAP_IN_USE)
      continue;                 /* qemu skips it */
    if (dup[i])
      r = q2_error ("%s: bitmap '%s': two bitmaps have this name", f->path,
                    e->name);
    else
      r = check_table (f, h, e, disk_len);
  }
  free (dup);
  return r;
}

int
qcow2_bitmap_directory_read (struct qcow2_bitmap_directory *d,
                             const struct hostfile *f,
                             const struct qcow2_header *h)
{
  uint64_t size = h->bitmap_directory_size;
  uint64_t disk_len = qcow2_guest_size (h);

  memset (d, 0, sizeof *d);
  if (!h->has_bitmaps_ext)
    return 0;
  if (size == 0)
    return q2_error ("%s: bitmaps extension: bitmap_directory_size: 0",
                     f->path);
  if (!hostfile_offset_ok (h->bitmap_directory_offset, size))
    return q2_error ("%s: bitmaps extension: bitmap_directory_offset: %#"
                     PRIx64 " is past the largest offset qemu reads",
                     f->path, h->bitmap_directory_offset);
  /* nb_bitmaps <= 65535 (header check). */
  d->entries = calloc (h->nb_bitmaps, sizeof *d->entries);
  if (d->entries == NULL)
    return q2_error ("calloc: %m");
  if (read_entries (d, f, h, disk_len) == -1 ||
      check_bitmaps (d, f, h, disk_len) == -1) {
    qcow2_bitmap_directory_free (d);
    return -1;
  }
  return 0;
}

void
qcow2_bitmap_directory_free (struct qcow2_bitmap_directory *d)
{
  uint32_t i;

  for (i = 0; i < d->count; i++)
    free (d->entries[i].name);
  free (d->entries);
  memset (d, 0, sizeof *d);
}
