#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "refcount_check.h"
#include "metadata_walk.h"
#include "refcount.h"
#include "q2_error.h"

#define REFT_OFFSET_MASK   0xfffffffffffffe00ULL
#define REFT_RESERVED_MASK 0x1ffULL
#define MAX_CHECK_CLUSTERS (UINT64_C (1) << 28)   /* 1 GiB of counters */

struct counter {
  struct layer *l;
  struct refcount_report *r;
  uint64_t file_len;            /* as qemu sees it: whole 512-byte sectors */
  uint64_t max;                 /* largest storable refcount */
  uint32_t *refs;               /* file_clusters + 1 entries */
};

/* qemu's qcow2_inc_refcounts_imrt: a region may overrun the end of the
 * file by less than a cluster (the last cluster may be partly written);
 * more than that is a corruption and the region is not counted.
 */
static void
count_region (struct counter *c, uint64_t offset, uint64_t size)
{
  unsigned bits = c->l->header.cluster_bits;
  uint64_t k, last;

  if (size == 0)
    return;
  if (offset + size >= c->file_len + (UINT64_C (1) << bits) ||
      offset + size < offset) {
    c->r->corruptions++;
    return;
  }
  last = (offset + size - 1) >> bits;
  for (k = offset >> bits; k <= last; k++) {
    if (c->refs[k] >= c->max)
      c->r->corruptions++;      /* refcount overflow */
    else
      c->refs[k]++;
  }
}

static int
count_ref (void *opaque, const struct meta_ref *ref)
{
  struct counter *c = opaque;
  uint64_t cs = c->l->header.cluster_size;

  switch (ref->kind) {
  case META_HEADER:
    count_region (c, 0, cs);
    break;
  case META_HEADER_EXTENSION:
  case META_BACKING_NAME:
  case META_REFCOUNT_BLOCK:     /* counted by check_refblocks */
    break;
  case META_DATA:
  case META_ZERO_ALLOC:
  case META_COMPRESSED:
    if (ref->snapshot == -1) {
      c->r->allocated_clusters++;
      c->r->compressed_clusters += ref->kind == META_COMPRESSED;
    }
    count_region (c, ref->offset, ref->length);
    break;
  default:
    count_region (c, ref->offset, ref->length);
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
        (offset & (l->header.cluster_size - 1)) ||
        cluster >= c->r->file_clusters) {
      c->r->corruptions++;
      continue;
    }
    if (offset == 0)
      continue;
    count_region (c, offset, l->header.cluster_size);
    if (c->refs[cluster] != 1)
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

  for (i = 0; i < r->file_clusters; i++) {
    if (refcount_get (c->l, i, &stored) == -1)
      return -1;
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
refcount_check (struct layer *l, struct refcount_report *r)
{
  const struct qcow2_header *h = &l->header;
  struct counter c = { .l = l, .r = r };
  int ret = -1;

  memset (r, 0, sizeof *r);
  c.file_len = (l->file.size + 511) & ~UINT64_C (511);
  c.max = h->refcount_order >= 5 ? UINT32_MAX
                                 : (UINT64_C (1) << (1 << h->refcount_order)) - 1;
  r->file_clusters = (c.file_len + h->cluster_size - 1) >> h->cluster_bits;
  r->total_clusters = (h->size + h->cluster_size - 1) >> h->cluster_bits;
  if (r->file_clusters > MAX_CHECK_CLUSTERS)
    return q2_error ("%s: file has too many clusters (%" PRIu64 ") to check",
                     l->file.path, r->file_clusters);
  c.refs = calloc (r->file_clusters + 1, sizeof *c.refs);
  r->in_use = calloc (r->file_clusters / 8 + 1, 1);
  if (c.refs == NULL || r->in_use == NULL) {
    q2_error ("calloc: %m");
    goto out;
  }
  if (metadata_walk (l, count_ref, &c) == -1)
    goto out;
  check_refblocks (&c);
  if (compare (&c) == -1)
    goto out;
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
  r->in_use = NULL;
}
