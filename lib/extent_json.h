/* SPDX-License-Identifier: BSD-3-Clause */
/* The JSON document "nbdinfo --json --map=CONTEXT" prints: one object
 * per extent (offset, length, type, description), neighbouring extents
 * of the same type coalesced as nbdinfo coalesces them.  The depth map
 * and the dirty bitmap maps are written with it.
 */
#ifndef Q2_EXTENT_JSON_H
#define Q2_EXTENT_JSON_H

#include <stdint.h>
#include <stddef.h>

/* Writes the description of TYPE (nbdinfo's words) into BUF. */
typedef void (*extent_describe_fn) (uint32_t type, char *buf, size_t n);

struct extent_json;

/* Start a document about the image PATH (for error messages; kept by
 * reference).  NULL with q2_error set on failure.  The document is
 * charged to the JSON budget (json_budget.h) as it grows.
 */
struct extent_json *extent_json_new (extent_describe_fn describe,
                                     const char *path);

/* Append the next extent (they must be given in order, from 0).
 * Returns 0, or -1 with q2_error set when the JSON budget is exceeded
 * (then call extent_json_abort).
 */
int extent_json_add (struct extent_json *w, uint64_t length, uint32_t type);

/* End the document: returns it (malloc'd, *LEN bytes) and frees W, or
 * NULL with q2_error set.  extent_json_abort frees W unfinished.
 */
char *extent_json_finish (struct extent_json *w, size_t *len);
void extent_json_abort (struct extent_json *w);

#endif
