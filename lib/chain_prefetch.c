/* SPDX-License-Identifier: BSD-3-Clause */
/* Prefetching for NBD_CMD_CACHE: see chain_prefetch.h. */
#include <config.h>

#include "chain_prefetch.h"
#include "cluster_cache.h"

int
chain_prefetch (struct chain *c, size_t first, size_t last,
                uint64_t offset, uint64_t count)
{
  uint64_t inflate_budget = cluster_cache_capacity (c->clusters) / 4;
  unsigned n;

  for (n = 0; count > 0 && n < CHAIN_PREFETCH_MAX_RUNS; n++) {
    struct origin o;

    /* Mapping reads the L2 slices through the L2 cache. */
    if (chain_origin (c, first, last, offset, count, &o) == -1)
      return -1;
    if (o.found && !o.past_end) {
      struct layer *l = c->layers[o.layer];
      uint64_t cs = l->header.cluster_size;
      bool inflate = o.run.kind == RUN_COMPRESSED && inflate_budget >= cs;

      if (layer_prefetch_run (l, &o.run, offset, inflate) == -1)
        return -1;
      if (inflate)
        inflate_budget -= cs;
    }
    offset += o.length;
    count -= o.length;
  }
  return 0;
}
