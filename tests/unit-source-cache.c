/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for the filter's source cache and fetch history
 * (filter-qcow2map/source_cache.c, fetch_history.c): bytes come back as
 * the source has them; a sequential read fetches 1, 2, 4, then 8 blocks
 * per request; readahead stops before blocks another connection of the
 * same export fetched, so that two connections copying the two halves of
 * a source in turn fetch each block once, apart from the one block they
 * share; a client re-reading fetched blocks reads ahead again; histories
 * are per export and forgotten with their last holder; the history stays
 * bounded.
 */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "source_cache.h"
#include "fetch_history.h"

#include "unit.h"

#define BLOCKS 64
#define SIZE ((uint64_t) BLOCKS * SOURCE_BLOCK - 1000)  /* a short last block */

static unsigned char *source;

struct conn {
  unsigned requests;
  uint64_t bytes;
  unsigned fetched[BLOCKS];       /* times each block was fetched */
};

static int
fetch (void *opaque, void *buf, size_t count, uint64_t offset)
{
  struct conn *c = opaque;
  uint64_t b;

  c->requests++;
  c->bytes += count;
  for (b = offset / SOURCE_BLOCK; b * SOURCE_BLOCK < offset + count; b++)
    c->fetched[b]++;
  memcpy (buf, source + offset, count);
  return 0;
}

/* Read [FROM, TO) in 64 KiB reads, as the decoder reads a compressed
 * image's clusters; 0 if every byte matched.
 */
static int
read_span (struct source_cache *sc, uint64_t from, uint64_t to)
{
  static unsigned char buf[65536];
  uint64_t off;

  for (off = from; off < to; off += sizeof buf) {
    size_t n = to - off < sizeof buf ? to - off : sizeof buf;
    if (source_cache_pread (sc, buf, n, off) == -1 ||
        memcmp (buf, source + off, n) != 0)
      return -1;
  }
  return 0;
}

static void
test_sequential (void)
{
  struct conn c = { 0 };
  struct source_cache *sc = source_cache_new (32 * SOURCE_BLOCK, SIZE, NULL,
                                              fetch, &c);

  CHECK (read_span (sc, 0, SIZE) == 0, "a whole read returns the source's bytes");
  /* 1 + 2 + 4 + 8 * 7 = 63 blocks, then the last one. */
  CHECK (c.requests == 11 && c.bytes == SIZE,
         "a sequential read: %u requests (11), %" PRIu64 " bytes (the size)",
         c.requests, c.bytes);
  source_cache_free (sc);
}

/* Two connections copy one half each, at the same time (nbdcopy's
 * pieces), then a third piece is started late.  The halves meet in the
 * middle of block 32.
 */
static void
test_two_connections (void)
{
  struct conn a = { 0 }, b = { 0 }, c = { 0 };
  struct source_cache *cc;
  struct fetch_history *h = fetch_history_get ("export ''");
  struct fetch_history *h2 = fetch_history_get ("export ''");
  struct source_cache *ca = source_cache_new (32 * SOURCE_BLOCK, SIZE, h,
                                              fetch, &a);
  struct source_cache *cb = source_cache_new (32 * SOURCE_BLOCK, SIZE, h2,
                                              fetch, &b);
  uint64_t mid = 32 * SOURCE_BLOCK + 4096, step = 4 * SOURCE_BLOCK;
  uint64_t p;
  unsigned i, twice = 0, never = 0;
  int ok = 0;

  CHECK (h == h2, "one history per export");
  /* B starts its half first; then both advance in turns. */
  ok |= read_span (cb, mid, mid + SOURCE_BLOCK);
  for (p = 0; p < mid; p += step) {
    ok |= read_span (ca, p, p + step < mid ? p + step : mid);
    if (mid + SOURCE_BLOCK + p < SIZE)
      ok |= read_span (cb, mid + SOURCE_BLOCK + p,
                       mid + SOURCE_BLOCK + p + step < SIZE
                       ? mid + SOURCE_BLOCK + p + step : SIZE);
  }
  CHECK (ok == 0, "both connections read the source's bytes");
  for (i = 0; i < BLOCKS; i++) {
    unsigned n = a.fetched[i] + b.fetched[i];
    twice += n > 1;
    never += n == 0;
  }
  CHECK (never == 0 && twice == 1 && a.fetched[32] == 1 && b.fetched[32] == 1,
         "each block fetched once, but block 32 that both need "
         "(%u twice, %u never)", twice, never);
  CHECK (a.bytes + b.bytes <= SIZE + SOURCE_BLOCK,
         "bytes fetched: %" PRIu64 " (size + 1 block at most)",
         a.bytes + b.bytes);

  /* A third connection reads A's half again: a re-read reads ahead
   * again (1, 2, 4, 8 blocks).
   */
  cc = source_cache_new (32 * SOURCE_BLOCK, SIZE, h, fetch, &c);
  ok = read_span (cc, 0, 16 * SOURCE_BLOCK);
  CHECK (ok == 0 && c.requests <= 5,
         "a re-read of 16 fetched blocks: %u requests (5 at most)",
         c.requests);

  source_cache_free (cc);
  source_cache_free (ca);
  source_cache_free (cb);
  fetch_history_put (h);
  fetch_history_put (h2);
}

