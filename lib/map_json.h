/* SPDX-License-Identifier: BSD-3-Clause */
/* The guest map of a view of the chain in the JSON form of
 * "qemu-img map --output=json": for every extent, the layer that
 * provides it (depth), whether it is allocated somewhere (present),
 * reads as zero, holds data, and where in the host file it lives
 * (offset, when qemu knows one).
 */
#ifndef Q2_MAP_JSON_H
#define Q2_MAP_JSON_H

#include <stddef.h>

#include "backing_chain.h"

/* Build the map of the view [FIRST, LAST] of C (LAST+1.. cut off as by
 * qemu's "backing": null) into *JSON (malloc'd, *LEN bytes, no NUL
 * counted).  Returns 0, or -1 with q2_error set.
 */
int map_json_build (struct chain *c, size_t first, size_t last,
                    char **json, size_t *len);

#endif
