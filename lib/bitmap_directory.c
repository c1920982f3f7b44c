/* SPDX-License-Identifier: BSD-3-Clause */
/* The bitmap directory, checked as qemu 7.2 checks it when it opens an
 * image.  See bitmap_directory.h.
 */
#include <config.h>

#include <endian.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap_directory.h"
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
#define TABLE_RESERVED_MASK  0xff000000000001feULL
#define TABLE_OFFSET_MASK    0x00fffffffffffe00ULL
#define TABLE_ALL_ONES       1ULL

struct entry {
  uint64_t table_offset;
  uint32_t table_size, flags, extra_data_size;
  uint8_t type, granularity_bits;
  uint16_t name_size;
  char *name;                     /* up to its first NUL, as qemu's */
  uint32_t index;
  bool duplicate;                 /* an earlier bitmap has this name */
};

static void
decode_entry (struct entry *e, const uint8_t *p)
{
  e->table_offset = get_be64 (p);
  e->table_size = get_be32 (p + 8);
  e->flags = get_be32 (p + 12);
  e->type = p[16];
  e->granularity_bits = p[17];
  e->name_size = get_be16 (p + 18);
  e->extra_data_size = get_be32 (p + 20);
}

/* qemu's check_dir_entry: NULL if E is valid, else the field at fault.
 * DISK_LEN is the image's size in whole sectors (bdrv_getlength).
 */
static const char *
entry_fault (const struct entry *e, const struct qcow2_header *h,
             uint64_t disk_len)
{
  uint64_t phys_bytes = (uint64_t) e->table_size * h->cluster_size;

  if (e->table_size == 0 || e->table_size > MAX_TABLE_SIZE)
    return "bitmap_table_size";
  if (e->table_offset == 0 || (e->table_offset & (h->cluster_size - 1)))
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
             const struct entry *e, uint64_t disk_len)
{
  uint64_t cs = h->cluster_size, bits, needed, i, chunk = cs / 8;
  uint64_t *t = malloc (cs);
  int r = 0;

  if (t == NULL)
    return q2_error ("malloc: %m");
  if (!hostfile_offset_ok (e->table_offset, (uint64_t) e->table_size * 8)) {
    free (t);
    return q2_error ("%s: bitmap '%s': bitmap_table_offset: %#" PRIx64
                     " is past the largest offset qemu reads", f->path,
                     e->name, e->table_offset);
  }
  for (i = 0; i < e->table_size && r == 0; i += chunk) {
    uint64_t j, n = e->table_size - i < chunk ? e->table_size - i : chunk;

    if (hostfile_pread (f, t, n * 8, e->table_offset + i * 8) == -1) {
      r = -1;
      break;
    }
    for (j = 0; j < n; j++) {
      uint64_t v = be64toh (t[j]), off = v & TABLE_OFFSET_MASK;

      if ((v & TABLE_RESERVED_MASK) ||
          (off && ((v & TABLE_ALL_ONES) || (off & (cs - 1))))) {
        r = q2_error ("%s: bitmap '%s': bitmap table entry %" PRIu64
                      " (%#" PRIx64 ") is invalid", f->path, e->name,
                      i + j, v);
        break;
      }
    }
  }
  free (t);
  if (r == -1)
    return -1;

  bits = (disk_len >> e->granularity_bits) +
    ((disk_len & ((UINT64_C (1) << e->granularity_bits) - 1)) != 0);
  needed = (bits + 8 * cs - 1) / (8 * cs);
  if (needed != e->table_size)
    return q2_error ("%s: bitmap '%s': bitmap_table_size: %" PRIu32 " but "
                     "the bitmap needs %" PRIu64 " clusters", f->path,
                     e->name, e->table_size, needed);
  return 0;
}

/* Read and check the entry at directory offset OFF; *NEXT is where the
 * next one starts.
 */
