/* SPDX-License-Identifier: BSD-3-Clause */
/* A bounded cache of L2 table slices, shared by every layer of a chain.
 *
 * Like qemu (l2-cache-entry-size, 4 KiB by default since qemu 4.0), the
 * unit is a slice of an L2 table, not the whole table: a lookup reads
 * only the L2_SLICE_BYTES of the table that hold the entries it needs,
 * with one pread, so neither the cache nor a miss ever holds a whole
 * table (2 MiB with 2 MiB clusters).  A layer whose cluster (hence L2
 * table) is smaller than a slice uses its whole table as one slice.
 *
 * Memory: at most max_bytes / L2_SLICE_BYTES slices of L2_SLICE_BYTES
 * each (at least WAYS of them), plus a few bytes of bookkeeping per
 * slice, whatever the cluster sizes of the chain.
 *
 * Set-associative: a slice's key (owner, host offset of the slice)
 * picks one set, and each set has its own mutex, so parallel requests
 * touching different slices never wait for each other and there is no
 * global lock.  The lock is held only to look up or insert and to copy
 * the entries the caller needs -- never across I/O.
 */
#ifndef Q2_L2_CACHE_H
#define Q2_L2_CACHE_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#define L2_SLICE_BYTES 4096

/* The default bound of the L2 cache (l2-cache-size= of the plugin and
 * the depth filter).
 */
#define L2_CACHE_DEFAULT_BYTES (32 * 1024 * 1024)

struct l2_cache;

/* A cache holding at most MAX_BYTES of slices (but room for at least
 * one set).  Returns NULL with q2_error set on failure.
 */
struct l2_cache *l2_cache_new (uint64_t max_bytes);
void l2_cache_free (struct l2_cache *c);

/* Copy N bytes from offset START of the cached slice (OWNER,
 * SLICE_OFFSET) into OUT.  SLICE_OFFSET is the host offset of the
 * slice in OWNER's image file.  Returns true on a hit.
 */
bool l2_cache_get (struct l2_cache *c, const void *owner, uint64_t slice_offset,
                   size_t start, size_t n, void *out);

/* Insert a slice just read (BYTES <= L2_SLICE_BYTES long; copied).
 * Evicts the least recently used slice of the set.
 */
void l2_cache_put (struct l2_cache *c, const void *owner, uint64_t slice_offset,
                   const void *slice, size_t bytes);

/* Statistics, for debug messages. */
void l2_cache_stats (struct l2_cache *c, uint64_t *hits, uint64_t *misses,
                     size_t *slots);

/* Bytes the cache may hold at most (the slices, without bookkeeping). */
uint64_t l2_cache_capacity (const struct l2_cache *c);

#endif
