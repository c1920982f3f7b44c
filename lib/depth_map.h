/* SPDX-License-Identifier: BSD-3-Clause */
/* Allocation depth: which layer of the backing chain provides each
 * guest extent, in qemu's qemu:allocation-depth numbering (0 = no
 * layer, 1 = the top, 2 = its backing file, ...), and the textual
 * forms the depth filter publishes.
 */
#ifndef Q2_DEPTH_MAP_H
#define Q2_DEPTH_MAP_H

#include <stddef.h>

#include "backing_chain.h"

/* The whole depth map of the chain's guest disk as the JSON document
 * "nbdinfo --json --map=qemu:allocation-depth" prints for qemu-nbd
 * (adjacent equal extents merged).  Returns a malloc'd string and its
 * length in *LEN, or NULL with q2_error set.
 */
char *depth_map_json (struct chain *c, size_t *len);

/* Parse a depth range: "N" or "N-M" (decimal, N <= M).  Returns 0, or
 * -1 if malformed.
 */
int depth_range_parse (const char *s, unsigned *lo, unsigned *hi);

#endif
