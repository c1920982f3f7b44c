/* SPDX-License-Identifier: BSD-3-Clause */
/* Allocation statistics of a qcow2 file, for its container report. */
#ifndef Q2_CONTAINER_STATS_H
#define Q2_CONTAINER_STATS_H

#include <stdint.h>

#include "layer.h"
#include "refcount_check.h"

struct container_stats {
  uint64_t used_data, used_zero, used_discarded, used_overrun;
  uint64_t unused_data, unused_zero, unused_discarded;
};

/* Measure the file of qcow2 layer L into *S (zeroed by the caller):
 * whether a cluster is used comes from the refcount check CHECK; only
 * refcounts past the end of the file are read here.  Returns 0 or -1
 * with q2_error set.
 */
int container_stats_measure (struct layer *l,
                             const struct refcount_report *check,
                             struct container_stats *s);

#endif
