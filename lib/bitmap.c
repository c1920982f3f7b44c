/* SPDX-License-Identifier: BSD-3-Clause */
/* Reading a persistent bitmap's table and data (the directory is read
 * and checked at open: bitmap_directory.c).  A bitmap table entry is 0
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

#define CHUNK 4096              /* bytes of bitmap data read at a time */

long
bitmap_find (const struct qcow2_bitmap_directory *d, const char *name)
{
  uint32_t i;

  for (i = 0; i < d->count; i++)
    if (strcmp (d->entries[i].name, name) == 0)
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
bitmap_dirty (struct layer *l, const struct qcow2_bitmap *b,
              uint64_t offset, uint64_t count, bool *dirty, uint64_t *length)
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
  if (!qcow2_bitmap_table_entry_ok (e, cs))
    return q2_error ("%s: bitmap '%s': guest offset %" PRIu64 ": invalid "
                     "bitmap table entry %" PRIu64 " (%#" PRIx64 ")",
                     l->file.path, b->name, offset, index, e);
  if ((e & QCOW2_BITMAP_TABLE_OFFSET_MASK) == 0) {
    *dirty = e & QCOW2_BITMAP_TABLE_ALL_ONES;
    nbits = max;
  }
  else if (bit_run (l, e & QCOW2_BITMAP_TABLE_OFFSET_MASK, in_entry, max, dirty,
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
bitmap_json (struct layer *l, const struct qcow2_bitmap *b, size_t *len)
{
  struct extent_json *w = extent_json_new (describe_dirty, l->file.path);
  uint64_t offset = 0;

  if (w == NULL)
    return NULL;
  while (offset < l->size) {
    uint64_t length;
    bool dirty;

    if (bitmap_dirty (l, b, offset, l->size - offset, &dirty,
                      &length) == -1 ||
        extent_json_add (w, length, dirty) == -1) {
      extent_json_abort (w);
      return NULL;
    }
    offset += length;
  }
  return extent_json_finish (w, len);
}
