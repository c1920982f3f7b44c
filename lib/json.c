/* SPDX-License-Identifier: BSD-3-Clause */
/* JSON strings, escaped as qemu's JSON writer escapes them. */
#include <config.h>

#include <stdint.h>

#include "json.h"

#define REPLACEMENT 0xfffd

/* Decode one character at *P (not at the terminating NUL) and advance
 * *P past it.  Returns the code point, or -1 for an invalid sequence.
 * The rules are qemu's (util/unicode.c): a lead byte announces 1 to 5
 * continuation bytes; a missing one ends the sequence there; overlong
 * forms (but \xC0\x80), surrogates, noncharacters and code points past
 * U+10FFFF are invalid.
 */
static int32_t
decode (const unsigned char **p)
{
  static const uint32_t min_cp[] = { 0x80, 0x800, 0x10000, 0x200000,
                                     0x4000000 };
  const unsigned char *s = *p;
  unsigned byte = *s++, len = 0, mask, i;
  uint32_t cp;

  if (byte < 0x80 || byte >= 0xfe || (byte & 0x40) == 0) {
    *p = s;
    return byte < 0x80 ? (int32_t) byte : -1;
  }
  for (mask = 0x80; byte & mask; mask >>= 1)
    len++;                      /* 2..6 bytes in all */
  cp = byte & (mask - 1);
  for (i = 1; i < len; i++, s++) {
    if ((*s & 0xc0) != 0x80) {  /* also stops at the NUL */
      *p = s;
      return -1;
    }
    cp = (cp << 6) | (*s & 0x3f);
  }
  *p = s;
  if (cp > 0x10ffff || (cp >= 0xfdd0 && cp <= 0xfdef) ||
      (cp & 0xfffe) == 0xfffe || (cp >= 0xd800 && cp <= 0xdfff) ||
      (cp < min_cp[len - 2] && !(cp == 0 && len == 2)))
    return -1;
  return cp;
}

bool
json_utf8_valid (const char *str)
{
  const unsigned char *p = (const unsigned char *) str;

  while (*p)
    if (decode (&p) <= 0)
      return false;
  return true;
}

void
json_string (FILE *fp, const char *str)
{
  const unsigned char *p = (const unsigned char *) str;

  if (str == NULL) {
    fputs ("null", fp);
    return;
  }
  fputc ('"', fp);
  while (*p) {
    int32_t cp = decode (&p);

    if (cp < 0)
      cp = REPLACEMENT;
    switch (cp) {
    case '"':  fputs ("\\\"", fp); break;
    case '\\': fputs ("\\\\", fp); break;
    case '\b': fputs ("\\b", fp); break;
    case '\f': fputs ("\\f", fp); break;
    case '\n': fputs ("\\n", fp); break;
    case '\r': fputs ("\\r", fp); break;
    case '\t': fputs ("\\t", fp); break;
    default:
      if (cp > 0xffff)
        fprintf (fp, "\\u%04X\\u%04X", 0xd800 + ((cp - 0x10000) >> 10),
                 0xdc00 + ((cp - 0x10000) & 0x3ff));
      else if (cp < 0x20 || cp >= 0x7f)
        fprintf (fp, "\\u%04X", (unsigned) cp);
      else
        fputc (cp, fp);
    }
  }
  fputc ('"', fp);
}
