#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "depth_map.h"
#include "q2_error.h"
#include "q2_parse.h"

#define MAX_DEPTH 1000000

static void
print_extent (FILE *fp, uint64_t offset, uint64_t length, unsigned depth,
              int first)
{
  fprintf (fp, "%s{ \"offset\": %" PRIu64 ", \"length\": %" PRIu64
           ", \"type\": %u, \"description\": ",
           first ? "" : ",\n", offset, length, depth);
  if (depth == 0)
    fprintf (fp, "\"absent\"}");
  else if (depth == 1)
    fprintf (fp, "\"local\"}");
  else
    fprintf (fp, "\"backing depth %u\"}", depth);
}

char *
depth_map_json (struct chain *c, size_t *len)
{
  uint64_t size = c->layers[0]->size, offset = 0, run_start = 0;
  unsigned run_depth = 0;
  int first = 1;
  char *s = NULL;
  FILE *fp = open_memstream (&s, len);

  if (fp == NULL) {
    q2_error ("open_memstream: %m");
    return NULL;
  }
  fprintf (fp, "[\n");
  while (offset < size) {
    uint64_t length;
    unsigned depth;

    if (chain_depth (c, 0, c->n - 1, offset, size - offset,
                     &length, &depth) == -1) {
      fclose (fp);
      free (s);
      return NULL;
    }
    if (offset > run_start && depth != run_depth) {
      print_extent (fp, run_start, offset - run_start, run_depth, first);
      first = 0;
      run_start = offset;
    }
    run_depth = depth;
    offset += length;
  }
  if (offset > run_start)
    print_extent (fp, run_start, offset - run_start, run_depth, first);
  fprintf (fp, "\n]\n");
  if (fclose (fp) == EOF) {
    free (s);
    q2_error ("open_memstream: %m");
    return NULL;
  }
  return s;
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
