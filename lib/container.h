/* SPDX-License-Identifier: BSD-3-Clause */
/* The container view of a qcow2 layer: the qcow2 file itself, with
 * the clusters nothing uses (refcount 0 and no reference from any
 * metadata) as holes, and a JSON report on the file: header facts,
 * allocation statistics, the refcount check and the metadata map.
 */
#ifndef Q2_CONTAINER_H
#define Q2_CONTAINER_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#include "allocation.h"
#include "layer.h"
#include "container_stats.h"
#include "refcount_check.h"


struct container {
  struct layer *l;
  struct refcount_report check;
  struct container_stats stats;
  char *json;
  size_t json_len;
  uint64_t json_charged;         /* to the JSON budget (json_budget.h) */
};

/* Analyse qcow2 layer L: walk its metadata, check refcounts, measure
 * the file.  One thread; may take a while on big images.  Returns NULL
 * with q2_error set.
 */
struct container *container_open (struct layer *l);
void container_close (struct container *c);

/* Bytes of the view: the file, with unused clusters read as zeros. */
int container_pread (struct container *c, void *buf, uint64_t count,
                     uint64_t offset);

/* The allocation status of the view at OFFSET: used clusters are
 * allocated (reading as zeros where the host file has a hole), unused
 * ones unallocated zeros.
 */
int container_block_status (struct container *c, uint64_t offset,
                            uint64_t count, uint64_t *length,
                            struct allocation *a);

#endif
