/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <endian.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "refcount.h"
#include "qcow2_geometry.h"
#include "be.h"
#include "layer.h"
#include "q2_error.h"


uint64_t
refcount_block_entry (const uint8_t *block, unsigned order, uint64_t index)
{
  switch (order) {
  case 0: return (block[index / 8] >> (index % 8)) & 0x1;
  case 1: return (block[index / 4] >> (2 * (index % 4))) & 0x3;
  case 2: return (block[index / 2] >> (4 * (index % 2))) & 0xf;
  case 3: return block[index];
  case 4: return get_be16 (block + 2 * index);
  case 5: return get_be32 (block + 4 * index);
  default: return get_be64 (block + 8 * index);
  }
}

int
refcount_get (struct layer *l, uint64_t cluster_index,
              uint64_t *refcount)
{
  const struct qcow2_header *h = &l->header;
  /* Entries per refcount block: cluster_size * 8 / 2^order. */
  unsigned block_bits = h->cluster_bits + 3 - h->refcount_order;
  uint64_t table_index = cluster_index >> block_bits;
  uint64_t block_index = cluster_index & ((UINT64_C (1) << block_bits) - 1);
  uint64_t block_offset, slice_offset, per_slice, entry;
  uint32_t slice_bytes;
  uint8_t *block;

  *refcount = 0;
  if (table_index >= l->reftable_entries)
    return 0;
  block_offset = l->reftable[table_index] & REFT_OFFSET_MASK;
  if (block_offset == 0)
    return 0;
  if (offset_into_cluster (h, block_offset))
    return q2_error ("%s: refcount block offset %#" PRIx64 " is not aligned "
                     "(refcount table index %" PRIu64 ")",
                     l->file.path, block_offset, table_index);
  /* A block past the end of the file reads as zeros (hostfile_pread),
   * as qemu's block layer reads it: refcount 0, not an error.
   */

  /* A one-slice memo per layer avoids rereading the slice for the next
   * cluster.  Not thread-safe: refcounts are read when the layer is
   * opened (metadata preallocation detection) and when its container
   * view is first analysed, which the plugin serialises; requests never
   * read them.  The memo is invalid while a read is in progress, so a
   * failed read leaves no half-read slice behind.
   */
  slice_bytes = h->cluster_size < REFBLOCK_SLICE_BYTES ? h->cluster_size
                                                        : REFBLOCK_SLICE_BYTES;
  per_slice = (uint64_t) slice_bytes * 8 >> h->refcount_order;
  slice_offset = block_offset + block_index / per_slice * slice_bytes;
  block = l->refblock_memo;
  if (l->refblock_memo_offset != slice_offset) {
    l->refblock_memo_offset = UINT64_MAX;
    if (hostfile_pread (&l->file, block, slice_bytes, slice_offset) == -1)
      return -1;
    l->refblock_memo_offset = slice_offset;
  }
  block_index %= per_slice;
  entry = refcount_block_entry (block, h->refcount_order, block_index);
  *refcount = entry;
  return 0;
}
