/* SPDX-License-Identifier: BSD-3-Clause */
/* A bounded cache of decompressed clusters, shared by every layer of a
 * chain and every connection.
 *
 * Why: a compressed cluster (qcow2 spec, "Compressed Clusters
 * Descriptor") can only be decompressed whole, so without a cache every
 * 4 KiB read of a 64 KiB cluster inflates the whole cluster again (16
 * times the work; 512 times with 2 MiB clusters).
 *
 * Key: (owner, host offset and size of the compressed data), so a
 * cluster shared by several guest offsets (internal snapshots) is
 * inflated once.
 *
 * Memory: at most max_bytes of slots (at least one slot); a slot holds
 * one decompressed cluster of the largest cluster size of the chain
 * (SLOT_BYTES).  The slots are one allocation whose pages enter the
 * resident set only when a slot is first used.
 *
 * Concurrency: set-associative like l2_cache.h; a key picks one set, each
 * set has its own mutex and condition variable, so there is no global
 * lock.  A miss claims a slot and marks it "filling", then inflates into
 * it without holding any lock; other readers of the same cluster wait on
 * the set's condition variable instead of inflating it again.  Hits copy
 * under the set lock (a memcpy, never I/O).
 *
 * Eviction, per set: 2Q (Johnson and Shasha, VLDB 1994).  A cluster seen
 * for the first time enters a FIFO probation queue ("A1in", which may
 * grow into free slots but is cut back to a quarter of the set when the
 * set is full); hits there do not promote it, so the 16 back-to-back 4
 * KiB reads of one 64 KiB cluster by a sequential reader do not make it
 * look popular.  When a probation cluster is evicted its key is
 * remembered in a small ghost list ("A1out"); if it is read again while
 * remembered it enters the protected LRU queue ("Am").  A single large
 * sequential scan (nbdcopy, a backup, readahead) therefore only ever
 * cycles through the probation quarter and cannot flush the clusters
 * that are read again and again (a VM's boot files, a file system's
 * metadata).  Plain LRU would be flushed by the scan, and segmented LRU
 * would promote every cluster of a 4 KiB sequential scan on its second
 * read.
 */
#ifndef Q2_CLUSTER_CACHE_H
#define Q2_CLUSTER_CACHE_H

#include <stdint.h>
#include <stddef.h>

struct cluster_cache;

/* A cache holding at most MAX_BYTES of decompressed clusters of up to
 * SLOT_BYTES each (but at least one slot).  MAX_BYTES 0: no cache
 * (returns NULL without error; cluster_cache_read then always calls
 * INFLATE into a private buffer).  Returns NULL with q2_error set on
 * failure.
 */
struct cluster_cache *cluster_cache_new (uint64_t max_bytes,
                                         size_t slot_bytes);
void cluster_cache_free (struct cluster_cache *c);

/* Fill OUT with CLUSTER_BYTES bytes of decompressed cluster.  Returns
 * 0, or -1 with q2_error set.
 */
typedef int (*cluster_inflate_fn) (void *opaque, void *out);

/* Copy N bytes at START of the decompressed cluster (OWNER, HOST_OFFSET,
 * COMPRESSED_SIZE), CLUSTER_BYTES long, into OUT, calling INFLATE on a
 * miss.  N may be 0 (OUT NULL) to prefetch the cluster into the cache.
 * A read of the whole cluster (START 0, N = CLUSTER_BYTES) that misses is
 * inflated straight into OUT and not cached (a whole-disk copy would
 * only flush the cache, and this saves a copy).
 * C may be NULL (no cache).  Returns 0, or -1 (INFLATE's error, never
 * cached: the next read tries again).
 */
int cluster_cache_read (struct cluster_cache *c, const void *owner,
                        uint64_t host_offset, uint64_t compressed_size,
                        size_t cluster_bytes, size_t start, size_t n,
                        void *out, cluster_inflate_fn inflate, void *opaque);

/* Statistics, for debug messages (approximate: counted without a lock).
 * WAITS: reads that found the cluster being inflated by another thread
 * and waited for it (counted as hits too).
 */
void cluster_cache_stats (struct cluster_cache *c, uint64_t *hits,
                          uint64_t *misses, uint64_t *waits, size_t *slots,
                          size_t *slot_bytes);

/* Bytes the slots may hold at most (without bookkeeping); 0 for NULL. */
uint64_t cluster_cache_capacity (const struct cluster_cache *c);

#endif
