/* SPDX-License-Identifier: BSD-3-Clause */
/* Sorting offsets, so that equal ones (several table entries pointing
 * at one structure) can be handled once, with their number.
 */
#ifndef Q2_SORT_U64_H
#define Q2_SORT_U64_H

#include <stdint.h>
#include <stdlib.h>

static inline int
sort_u64_compare (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

  return x < y ? -1 : x > y;
}

static inline void
sort_u64 (uint64_t *v, size_t n)
{
  qsort (v, n, sizeof *v, sort_u64_compare);
}

#endif
