/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "json_pad.h"
#include "q2_error.h"

int
json_pad (char **doc, size_t *len)
{
  size_t n = *len, padded = (n + JSON_PAD_BLOCK - 1) / JSON_PAD_BLOCK
                            * JSON_PAD_BLOCK;
  char *p;

  if (n == 0 || (*doc)[n - 1] != '\n')
    return q2_error ("internal error: JSON document without a final newline");
  if (padded == n)
    return 0;
  p = realloc (*doc, padded);
  if (p == NULL)
    return q2_error ("realloc: %m");
  memset (p + n - 1, ' ', padded - n);
  p[padded - 1] = '\n';
  *doc = p;
  *len = padded;
  return 0;
}
