/* SPDX-License-Identifier: BSD-3-Clause */
/* The memory budget of the JSON exports: see json_budget.h. */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>

#include "json_budget.h"
#include "q2_error.h"

static uint64_t budget = JSON_BUDGET_DEFAULT;
static uint64_t charged;       /* all documents; atomic */

void
json_budget_set (uint64_t bytes)
{
  budget = bytes;
}

int
json_budget_charge (struct json_charge *ch, FILE *fp, const char *path)
{
  long pos = ftell (fp);
  uint64_t total;

  if (pos < 0)
    return q2_error ("%s: JSON document: ftell: %m", path);
  if ((uint64_t) pos <= ch->bytes)
    return 0;
  total = __atomic_add_fetch (&charged, (uint64_t) pos - ch->bytes,
                              __ATOMIC_RELAXED);
  ch->bytes = pos;
  if (total > budget)
    return q2_error ("%s: the JSON exports would need more than "
                     "json-max-size=%" PRIu64 " bytes of memory (the image "
                     "is that fragmented); raise json-max-size to serve "
                     "this one", path, budget);
  return 0;
}

void
json_budget_uncharge (uint64_t bytes)
{
  __atomic_sub_fetch (&charged, bytes, __ATOMIC_RELAXED);
}

void
json_budget_release (struct json_charge *ch)
{
  json_budget_uncharge (ch->bytes);
  ch->bytes = 0;
}

int
json_budget_close (struct json_charge *ch, FILE *fp, char **text,
                   const char *path, int r)
{
  if (r == 0)
    r = json_budget_charge (ch, fp, path);
  if (fclose (fp) == EOF && r == 0)
    r = q2_error ("open_memstream: %m");
  if (r == -1) {
    json_budget_release (ch);
    free (*text);
    *text = NULL;
  }
  return r;
}
