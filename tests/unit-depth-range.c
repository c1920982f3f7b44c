/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for depth range parsing (lib/depth_map.c): the names of
 * the depth filter's views and its depth= parameter.
 */
#include <config.h>

#include <stdio.h>

#include "depth_map.h"

static int failures;

static void
ok (const char *s, unsigned lo, unsigned hi)
{
  unsigned a, b;

  if (depth_range_parse (s, &a, &b) != 0 || a != lo || b != hi) {
    printf ("FAIL '%s' should parse as %u-%u\n", s, lo, hi);
    failures++;
  }
  else
    printf ("ok   '%s' = %u-%u\n", s, a, b);
}

static void
bad (const char *s)
{
  unsigned a, b;

  if (depth_range_parse (s, &a, &b) == 0) {
    printf ("FAIL '%s' should be refused (got %u-%u)\n", s, a, b);
    failures++;
  }
  else
    printf ("ok   '%s' refused\n", s);
}

int
main (void)
{
  ok ("0", 0, 0);
  ok ("1", 1, 1);
  ok ("12", 12, 12);
  ok ("1-3", 1, 3);
  ok ("0-5", 0, 5);
  ok ("2-2", 2, 2);
  bad ("");
  bad ("-");
  bad ("-1");
  bad ("1-");
  bad ("3-1");
  bad ("x");
  bad ("1x");
  bad ("1-2-3");
  bad (" 1");
  bad ("+1");
  bad ("99999999999999999999");
  bad ("1-99999999999999999999");
  printf ("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
