/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <endian.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "refcount_check.h"
#include "qcow2_geometry.h"
#include "be.h"
#include "qcow2_cluster.h"
#include "refcount.h"
#include "q2_error.h"
#include "sort_u64.h"

#define REFT_RESERVED_MASK 0x1ffULL
#define MAX_CHECK_CLUSTERS (UINT64_C (1) << 28)   /* 1 GiB of counters */

struct counter {
  struct layer *l;
  struct refcount_report *r;
  uint64_t file_len;            /* as qemu sees it: whole 512-byte sectors */
  uint64_t max;                 /* largest storable refcount */
  uint32_t *refs;               /* file_clusters + 1 entries */
  uint64_t nb_clusters;         /* qemu's: file_clusters, + 1 once a region
                                   counted reaches into the cluster past
                                   the end of the file */
  meta_cb observer;
  void *observer_opaque;
};

/* qemu's qcow2_inc_refcounts_imrt, COUNT times: a region may overrun
 * the end of the file by less than a cluster (the last cluster may be
 * partly written); more than that is a corruption and the region is not
 * counted.  Each reference past the largest storable refcount is a
 * corruption (refcount overflow).  qemu's size is an int64_t and it
 * counts nothing for a size <= 0: a size of 2^63 or more (a LUKS header
 * extension's length, which qemu takes as it is) counts nothing at all,
 * not a corruption (found by difftest).
 */
static void
count_region (struct counter *c, uint64_t offset, uint64_t size,
              uint64_t count)
{
  unsigned bits = c->l->header.cluster_bits;
  uint64_t k, last, total;

  if (size == 0 || size > INT64_MAX)
    return;
  if (offset + size >= c->file_len + (UINT64_C (1) << bits) ||
      offset + size < offset) {
    c->r->corruptions += count;
    return;
  }
  last = (offset + size - 1) >> bits;
  for (k = offset >> bits; k <= last; k++) {
    total = c->refs[k] + count;
    if (total > c->max) {
      c->r->corruptions += total - c->max;
      total = c->max;
    }
    c->refs[k] = total;
  }
  /* qemu grows its refcount array to the last cluster counted (at most
   * one past the file's, as checked above); check_refblocks and
   * compare_refcounts then cover it.
   */
  if (last + 1 > c->nb_clusters)
    c->nb_clusters = last + 1;
}

static int
count_ref (void *opaque, const struct meta_ref *ref)
{
  struct counter *c = opaque;
  uint64_t cs = c->l->header.cluster_size;

  if (ref->kind == META_CORRUPT) {       /* skipped, as qemu-img check */
    c->r->corruptions += ref->count;
    return 0;
  }
  if (ref->kind == META_EXTERNAL_DATA) { /* allocated, not in this file */
    if (ref->snapshot == -1)
      c->r->allocated_clusters += ref->count;
    return 0;
  }
  if (c->observer && c->observer (c->observer_opaque, ref) == -1)
    return -1;
  switch (ref->kind) {
  case META_HEADER:
    count_region (c, 0, cs, 1);
    break;
  case META_HEADER_EXTENSION:
  case META_BACKING_NAME:
  case META_REFCOUNT_BLOCK:     /* counted by check_refblocks */
    break;
  case META_DATA:
  case META_ZERO_ALLOC:
  case META_COMPRESSED:
    if (ref->snapshot == -1) {
      c->r->allocated_clusters += ref->count;
      if (ref->kind == META_COMPRESSED)
        c->r->compressed_clusters += ref->count;
    }
    count_region (c, ref->offset, ref->length, ref->count);
    break;
  default:
    count_region (c, ref->offset, ref->length, ref->count);
    break;
  }
  return 0;
}

/* qemu's check_refblocks. */
static void
check_refblocks (struct counter *c)
{
  struct layer *l = c->l;
  uint64_t i;

  for (i = 0; i < l->reftable_entries; i++) {
    uint64_t offset = l->reftable[i] & REFT_OFFSET_MASK;
    uint64_t cluster = offset >> l->header.cluster_bits;

    if ((l->reftable[i] & REFT_RESERVED_MASK) ||
        offset_into_cluster (&l->header, offset) ||
        cluster >= c->nb_clusters) {
      c->r->corruptions++;
      continue;
    }
    if (offset == 0)
      continue;
    count_region (c, offset, l->header.cluster_size, 1);
    if (c->refs[cluster] != 1)
      c->r->corruptions++;
  }
}

/* Whether an active L2 entry is, in qemu's cluster-level terms, a
 * normal or a preallocated zero cluster (the entries whose COPIED flag
 * qemu checks), and its host cluster.
 */
static bool
copied_flag_applies (const struct layer *l, uint64_t entry, uint64_t *host)
{
  bool data_file = l->data != &l->file;

  *host = entry & L2E_OFFSET_MASK;
  if (entry & QCOW_OFLAG_COMPRESSED)
    return false;
  if (!l->header.extended_l2 && (entry & QCOW_OFLAG_ZERO))
    return *host != 0;
  return *host != 0 || (data_file && (entry & QCOW_OFLAG_COPIED));
}

/* COPIED must be set exactly when the stored refcount is 1 (data in
 * an external file counts as 1).  Unreadable refcounts are skipped.
 */