static int
read_entry (const struct hostfile *f, const struct qcow2_header *h,
            uint64_t off, struct entry *e, uint64_t *next, uint64_t disk_len)
{
  uint64_t size = h->bitmap_directory_size;
  uint8_t head[ENTRY_HEAD];
  char name[MAX_NAME_SIZE + 1];
  const char *fault;
  size_t n;

  if (hostfile_pread (f, head, sizeof head,
                      h->bitmap_directory_offset + off) == -1)
    return -1;
  decode_entry (e, head);
  *next = off + ((ENTRY_HEAD + (uint64_t) e->name_size +
                  e->extra_data_size + 7) & ~UINT64_C (7));
  if (*next > size)
    return q2_error ("%s: bitmap_directory_size: the bitmap directory "
                     "entry at %" PRIu64 " runs past its end", f->path, off);
  if (e->extra_data_size != 0)
    return q2_error ("%s: bitmap directory entry at %" PRIu64 ": "
                     "extra_data_size: %" PRIu32 " (qemu supports none)",
                     f->path, off, e->extra_data_size);
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
by_name_then_index (const void *a, const void *b)
{
  const struct entry *x = *(struct entry *const *) a;
  const struct entry *y = *(struct entry *const *) b;
  int c = strcmp (x->name, y->name);

  return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* qemu looks each name up among the bitmaps loaded before it. */
static int
mark_duplicates (struct entry *e, uint32_t count)
{
  struct entry **sorted = malloc (count * sizeof *sorted);
  uint32_t i;

  if (sorted == NULL)
    return q2_error ("malloc: %m");
  for (i = 0; i < count; i++)
    sorted[i] = &e[i];
  qsort (sorted, count, sizeof *sorted, by_name_then_index);
  for (i = 1; i < count; i++)
    sorted[i]->duplicate = strcmp (sorted[i - 1]->name, sorted[i]->name) == 0;
  free (sorted);
  return 0;
}

int
qcow2_bitmap_directory_check (const struct hostfile *f,
                              const struct qcow2_header *h)
{
  uint64_t size = h->bitmap_directory_size, off = 0, next;
  uint64_t disk_len = h->size & ~UINT64_C (511);
  struct entry *e;
  uint32_t i, count = 0;
  int r = -1;

  if (!h->has_bitmaps_ext)
    return 0;
  if (size == 0)
    return q2_error ("%s: bitmaps extension: bitmap_directory_size: 0",
                     f->path);
  if (!hostfile_offset_ok (h->bitmap_directory_offset, size))
    return q2_error ("%s: bitmaps extension: bitmap_directory_offset: %#"
                     PRIx64 " is past the largest offset qemu reads",
                     f->path, h->bitmap_directory_offset);
  /* nb_bitmaps <= 65535 (header check): at most 64 MiB of entries. */
  e = calloc (h->nb_bitmaps, sizeof *e);
  if (e == NULL)
    return q2_error ("calloc: %m");

  /* The directory: exactly nb_bitmaps entries filling it. */
  while (off < size) {
    if (off + ENTRY_HEAD > size) {
      q2_error ("%s: bitmap_directory_size: the bitmap directory ends "
                "inside an entry", f->path);
      goto out;
    }
    if (count == h->nb_bitmaps) {
      q2_error ("%s: nb_bitmaps: the bitmap directory has more than %"
                PRIu32 " entries", f->path, h->nb_bitmaps);
      goto out;
    }
    e[count].index = count;
    count++;
    if (read_entry (f, h, off, &e[count - 1], &next, disk_len) == -1)
      goto out;
    off = next;
  }
  if (count != h->nb_bitmaps) {
    q2_error ("%s: nb_bitmaps: %" PRIu32 " but the bitmap directory has %"
              PRIu32 " entries", f->path, h->nb_bitmaps, count);
    goto out;
  }

  /* Each bitmap as qemu loads it, in order. */
  if (mark_duplicates (e, count) == -1)
    goto out;
  for (i = 0; i < count; i++) {
    if (e[i].duplicate) {
      if (e[i].flags & QCOW2_BITMAP_IN_USE)
        continue;               /* qemu skips it */
      q2_error ("%s: bitmap '%s': two bitmaps have this name", f->path,
                e[i].name);
      goto out;
    }
    if (!(e[i].flags & QCOW2_BITMAP_IN_USE) &&
        check_table (f, h, &e[i], disk_len) == -1)
      goto out;
  }
  r = 0;
 out:
  for (i = 0; i < count; i++)
    free (e[i].name);
  free (e);
  return r;
}
