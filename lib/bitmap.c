/* SPDX-License-Identifier: BSD-3-Clause */
/* Bitmap directory entries are 8-byte aligned: a 24-byte head (bitmap
 * table offset and size, flags, type, granularity bits, name size,
 * extra data size), extra data, the name.  A bitmap table entry is 0
 * (all bits clear), 1 (all bits set) or the offset of a data cluster
 * holding cluster_size * 8 bits, bit N (byte N / 8, bit N % 8 from the
 * least significant) covering guest bytes [N << g, (N + 1) << g).
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap.h"
#include "be.h"
#include "extent_json.h"
#include "q2_error.h"

/* qemu's bounds (block/qcow2-bitmap.c, block/qcow2.h). */
#define MAX_BITMAPS          65535
#define MAX_DIRECTORY_BYTES  (1024 * (uint64_t) MAX_BITMAPS)
#define MAX_TABLE_SIZE       0x8000000
#define MAX_PHYS_SIZE        0x20000000
#define MIN_GRANULARITY_BITS 9
#define MAX_GRANULARITY_BITS 31
#define MAX_NAME_SIZE        1023
#define RESERVED_FLAGS       0xfffffffcu
#define TYPE_DIRTY_TRACKING  1
#define ENTRY_HEAD           24
#define TE_RESERVED_MASK     UINT64_C (0xff000000000001fe)
#define TE_OFFSET_MASK       UINT64_C (0x00fffffffffffe00)
#define TE_ALL_ONES          UINT64_C (1)

#define CHUNK 4096              /* bytes of bitmap data read at a time */

/* ---- the directory ---- */

/* qemu's check_dir_entry. */
static bool
entry_ok (const struct layer *l, const struct bitmap *b, uint8_t type)
{
  uint64_t cs = l->header.cluster_size;
  uint64_t phys = (uint64_t) b->table_size * cs;

  if (b->table_size == 0 || b->table_offset == 0 ||
      b->table_offset % cs || b->table_size > MAX_TABLE_SIZE ||
      b->granularity_bits > MAX_GRANULARITY_BITS ||
      b->granularity_bits < MIN_GRANULARITY_BITS ||
      (b->flags & RESERVED_FLAGS) || b->name_len > MAX_NAME_SIZE ||
      type != TYPE_DIRTY_TRACKING || phys > MAX_PHYS_SIZE)
    return false;
  /* A consistent bitmap must cover the disk. */
  return (b->flags & BITMAP_FLAG_IN_USE) ||
    l->size <= (phys * 8) << b->granularity_bits;
}

/* qemu's check_table_entry. */
static bool
table_entry_ok (uint64_t e, uint64_t cluster_size)
{
  uint64_t offset = e & TE_OFFSET_MASK;

  if (e & TE_RESERVED_MASK)
    return false;
  return offset == 0 || (!(e & TE_ALL_ONES) && offset % cluster_size == 0);
}

/* Bits needed for the disk, in clusters of bitmap data: the table size
 * qemu requires of a consistent bitmap.
 */
static uint64_t
expected_table_size (const struct layer *l, const struct bitmap *b)
{
  uint64_t g = UINT64_C (1) << b->granularity_bits;
  uint64_t bits = l->size / g + (l->size % g != 0);
  uint64_t bytes = (bits + 63) / 64 * 8;
  uint64_t cs = l->header.cluster_size;

  return (bytes + cs - 1) / cs;
}

/* What qemu reads of a consistent bitmap when it opens the image. */
static int
check_table (struct layer *l, const struct bitmap *b)
{
  uint8_t buf[CHUNK];
  uint64_t i, n;

  for (i = 0; i < b->table_size; i += n) {
    uint64_t j;

    n = b->table_size - i < CHUNK / 8 ? b->table_size - i : CHUNK / 8;
    if (hostfile_pread (&l->file, buf, n * 8, b->table_offset + i * 8) == -1)
      return -1;
    for (j = 0; j < n; j++)
      if (!table_entry_ok (get_be64 (buf + j * 8), l->header.cluster_size))
        return q2_error ("%s: Could not read bitmap_table table from image "
                         "for bitmap '%s': entry %" PRIu64 " is invalid",
                         l->file.path, b->name, i + j);
  }
  if (b->table_size != expected_table_size (l, b))
    return q2_error ("%s: Could not read bitmap '%s' from image: its "
                     "table has %" PRIu32 " entries, %" PRIu64 " expected",
                     l->file.path, b->name, b->table_size,
                     expected_table_size (l, b));
  return 0;
}

