/* SPDX-License-Identifier: BSD-3-Clause */
/* Few, large requests to a slow source: the small reads the decoder
 * makes (header, L2 slices, refcount blocks, compressed clusters, data
 * runs shorter than a block) are served from aligned blocks of
 * SOURCE_BLOCK bytes, each fetched from the plugin below with one
 * request; a miss right after the previous block (a sequential read
 * along the host file) fetches several blocks in one request
 * (readahead, doubling up to SOURCE_MAX_READAHEAD blocks).  Reads of a
 * block or more go to the plugin directly, each contiguous host run in
 * one request.  At most MAX_BYTES of blocks are kept (least recently
 * used evicted): the documented memory bound, per connection.  A block
 * that cannot be fetched whole falls back to reading just the bytes
 * asked, so that a damaged region of the source fails only the reads
 * that touch it.  Readahead stops where blocks that another connection
 * of the same export fetched begin (fetch_history.h).
 *
 * With prefetch started, a worker thread fetches the next readahead
 * window while the reader uses the current one, so that the plugin's
 * latency (10-100 ms a request over a network) overlaps the decoding
 * instead of adding to it; the FETCH callback is then called from two
 * threads at once, and must serialize them if the source needs it.  A
 * stream shows itself before its second miss: contiguous reads in the
 * block of a lone miss make the worker fetch the next window then.
 *
 * The blocks live in one arena, and a window takes consecutive slots,
 * so one request fills them without a copy.  A block that another
 * connection's request is fetching is waited for and copied.
 */
#ifndef QCOW2MAP_SOURCE_CACHE_H
#define QCOW2MAP_SOURCE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SOURCE_BLOCK (1024 * 1024)
#define SOURCE_MAX_READAHEAD 8
#define SOURCE_CACHE_DEFAULT (32 * 1024 * 1024)

/* Reads COUNT bytes at OFFSET from the source (the fetch callback). */
typedef int (*source_fetch_fn) (void *opaque, void *buf, size_t count,
                                uint64_t offset);

struct source_cache;
struct fetch_history;

/* A cache of at most MAX_BYTES (rounded down to whole blocks; 0: none)
 * over a source of SIZE bytes.  HISTORY (may be NULL): what the other
 * connections reading the source fetched, consulted before reading
 * ahead and told of every fetch.  NULL on ENOMEM.
 */
struct source_cache *source_cache_new (uint64_t max_bytes, uint64_t size,
                                       struct fetch_history *history,
                                       source_fetch_fn fetch, void *opaque);
void source_cache_free (struct source_cache *c);

/* Read COUNT bytes at OFFSET (OFFSET + COUNT <= SIZE).  Returns 0, or
 * -1 as FETCH failed.
 */
int source_cache_pread (struct source_cache *c, void *buf, size_t count,
                        uint64_t offset);

/* Start the prefetch worker (nothing with a cache of less than 4
 * blocks).  Returns 0, or -1 (errno set).
 */
int source_cache_start_prefetch (struct source_cache *c);

/* Stop it, after the fetch it is making (if any): FETCH is not called
 * from it afterwards.  Idempotent; source_cache_free calls it.
 */
void source_cache_stop_prefetch (struct source_cache *c);

/* Whether the calling thread is a prefetch worker (for messages). */
bool source_cache_in_prefetch (void);

#endif
