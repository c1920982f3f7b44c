/* SPDX-License-Identifier: BSD-3-Clause */
/* The C unit tests' one assertion: print "ok" or "FAIL" and the
 * description, count the failures (main returns failures != 0).
 */
#ifndef Q2_UNIT_H
#define Q2_UNIT_H

#include <stdio.h>

static int failures;

#define CHECK(cond, ...) do {                                   \
    if (cond) { printf ("ok   "); printf (__VA_ARGS__); }       \
    else { printf ("FAIL "); printf (__VA_ARGS__); failures++; }\
    printf ("\n");                                              \
  } while (0)

#endif