/* Parse entry I at DIR + *OFF (SIZE bytes in all) into B. */
static int
parse_entry (struct layer *l, const uint8_t *dir, uint64_t size,
             uint64_t *off, struct bitmap *b)
{
  const uint8_t *e = dir + *off;
  uint32_t extra;
  uint64_t entry_size;
  uint8_t type;

  if (size - *off < ENTRY_HEAD)
    return q2_error ("%s: Broken bitmap directory", l->file.path);
  b->table_offset = get_be64 (e);
  b->table_size = get_be32 (e + 8);
  b->flags = get_be32 (e + 12);
  type = e[16];
  b->granularity_bits = e[17];
  b->name_len = get_be16 (e + 18);
  extra = get_be32 (e + 20);
  entry_size = (ENTRY_HEAD + (uint64_t) b->name_len + extra + 7) & ~UINT64_C (7);
  if (entry_size > size - *off)
    return q2_error ("%s: Broken bitmap directory", l->file.path);
  if (extra != 0)
    return q2_error ("%s: Bitmap extra data is not supported", l->file.path);
  b->name = strndup ((const char *) e + ENTRY_HEAD, b->name_len);
  if (b->name == NULL)
    return q2_error ("strndup: %m");
  if (!entry_ok (l, b, type))
    return q2_error ("%s: Bitmap '%s' doesn't satisfy the constraints",
                     l->file.path, b->name);
  *off += entry_size;
  if (!(b->flags & BITMAP_FLAG_IN_USE))
    return check_table (l, b);
  return 0;
}

int
bitmap_directory_read (struct layer *l, struct bitmap_directory *d)
{
  const struct qcow2_header *h = &l->header;
  uint64_t size = h->bitmap_directory_size, off = 0;
  uint8_t *dir;
  int r = 0;

  *d = (struct bitmap_directory) { 0 };
  if (l->format != LAYER_QCOW2 || !h->has_bitmaps_ext ||
      !(h->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) ||
      h->nb_bitmaps == 0)
    return 0;
  if (h->nb_bitmaps > MAX_BITMAPS)
    return q2_error ("%s: too many bitmaps (%" PRIu32 ")", l->file.path,
                     h->nb_bitmaps);
  if (size == 0)
    return q2_error ("%s: Requested bitmap directory size is zero",
                     l->file.path);
  if (size > MAX_DIRECTORY_BYTES)
    return q2_error ("%s: Requested bitmap directory size is too big",
                     l->file.path);
  dir = malloc (size);
  d->b = calloc (h->nb_bitmaps, sizeof *d->b);
  if (dir == NULL || d->b == NULL) {
    free (dir);
    return q2_error ("malloc: %m");
  }
  r = hostfile_pread (&l->file, dir, size, h->bitmap_directory_offset);
  while (r == 0 && off < size) {
    if (d->n == h->nb_bitmaps) {
      r = q2_error ("%s: More bitmaps found than specified in header "
                    "extension", l->file.path);
      break;
    }
    r = parse_entry (l, dir, size, &off, &d->b[d->n++]);
  }
  if (r == 0 && d->n != h->nb_bitmaps)
    r = q2_error ("%s: Less bitmaps found than specified in header "
                  "extension", l->file.path);
  free (dir);
  if (r == -1)
    bitmap_directory_free (d);
  return r;
}

void
bitmap_directory_free (struct bitmap_directory *d)
{
  uint32_t i;

  for (i = 0; i < d->n; i++)
    free (d->b[i].name);
  free (d->b);
  *d = (struct bitmap_directory) { 0 };
}

