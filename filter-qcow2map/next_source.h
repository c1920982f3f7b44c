/* SPDX-License-Identifier: BSD-3-Clause */
/* The second implementation of lib/'s host file interface (hostfile.h):
 * the qcow2 image as the plugin below the filter serves it, read
 * through the connection's next context.  Never written: the filter
 * opens next read-only and calls only pread, extents and cache.
 */
#ifndef QCOW2MAP_NEXT_SOURCE_H
#define QCOW2MAP_NEXT_SOURCE_H

#include <stdbool.h>

#include "hostfile.h"

/* Open NEXT (a prepared nbdkit_next, type-erased here so that lib/ and
 * this header need no nbdkit header) as host file F, called NAME in
 * messages.  DEBUG_IO: nbdkit_debug each request asked of the plugin.
 * Returns 0, or -1 with q2_error set.
 */
int next_source_open (struct hostfile *f, void *next, const char *name,
                      bool debug_io);

/* Requests and bytes asked of the plugin below so far. */
void next_source_stats (const struct hostfile *f, uint64_t *requests,
                        uint64_t *bytes);

#endif
