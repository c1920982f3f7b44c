/* SPDX-License-Identifier: BSD-3-Clause */
/* Prefetching a guest range for NBD_CMD_CACHE: everything a later read
 * of the range needs, so that nbdkit's readahead and scan filters (which
 * issue NBD_CMD_CACHE ahead of the reader) make reads faster.
 */
#ifndef Q2_CHAIN_PREFETCH_H
#define Q2_CHAIN_PREFETCH_H

#include <stdint.h>
#include <stddef.h>

#include "backing_chain.h"

/* Prefetch [OFFSET, OFFSET+COUNT) of the view [FIRST, LAST] (inside
 * layer FIRST's size): the L2 slices that map it enter the L2 cache,
 * the host ranges of its data are announced to the kernel
 * (posix_fadvise WILLNEED), and its compressed clusters are inflated
 * into the cluster cache.  Bounded work: at most CHAIN_PREFETCH_MAX_RUNS
 * runs, and compressed clusters for at most a quarter of the cluster
 * cache (the share of the cache that new clusters enter, see
 * cluster_cache.h: prefetching more would evict what was just
 * prefetched); the rest of the range is left alone.  Returns 0, or -1
 * with q2_error set (corrupt metadata or compressed data, as a read
 * would report).
 */
#define CHAIN_PREFETCH_MAX_RUNS 4096

int chain_prefetch (struct chain *c, size_t first, size_t last,
                    uint64_t offset, uint64_t count);

#endif