static void
test_separate_exports (void)
{
  struct fetch_history *h1 = fetch_history_get ("export 'a'");
  struct fetch_history *h2 = fetch_history_get ("export 'b'");
  bool seen;

  fetch_history_add (h1, 10, 5);
  CHECK (h1 != h2, "another export, another history");
  CHECK (fetch_history_limit (h2, 8, 8, &seen) == 8 && !seen,
         "another export's fetches do not limit readahead");
  CHECK (fetch_history_limit (h1, 8, 8, &seen) == 2 && !seen,
         "readahead stops before fetched blocks");
  CHECK (fetch_history_limit (h1, 12, 8, &seen) == 8 && seen,
         "a fetched block is reported as such");
  fetch_history_put (h1);
  h1 = fetch_history_get ("export 'a'");
  CHECK (fetch_history_limit (h1, 8, 8, &seen) == 8 && !seen,
         "the last holder's put forgets the history");
  fetch_history_put (h1);
  fetch_history_put (h2);
}

/* Many separate fetches: the oldest ranges are forgotten, the newest
 * kept; touching ranges merge into one.
 */
static void
test_bounded (void)
{
  struct fetch_history *h = fetch_history_get ("export 'many'");
  unsigned i, remembered = 0;
  bool seen;

  for (i = 0; i < 10 * FETCH_HISTORY_RANGES; i++)
    fetch_history_add (h, 2 * (uint64_t) i, 1);
  for (i = 0; i < 10 * FETCH_HISTORY_RANGES; i++) {
    fetch_history_limit (h, 2 * (uint64_t) i, 1, &seen);
    remembered += seen;
  }
  fetch_history_limit (h, 2 * (10 * FETCH_HISTORY_RANGES - 1), 1, &seen);
  CHECK (remembered == FETCH_HISTORY_RANGES && seen,
         "%u ranges remembered (%u), the newest among them", remembered,
         FETCH_HISTORY_RANGES);
  for (i = 0; i < 2 * 10 * FETCH_HISTORY_RANGES; i++)
    fetch_history_add (h, i, 1);
  remembered = 0;
  for (i = 0; i < 2 * 10 * FETCH_HISTORY_RANGES; i++) {
    fetch_history_limit (h, i, 1, &seen);
    remembered += seen;
  }
  CHECK (remembered == 2 * 10 * FETCH_HISTORY_RANGES,
         "touching ranges merge: all %u blocks remembered", remembered);
  fetch_history_put (h);
}

int
main (void)
{
  uint64_t i;

  source = malloc (SIZE);
  if (source == NULL)
    return 1;
  for (i = 0; i < SIZE; i++)
    source[i] = (i * 2654435761u) >> 13;
  test_sequential ();
  test_two_connections ();
  test_separate_exports ();
  test_bounded ();
  free (source);
  return failures != 0;
}
