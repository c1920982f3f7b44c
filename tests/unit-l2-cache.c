/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for the L2 slice cache (lib/l2_cache.c): the capacity is
 * l2-cache-size in 4 KiB slices whatever the tables' size, entries come
 * back as put, keys are (owner, slice offset), a full set evicts its
 * least recently used slice.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "l2_cache.h"

#include "unit.h"

static void
fill (unsigned char *s, unsigned seed)
{
  size_t i;

  for (i = 0; i < L2_SLICE_BYTES; i++)
    s[i] = (unsigned char) (seed * 31 + i);
}

static void
test_capacity (void)
{
  struct l2_cache *c;
  uint64_t hits, misses;
  size_t slots;

  c = l2_cache_new (1024 * 1024);
  l2_cache_stats (c, &hits, &misses, &slots);
  CHECK (slots == 256 && l2_cache_capacity (c) == 1024 * 1024,
         "1M holds 256 slices of 4 KiB (%zu)", slots);
  l2_cache_free (c);
  c = l2_cache_new (0);
  CHECK (l2_cache_capacity (c) == 8 * L2_SLICE_BYTES,
         "a tiny cache still has one set of 8 slices");
  l2_cache_free (c);
}

static void
test_get_put (void)
{
  struct l2_cache *c = l2_cache_new (1024 * 1024);
  unsigned char s[L2_SLICE_BYTES], out[64];
  int a, b;

  fill (s, 1);
  CHECK (!l2_cache_get (c, &a, 0x10000, 0, 8, out), "empty cache misses");
  l2_cache_put (c, &a, 0x10000, s, sizeof s);
  CHECK (l2_cache_get (c, &a, 0x10000, 4000, 64, out) &&
         memcmp (out, s + 4000, 64) == 0, "hit returns the entries put");
  CHECK (!l2_cache_get (c, &b, 0x10000, 0, 8, out),
         "same offset, other owner: miss");
  CHECK (!l2_cache_get (c, &a, 0x11000, 0, 8, out),
         "same owner, next slice: miss");
  l2_cache_put (c, &b, 0x20000, s, 512);
  CHECK (l2_cache_get (c, &b, 0x20000, 504, 8, out) &&
         !l2_cache_get (c, &b, 0x20000, 508, 8, out),
         "a 512-byte slice (table of a 512-byte cluster) serves 512 bytes only");
  l2_cache_free (c);
}

static void
test_eviction (void)
{
  struct l2_cache *c = l2_cache_new (0);   /* one set: 8 slices */
  unsigned char s[L2_SLICE_BYTES], out[8];
  int owner;
  unsigned i;

  for (i = 0; i < 8; i++) {
    fill (s, i);
    l2_cache_put (c, &owner, i * L2_SLICE_BYTES, s, sizeof s);
  }
  CHECK (l2_cache_get (c, &owner, 0, 0, 8, out), "slice 0 cached");
  fill (s, 8);
  l2_cache_put (c, &owner, 8 * L2_SLICE_BYTES, s, sizeof s);
  CHECK (l2_cache_get (c, &owner, 0, 0, 8, out) &&
         !l2_cache_get (c, &owner, 1 * L2_SLICE_BYTES, 0, 8, out) &&
         l2_cache_get (c, &owner, 8 * L2_SLICE_BYTES, 0, 8, out),
         "a ninth slice evicts the least recently used (1, not 0)");
  fill (s, 8);
  CHECK (l2_cache_get (c, &owner, 8 * L2_SLICE_BYTES, 0, 8, out) &&
         memcmp (out, s, 8) == 0, "the new slice holds its bytes");
  l2_cache_free (c);
}

int
main (void)
{
  test_capacity ();
  test_get_put ();
  test_eviction ();
  printf ("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
