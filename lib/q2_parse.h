/* SPDX-License-Identifier: BSD-3-Clause */
/* Strict parsing of the numbers in export names and parameters. */
#ifndef Q2_PARSE_H
#define Q2_PARSE_H

/* Parse the decimal number at S (digits only: no sign, no space) into
 * *V, at most MAX; *END points after it.  Returns 0, or -1 if S does
 * not start with a digit or the number is larger than MAX.
 */
int q2_parse_uint (const char *s, const char **end, unsigned max,
                   unsigned *v);

#endif
