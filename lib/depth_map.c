/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "depth_map.h"
#include "extent_json.h"
#include "q2_error.h"
#include "q2_parse.h"

#define MAX_DEPTH 1000000

/* nbdinfo's words for qemu:allocation-depth. */
static void
describe_depth (uint32_t depth, char *buf, size_t n)
{
  if (depth == 0)
    snprintf (buf, n, "absent");
  else if (depth == 1)
    snprintf (buf, n, "local");
  else
    snprintf (buf, n, "backing depth %" PRIu32, depth);
}

char *
depth_map_json (struct chain *c, size_t *len)
{
  uint64_t size = c->layers[0]->size, offset = 0;
  struct extent_json *w = extent_json_new (describe_depth,
                                           c->layers[0]->file.path);

  if (w == NULL)
    return NULL;
  while (offset < size) {
    uint64_t length;
    unsigned depth;

    if (chain_depth (c, 0, c->n - 1, offset, size - offset,
                     &length, &depth) == -1 ||
        extent_json_add (w, length, depth) == -1) {
      extent_json_abort (w);
      return NULL;
    }
    offset += length;
  }
  return extent_json_finish (w, len);
}

int
depth_range_parse (const char *s, unsigned *lo, unsigned *hi)
{
  const char *p;

  if (q2_parse_uint (s, &p, MAX_DEPTH, lo) == -1)
    return -1;
  *hi = *lo;
  if (*p == '-' && q2_parse_uint (p + 1, &p, MAX_DEPTH, hi) == -1)
    return -1;
  if (*p != '\0' || *lo > *hi)
    return -1;
  return 0;
}
