/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "q2_parse.h"

int
q2_parse_uint (const char *s, const char **end, unsigned max, unsigned *v)
{
  unsigned long n;
  char *e;

  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  n = strtoul (s, &e, 10);
  if (errno || n > max)
    return -1;
  *v = n;
  *end = e;
  return 0;
}
