/* SPDX-License-Identifier: BSD-3-Clause */
/* The refcount consistency check, as qemu-img check counts it: every
 * reference found by the metadata walk is counted per host cluster and
 * compared with the refcount stored in the image.
 */
#ifndef Q2_REFCOUNT_CHECK_H
#define Q2_REFCOUNT_CHECK_H

#include <stdint.h>

#include "layer.h"
#include "metadata_walk.h"

struct refcount_report {
  uint64_t file_clusters;       /* clusters covering the file */
  uint64_t leaks;               /* stored refcount > references */
  uint64_t corruptions;         /* stored refcount < references, and
                                   references past the end of the file,
                                   refcount overflow, bad refblocks */
  uint64_t allocated_clusters;  /* active L2: normal, compressed and
                                   preallocated zero clusters */
  uint64_t compressed_clusters;
  uint64_t total_clusters;      /* virtual size in clusters */
  uint64_t image_end_offset;    /* end of the last cluster in use */
  uint64_t referenced_clusters; /* clusters with a reference */
  uint8_t *in_use;              /* bitmap: refcount > 0 or referenced */
  uint8_t *refcounted;          /* bitmap: stored refcount > 0 */
};

/* Run the check on qcow2 layer L (one thread; reads the whole metadata).
 * Every reference the metadata walk finds is also passed to OBSERVER
 * (if not NULL), so a caller needing the references too does not walk
 * the metadata again.  Returns 0, or -1 with q2_error set.
 */
int refcount_check (struct layer *l, struct refcount_report *r,
                    meta_cb observer, void *observer_opaque);
void refcount_report_free (struct refcount_report *r);

static inline int
refcount_bit (const uint8_t *bitmap, uint64_t cluster)
{
  return (bitmap[cluster / 8] >> (cluster % 8)) & 1;
}

static inline int
refcount_report_in_use (const struct refcount_report *r, uint64_t cluster)
{
  return cluster < r->file_clusters && refcount_bit (r->in_use, cluster);
}

/* Stored refcount > 0, for clusters inside the file. */
static inline int
refcount_report_refcounted (const struct refcount_report *r, uint64_t cluster)
{
  return cluster < r->file_clusters && refcount_bit (r->refcounted, cluster);
}

#endif
