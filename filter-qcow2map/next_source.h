/* SPDX-License-Identifier: BSD-3-Clause */
/* The second implementation of lib/'s host file interface (hostfile.h):
 * the qcow2 image as the plugin below the filter serves it, read
 * through the connection's next context.  Never written: the filter
 * opens next read-only and calls only pread, extents and cache.
 */
#ifndef QCOW2MAP_NEXT_SOURCE_H
#define QCOW2MAP_NEXT_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "hostfile.h"

/* Open NEXT (a prepared nbdkit_next, type-erased here so that lib/ and
 * this header need no nbdkit header) as host file F, called NAME in
 * messages, its small reads served through a source cache of
 * CACHE_BYTES (source_cache.h; less than one block: none).  DEBUG_IO:
 * nbdkit_debug each request asked of the plugin.  Returns 0, -1 with
 * q2_error set, or NEXT_SOURCE_FAILED if the plugin below failed to
 * give the size: it has said why (nbdkit >= 1.36's curl plugin asks
 * the server then, and names the URL and the HTTP status), and a
 * second line would only hide that one.
 */
#define NEXT_SOURCE_FAILED (-2)
int next_source_open (struct hostfile *f, void *next, const char *name,
                      uint64_t cache_bytes, bool debug_io);

/* Fetch the next window of sequential reads in a thread of its own
 * (source_cache.h).  THREAD_MODEL: the stack's final one (.get_ready);
 * below parallel, the worker's requests take turns with the
 * connection's, and below serialize_requests with every connection's.
 * Stop before the connection's next context goes (.finalize).  Both return 0 or -1
 * with q2_error set; with no source cache they do nothing.
 */
int next_source_start_prefetch (const struct hostfile *f, int thread_model);
void next_source_stop_prefetch (const struct hostfile *f);

/* Requests and bytes asked of the plugin below so far. */
void next_source_stats (const struct hostfile *f, uint64_t *requests,
                        uint64_t *bytes);

#endif
