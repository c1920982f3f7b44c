/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include "qcow2_cluster.h"

uint64_t
l1_entry_l2_offset (uint64_t entry)
{
  return entry & L1E_OFFSET_MASK;
}

/* Compressed descriptor: the low x bits are the host byte offset, the
 * next (cluster_bits - 8) bits the number of additional 512-byte
 * sectors, x = 62 - (cluster_bits - 8).
 */
static void
decode_compressed (const struct cluster_geometry *g, uint64_t entry,
                   struct cluster_desc *d)
{
  unsigned csize_shift = 62 - (g->cluster_bits - 8);
  uint64_t csize_mask = (UINT64_C (1) << (g->cluster_bits - 8)) - 1;
  uint64_t nb_sectors = ((entry >> csize_shift) & csize_mask) + 1;

  d->type = SC_COMPRESSED;
  d->host_offset = entry & ((UINT64_C (1) << csize_shift) - 1);
  d->compressed_size = nb_sectors * 512 - (d->host_offset & 511);
}

static void
invalid (struct cluster_desc *d, const char *why)
{
  d->type = SC_INVALID;
  d->invalid_reason = why;
}

void
cluster_decode (const struct cluster_geometry *g, uint64_t entry,
                uint64_t bitmap, struct cluster_desc *d)
{
  uint64_t cluster_mask = (UINT64_C (1) << g->cluster_bits) - 1;

  *d = (struct cluster_desc) { .type = SC_UNALLOCATED };
  d->alloc_bitmap = bitmap & 0xffffffff;
  d->zero_bitmap = bitmap >> 32;

  if (entry & QCOW_OFLAG_COMPRESSED) {
    if (g->external_data_file)
      return invalid (d, "compressed cluster in an image with an external "
                      "data file");
    return decode_compressed (g, entry, d);
  }
  /* With extended L2 entries, bit 0 is reserved and qemu ignores it. */
  if (g->extended_l2)
    entry &= ~QCOW_OFLAG_ZERO;

  d->host_offset = entry & L2E_OFFSET_MASK;
  if (d->host_offset & cluster_mask)
    return invalid (d, "host cluster offset not aligned to a cluster");

  if (!g->extended_l2 && (entry & QCOW_OFLAG_ZERO))
    d->type = SC_ZERO;
  else if (d->host_offset != 0 ||
           (g->external_data_file && (entry & QCOW_OFLAG_COPIED)))
    d->type = SC_NORMAL;
  else
    d->type = SC_UNALLOCATED;

  if (g->extended_l2 && (d->alloc_bitmap & d->zero_bitmap))
    return invalid (d, "subcluster both allocated and zero");
  if (g->extended_l2 && d->type == SC_UNALLOCATED && d->alloc_bitmap)
    return invalid (d, "subcluster allocated in an unallocated cluster");
}

enum subcluster_type
cluster_subcluster_type (const struct cluster_geometry *g,
                         const struct cluster_desc *d, unsigned sc)
{
  uint32_t bit = UINT32_C (1) << sc;

  if (!g->extended_l2 || d->type == SC_COMPRESSED || d->type == SC_INVALID)
    return d->type;
  if (d->zero_bitmap & bit)
    return SC_ZERO;
  if (d->type == SC_NORMAL)
    return (d->alloc_bitmap & bit) ? SC_NORMAL : SC_UNALLOCATED_ALLOC;
  return SC_UNALLOCATED;
}
