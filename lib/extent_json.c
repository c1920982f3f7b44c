/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "extent_json.h"
#include "json_budget.h"
#include "q2_error.h"

struct extent_json {
  FILE *fp;
  char *text;
  size_t len;
  extent_describe_fn describe;
  const char *path;
  struct json_charge charge;
  uint64_t run_offset, run_length;  /* the run being coalesced */
  uint32_t run_type;
  bool first;
};

struct extent_json *
extent_json_new (extent_describe_fn describe, const char *path)
{
  struct extent_json *w = calloc (1, sizeof *w);

  if (w == NULL) {
    q2_error ("calloc: %m");
    return NULL;
  }
  w->fp = open_memstream (&w->text, &w->len);
  if (w->fp == NULL) {
    q2_error ("open_memstream: %m");
    free (w);
    return NULL;
  }
  w->describe = describe;
  w->path = path;
  w->first = true;
  fputs ("[\n", w->fp);
  return w;
}

static void
print_run (struct extent_json *w)
{
  char desc[64];

  w->describe (w->run_type, desc, sizeof desc);
  fprintf (w->fp, "%s{ \"offset\": %" PRIu64 ", \"length\": %" PRIu64
           ", \"type\": %" PRIu32 ", \"description\": \"%s\"}",
           w->first ? "" : ",\n", w->run_offset, w->run_length,
           w->run_type, desc);
  w->first = false;
}

int
extent_json_add (struct extent_json *w, uint64_t length, uint32_t type)
{
  if (w->run_length > 0 && type != w->run_type) {
    print_run (w);
    w->run_offset += w->run_length;
    w->run_length = 0;
    if (json_budget_charge (&w->charge, w->fp, w->path) == -1)
      return -1;
  }
  w->run_type = type;
  w->run_length += length;
  return 0;
}

char *
extent_json_finish (struct extent_json *w, size_t *len)
{
  char *text;

  if (w->run_length > 0)
    print_run (w);
  fputs ("\n]\n", w->fp);
  if (json_budget_close (&w->charge, w->fp, &w->text, w->path, 0) == -1) {
    free (w);
    return NULL;
  }
  text = w->text;
  *len = w->len;
  free (w);
  return text;
}

void
extent_json_abort (struct extent_json *w)
{
  if (w == NULL)
    return;
  json_budget_close (&w->charge, w->fp, &w->text, w->path, -1);
  free (w);
}