long
bitmap_find (const struct bitmap_directory *d, const char *name)
{
  uint32_t i;

  for (i = 0; i < d->n; i++)
    if (strcmp (d->b[i].name, name) == 0)
      return i;
  return -1;
}

/* ---- dirty ranges ---- */

/* Bits BIT.. of the data cluster at DATA with the value of BIT: sets
 * *SET and returns the run length (1..MAX bits) in *NBITS.
 */
static int
bit_run (struct layer *l, uint64_t data, uint64_t bit, uint64_t max,
         bool *set, uint64_t *nbits)
{
  uint8_t buf[CHUNK];
  uint64_t n = 0;

  while (n < max) {
    uint64_t pos = bit + n, first_byte = pos / 8;
    uint64_t bytes = (pos % 8 + (max - n) + 7) / 8;

    if (bytes > CHUNK)
      bytes = CHUNK;
    if (hostfile_pread (&l->file, buf, bytes, data + first_byte) == -1)
      return -1;
    for (; n < max && (bit + n) / 8 < first_byte + bytes; n++) {
      uint64_t p = bit + n;
      bool v = (buf[p / 8 - first_byte] >> (p % 8)) & 1;

      if (n == 0)
        *set = v;
      else if (v != *set)
        goto done;
    }
  }
 done:
  *nbits = n;
  return 0;
}

int
bitmap_dirty (struct layer *l, const struct bitmap *b, uint64_t offset,
              uint64_t count, bool *dirty, uint64_t *length)
{
  uint64_t cs = l->header.cluster_size;
  uint64_t bits_per_entry = cs * 8;
  unsigned g = b->granularity_bits;
  uint64_t bit = offset >> g, end_bit = ((offset + count - 1) >> g) + 1;
  uint64_t index = bit / bits_per_entry, in_entry = bit % bits_per_entry;
  uint64_t max = bits_per_entry - in_entry, nbits, run_end;
  uint8_t raw[8];
  uint64_t e;

  if (max > end_bit - bit)
    max = end_bit - bit;
  if (index >= b->table_size)
    return q2_error ("%s: bitmap '%s': guest offset %" PRIu64 ": beyond "
                     "the bitmap table", l->file.path, b->name, offset);
  if (hostfile_pread (&l->file, raw, 8, b->table_offset + index * 8) == -1)
    return -1;
  e = get_be64 (raw);
  if (!table_entry_ok (e, cs))
    return q2_error ("%s: bitmap '%s': guest offset %" PRIu64 ": invalid "
                     "bitmap table entry %" PRIu64 " (%#" PRIx64 ")",
                     l->file.path, b->name, offset, index, e);
  if ((e & TE_OFFSET_MASK) == 0) {
    *dirty = e & TE_ALL_ONES;
    nbits = max;
  }
  else if (bit_run (l, e & TE_OFFSET_MASK, in_entry, max, dirty,
                    &nbits) == -1)
    return q2_error ("%s: bitmap '%s': guest offset %" PRIu64 ": %s",
                     l->file.path, b->name, offset, q2_last_error ());
  run_end = (bit + nbits) << g;
  *length = run_end - offset < count ? run_end - offset : count;
  return 0;
}

static void
describe_dirty (uint32_t type, char *buf, size_t n)
{
  snprintf (buf, n, "%s", type ? "dirty" : "clean");
}

char *
bitmap_json (struct layer *l, const struct bitmap *b, size_t *len)
{
  struct extent_json *w = extent_json_new (describe_dirty);
  uint64_t offset = 0;

  if (w == NULL)
    return NULL;
  while (offset < l->size) {
    uint64_t length;
    bool dirty;

    if (bitmap_dirty (l, b, offset, l->size - offset, &dirty, &length) == -1) {
      extent_json_abort (w);
      return NULL;
    }
    extent_json_add (w, length, dirty);
    offset += length;
  }
  return extent_json_finish (w, len);
}
