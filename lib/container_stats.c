/* SPDX-License-Identifier: BSD-3-Clause */
/* Allocation statistics of a qcow2 file for its container report:
 * bytes used or not (by refcount), each split into host data and holes,
 * and the refcounted bytes past the end of the file.
 */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>

#include "container_stats.h"
#include "cleanup.h"
#include "qcow2_geometry.h"
#include "refcount.h"
#include "q2_error.h"
#include "sort_u64.h"

/* Add [OFFSET, OFFSET+LEN) of the file, used or not, split into host
 * data and holes.  (A local file has no "discarded" state: a hole reads
 * as zero, as qemu's file driver reports it.)
 */
static int
add_host_range (struct layer *l, struct container_stats *s, uint64_t offset,
                uint64_t len, bool used)
{
  while (len > 0) {
    bool is_data;
    uint64_t n;

    if (hostfile_allocation (&l->file, offset, len, &is_data, &n) == -1)
      return -1;
    if (used) *(is_data ? &s->used_data : &s->used_zero) += n;
    else      *(is_data ? &s->unused_data : &s->unused_zero) += n;
    offset += n;
    len -= n;
  }
  return 0;
}

/* Nonzero entries [FROM, TO) of the refcount block at OFFSET (BUF: one
 * cluster).
 */
static int
refblock_nonzero (struct layer *l, uint64_t offset, uint64_t from,
                  uint64_t to, uint8_t *buf, uint64_t *n)
{
  uint64_t k;

  if (hostfile_pread (&l->file, buf, l->header.cluster_size, offset) == -1)
    return -1;
  *n = 0;
  for (k = from; k < to; k++)
    *n += refcount_block_entry (buf, l->header.refcount_order, k) != 0;
  return 0;
}

/* Clusters past the end of the file with a refcount, from FIRST_CLUSTER
 * on: walk only the refcount blocks that exist, each distinct block
 * once however many refcount table entries point at it, so that the
 * work is bounded by the file (its blocks) and not by the table.
 */
static int
count_overrun (struct layer *l, struct container_stats *s,
               uint64_t first_cluster)
{
  unsigned block_bits = l->header.cluster_bits + 3 - l->header.refcount_order;
  uint64_t per_block = UINT64_C (1) << block_bits, i, j, n = 0, nonzero = 0;
  uint64_t first = first_cluster >> block_bits;
  CLEANUP_FREE uint64_t *blocks =
    malloc ((l->reftable_entries + 1) * sizeof *blocks);
  CLEANUP_FREE uint8_t *buf = malloc (l->header.cluster_size);

  if (blocks == NULL || buf == NULL)
    return q2_error ("malloc: %m");
  for (i = first; i < l->reftable_entries; i++) {
    uint64_t off = l->reftable[i] & REFT_OFFSET_MASK;

    /* An unaligned block gives no refcount (qemu's qcow2_get_refcount
     * fails on it, and qemu-img check counts it as a corruption): it
     * adds nothing past the end of the file either.
     */
    if (off == 0 || off >= l->file.size || offset_into_cluster (&l->header, off))
      continue;
    if (i == first) {           /* the block holding FIRST_CLUSTER: part */
      if (refblock_nonzero (l, off, first_cluster & (per_block - 1),
                            per_block, buf, &nonzero) == -1)
        return -1;
      s->used_overrun += nonzero * l->header.cluster_size;
    }
    else
      blocks[n++] = off;
  }
  sort_u64 (blocks, n);
  for (i = 0; i < n; i = j) {
    for (j = i + 1; j < n && blocks[j] == blocks[i]; j++)
      ;
    if (refblock_nonzero (l, blocks[i], 0, per_block, buf, &nonzero) == -1)
      return -1;
    s->used_overrun += (j - i) * nonzero * l->header.cluster_size;
  }
  return 0;
}

/* Stored refcounts of the clusters inside the file come from the
 * check; only those past the end are read here.
 */
int
container_stats_measure (struct layer *l, const struct refcount_report *check,
                         struct container_stats *s)
{
  uint64_t cs = l->header.cluster_size, size = l->file.size;
  uint64_t nclusters = (size + cs - 1) / cs, k, start = 0;
  bool run_used = false;

  for (k = 0; k <= nclusters; k++) {
    bool used = k < nclusters && refcount_report_refcounted (check, k);

    if (k == nclusters || (k > 0 && used != run_used)) {
      uint64_t end = k * cs < size ? k * cs : size;
      if (end > start && add_host_range (l, s, start, end - start, run_used) == -1)
        return -1;
      start = end;
    }
    run_used = used;
  }
  /* The used last cluster may extend past the end of the file. */
  if (nclusters > 0 && nclusters * cs > size &&
      refcount_report_refcounted (check, nclusters - 1))
    s->used_overrun += nclusters * cs - size;
  return count_overrun (l, s, nclusters);
}