static void
check_copied (struct counter *c, uint64_t entry, uint64_t cluster)
{
  uint64_t stored = 1;

  if (c->l->data == &c->l->file &&
      refcount_get (c->l, cluster, &stored) == -1)
    return;
  if ((stored == 1) != ((entry & QCOW_OFLAG_COPIED) != 0))
    c->r->corruptions++;
}

/* qemu's check_oflag_copied, on the entries of an L2 table of the
 * active L1 table, as the metadata walk reads it (N entries: those
 * inside the file; the rest are zeros, nothing to check).  qemu checks
 * an L2 table once per L1 entry pointing at it: the walk gives each
 * distinct table once with that COUNT, and the count is multiplied, so
 * that the work is bounded by the tables in the file.  Tables whose
 * refcount cannot be read are skipped, as the L1 check skips them.
 */
static int
check_copied_l2 (void *opaque, uint64_t l2, const uint8_t *entries,
                 uint64_t n, int snapshot, uint64_t count)
{
  struct counter *c = opaque;
  const struct qcow2_header *h = &c->l->header;
  uint64_t j, host, v, stored, before = c->r->corruptions;

  /* An L1 entry with offset 0 (reserved bits only) is walked as an L2
   * table at 0 by the refcount check, but check_oflag_copied skips it.
   */
  if (snapshot != -1 || l2 == 0 ||
      refcount_get (c->l, l2 >> h->cluster_bits, &stored) == -1)
    return 0;
  for (j = 0; j < n; j++) {
    v = get_be64 (entries + j * h->l2_entry_size);
    if (copied_flag_applies (c->l, v, &host))
      check_copied (c, v, host >> h->cluster_bits);
  }
  c->r->corruptions += (c->r->corruptions - before) * (count - 1);
  return 0;
}

/* qemu's check_oflag_copied on the active L1 table (the L2 tables are
 * checked during the walk, by check_copied_l2).
 */
static void
check_copied_l1 (struct counter *c)
{
  struct layer *l = c->l;
  const struct qcow2_header *h = &l->header;
  uint64_t i, stored;

  for (i = 0; i < h->l1_size; i++) {
    uint64_t l2 = l->l1[i] & L1E_OFFSET_MASK;

    if (l2 == 0 || refcount_get (l, l2 >> h->cluster_bits, &stored) == -1)
      continue;
    if ((stored == 1) != ((l->l1[i] & QCOW_OFLAG_COPIED) != 0))
      c->r->corruptions++;
  }
}

/* qemu's compare_refcounts, and the in-use bitmap. */
static int
compare (struct counter *c)
{
  struct refcount_report *r = c->r;
  uint64_t i, stored;
  int64_t highest = -1;

  for (i = 0; i < c->nb_clusters; i++) {
    if (refcount_get (c->l, i, &stored) == -1)
      return -1;
    if (stored > 0)
      r->refcounted[i / 8] |= 1 << (i % 8);
    if (stored > 0 || c->refs[i] > 0) {
      highest = i;
      r->in_use[i / 8] |= 1 << (i % 8);
    }
    r->referenced_clusters += c->refs[i] > 0;
    if (stored < c->refs[i])
      r->corruptions++;
    else if (stored > c->refs[i])
      r->leaks++;
  }
  r->image_end_offset = (uint64_t) (highest + 1) << c->l->header.cluster_bits;
  return 0;
}

int
refcount_check (struct layer *l, struct refcount_report *r,
                meta_cb observer, void *observer_opaque)
{
  const struct qcow2_header *h = &l->header;
  struct counter c = { .l = l, .r = r, .observer = observer,
                       .observer_opaque = observer_opaque };
  int ret = -1;

  memset (r, 0, sizeof *r);
  c.file_len = (l->file.size + 511) & ~UINT64_C (511);
  c.max = h->refcount_order >= 5 ? UINT32_MAX
                                 : (UINT64_C (1) << (1 << h->refcount_order)) - 1;
  r->file_clusters = size_to_clusters (h, c.file_len);
  r->total_clusters = size_to_clusters (h, qcow2_guest_size (h));
  if (r->file_clusters > MAX_CHECK_CLUSTERS)
    return q2_error ("%s: file has too many clusters (%" PRIu64 ") to check",
                     l->file.path, r->file_clusters);
  c.nb_clusters = r->file_clusters;
  c.refs = calloc (r->file_clusters + 1, sizeof *c.refs);
  r->in_use = calloc (r->file_clusters / 8 + 1, 1);
  r->refcounted = calloc (r->file_clusters / 8 + 1, 1);
  if (c.refs == NULL || r->in_use == NULL || r->refcounted == NULL) {
    q2_error ("calloc: %m");
    goto out;
  }
  if (metadata_walk_l2 (l, count_ref, check_copied_l2, &c) == -1)
    goto out;
  check_refblocks (&c);
  if (compare (&c) == -1)
    goto out;
  check_copied_l1 (&c);
  ret = 0;
 out:
  free (c.refs);
  if (ret == -1)
    refcount_report_free (r);
  return ret;
}

void
refcount_report_free (struct refcount_report *r)
{
  free (r->in_use);
  free (r->refcounted);
  r->in_use = r->refcounted = NULL;
}
