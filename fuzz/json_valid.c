/* SPDX-License-Identifier: BSD-3-Clause */
/* A strict JSON validator (RFC 8259 grammar, UTF-8 per RFC 3629):
 * recursive descent with a depth limit, no allocation.
 */
#include <stdint.h>
#include <string.h>

#include "json_valid.h"

#define MAX_NESTING 64

struct cursor {
  const unsigned char *p, *end;
};

static bool value (struct cursor *c, int depth);

static void
skip_ws (struct cursor *c)
{
  while (c->p < c->end &&
         (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    c->p++;
}

static bool
accept (struct cursor *c, char ch)
{
  skip_ws (c);
  if (c->p < c->end && *c->p == (unsigned char) ch) {
    c->p++;
    return true;
  }
  return false;
}

static bool
literal (struct cursor *c, const char *word)
{
  size_t n = strlen (word);

  if ((size_t) (c->end - c->p) < n || memcmp (c->p, word, n) != 0)
    return false;
  c->p += n;
  return true;
}

/* One UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF). */
static bool
utf8_char (struct cursor *c)
{
  unsigned b = *c->p, n, i;
  uint32_t cp;

  if (b < 0x80) { c->p++; return true; }
  if (b >= 0xc2 && b <= 0xdf) { n = 1; cp = b & 0x1f; }
  else if (b >= 0xe0 && b <= 0xef) { n = 2; cp = b & 0x0f; }
  else if (b >= 0xf0 && b <= 0xf4) { n = 3; cp = b & 0x07; }
  else return false;
  if ((size_t) (c->end - c->p) <= n)
    return false;
  for (i = 1; i <= n; i++) {
    if ((c->p[i] & 0xc0) != 0x80)
      return false;
    cp = (cp << 6) | (c->p[i] & 0x3f);
  }
  if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
      (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
    return false;
  c->p += n + 1;
  return true;
}

static bool
string (struct cursor *c)
{
  static const char hex[] = "0123456789abcdefABCDEF";

  if (!accept (c, '"'))
    return false;
  while (c->p < c->end) {
    unsigned char ch = *c->p;

    if (ch == '"') {
      c->p++;
      return true;
    }
    if (ch < 0x20)
      return false;
    if (ch == '\\') {
      c->p++;
      if (c->p >= c->end)
        return false;
      if (*c->p == 'u') {
        int i;
        for (i = 1; i <= 4; i++)
          if (c->p + i >= c->end || !memchr (hex, c->p[i], sizeof hex - 1))
            return false;
        c->p += 5;
      }
      else if (memchr ("\"\\/bfnrt", *c->p, 8))
        c->p++;
      else
        return false;
    }
    else if (!utf8_char (c))
      return false;
  }
  return false;
}

static bool
digits (struct cursor *c)
{
  const unsigned char *start = c->p;

  while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
    c->p++;
  return c->p > start;
}

static bool
number (struct cursor *c)
{
  if (c->p < c->end && *c->p == '-')
    c->p++;
  if (c->p < c->end && *c->p == '0')
    c->p++;
  else if (!digits (c))
    return false;
  if (c->p < c->end && *c->p == '.') {
    c->p++;
    if (!digits (c))
      return false;
  }
  if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
    c->p++;
    if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
      c->p++;
    if (!digits (c))
      return false;
  }
  return true;
}

static bool
members (struct cursor *c, int depth, char close, bool keyed)
{
  if (accept (c, close))
    return true;
  do {
    if (keyed && (!string (c) || !accept (c, ':')))
      return false;
    if (!value (c, depth + 1))
      return false;
  } while (accept (c, ','));
  return accept (c, close);
}

static bool
value (struct cursor *c, int depth)
{
  if (depth > MAX_NESTING)
    return false;
  skip_ws (c);
  if (c->p >= c->end)
    return false;
  switch (*c->p) {
  case '{': c->p++; return members (c, depth, '}', true);
  case '[': c->p++; return members (c, depth, ']', false);
  case '"': return string (c);
  case 't': return literal (c, "true");
  case 'f': return literal (c, "false");
  case 'n': return literal (c, "null");
  default:  return number (c);
  }
}

bool
json_valid (const char *s, size_t len)
{
  struct cursor c = { (const unsigned char *) s,
                      (const unsigned char *) s + len };

  if (!value (&c, 0))
    return false;
  skip_ws (&c);
  return c.p == c.end;
}
