/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "json_budget.h"
#include "container_json.h"
#include "q2_error.h"

/* ---- in-use runs ---- */

/* Length of the run of clusters with the same in-use state as the one
 * at OFFSET, from OFFSET, clipped to MAX.
 */
static uint64_t
in_use_run (const struct container *c, uint64_t offset, uint64_t max,
            bool *in_use)
{
  unsigned bits = c->l->header.cluster_bits;
  uint64_t k = offset >> bits, end = offset + max;
  uint64_t next;

  *in_use = refcount_report_in_use (&c->check, k);
  for (next = (k + 1) << bits; next < end; next += UINT64_C (1) << bits)
    if (refcount_report_in_use (&c->check, next >> bits) != *in_use)
      break;
  return (next < end ? next : end) - offset;
}

int
container_pread (struct container *c, void *buf, uint64_t count,
                 uint64_t offset)
{
  uint8_t *p = buf;

  while (count > 0) {
    bool in_use;
    uint64_t n = in_use_run (c, offset, count, &in_use);

    if (!in_use)
      memset (p, 0, n);
    else if (hostfile_pread (&c->l->file, p, n, offset) == -1)
      return q2_error ("%s: container offset %" PRIu64 ": %s",
                       c->l->file.path, offset, q2_last_error ());
    p += n;
    offset += n;
    count -= n;
  }
  return 0;
}

int
container_block_status (struct container *c, uint64_t offset,
                        uint64_t count, uint64_t *length,
                        struct allocation *a)
{
  bool in_use, is_data;

  *length = in_use_run (c, offset, count, &in_use);
  if (!in_use) {
    *a = ALLOCATION_HOLE;
    return 0;
  }
  if (hostfile_allocation (&c->l->file, offset, *length, &is_data,
                           length) == -1)
    return -1;
  *a = (struct allocation) { .allocated = true, .reads_zero = !is_data };
  return 0;
}

struct container *
container_open (struct layer *l)
{
  struct container *c = calloc (1, sizeof *c);
  CLEANUP_META_LIST struct meta_list m = { 0 };

  if (c == NULL) {
    q2_error ("calloc: %m");
    return NULL;
  }
  c->l = l;
  if (l->format != LAYER_QCOW2) {
    q2_error ("%s: a raw layer has no container view", l->file.path);
    container_close (c);
    return NULL;
  }
  /* One metadata walk: the check counts the references and hands them
   * on to meta_list_collect () for the metadata map.
   */
  if (refcount_check (l, &c->check, meta_list_collect, &m) == -1 ||
      container_stats_measure (l, &c->check, &c->stats) == -1 ||
      container_json_build (c, &m) == -1) {
    container_close (c);
    return NULL;
  }
  return c;
}

void
container_close (struct container *c)
{
  if (c == NULL)
    return;
  refcount_report_free (&c->check);
  json_budget_uncharge (c->json_charged);
  free (c->json);
  free (c);
}
