/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for the filter's source cache and fetch history
 * (filter-qcow2map/source_cache.c, fetch_history.c): bytes come back as
 * the source has them; a sequential read fetches 1, 2, 4, then 8 blocks
 * per request; readahead stops before blocks another connection of the
 * same export fetched, and a block another connection holds is copied
 * from its cache, so that two connections copying the two halves of a
 * source in turn fetch each block once; a client re-reading fetched blocks reads ahead again; histories
 * are per export and forgotten with their last holder; the history stays
 * bounded; the prefetch worker fetches the windows of a sequential read,
 * each block once, and a window it cannot fetch fails only the reads of
 * the bad block; a stream shows itself in the block of its first miss
 * (the worker fetches the next window) where single reads (metadata)
 * start nothing; a block another connection is fetching is waited for,
 * not fetched again; a miss on a fetched block far from the last such
 * miss is not a re-read.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
  /* For the prefetch tests: */
  unsigned from_worker;           /* requests made by the prefetch worker */
  uint64_t bad_block;             /* requests touching it fail (0: none) */
  unsigned delay_us;              /* each request takes this long */
  pthread_mutex_t lock;
};

static pthread_t main_thread;

static int
fetch (void *opaque, void *buf, size_t count, uint64_t offset)
{
  struct conn *c = opaque;
  uint64_t b;
  int r = 0;

  if (c->delay_us)
    usleep (c->delay_us);
  pthread_mutex_lock (&c->lock);
  c->requests++;
  c->bytes += count;
  c->from_worker += !pthread_equal (pthread_self (), main_thread);
  for (b = offset / SOURCE_BLOCK; b * SOURCE_BLOCK < offset + count; b++) {
    c->fetched[b]++;
    if (c->bad_block && b == c->bad_block)
      r = -1;
  }
  pthread_mutex_unlock (&c->lock);
  if (r == -1) {
    errno = EIO;
    return -1;
  }
  memcpy (buf, source + offset, count);
  return 0;
}

/* A cache of 32 blocks over the source, fetching through connection C,
 * sharing history H (NULL: none).
 */
static struct source_cache *
new_cache (struct conn *c, struct fetch_history *h)
{
  return source_cache_new (32 * SOURCE_BLOCK, SIZE, h, fetch, c);
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
  struct conn c = { .lock = PTHREAD_MUTEX_INITIALIZER };
  struct source_cache *sc = new_cache (&c, NULL);

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
  struct conn a = { .lock = PTHREAD_MUTEX_INITIALIZER };
  struct conn b = { .lock = PTHREAD_MUTEX_INITIALIZER };
  struct conn c = { .lock = PTHREAD_MUTEX_INITIALIZER };
  struct source_cache *cc;
  struct fetch_history *h = fetch_history_get ("export ''", SIZE);
  struct fetch_history *h2 = fetch_history_get ("export ''", SIZE);
  struct source_cache *ca = new_cache (&a, h);
  struct source_cache *cb = new_cache (&b, h2);
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
  CHECK (never == 0 && twice == 0 && a.fetched[32] == 0,
         "each block fetched once; A copies block 32, which both need, "
         "from B's cache (%u twice, %u never)", twice, never);
  CHECK (a.bytes + b.bytes == SIZE,
         "bytes fetched: %" PRIu64 " (the size)", a.bytes + b.bytes);

  /* A third connection reads A's half again: a re-read reads ahead
   * again (1, 2, 4, 8 blocks).
   */
  cc = new_cache (&c, h);
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
  struct fetch_history *h1 = fetch_history_get ("export 'a'", SIZE);
  struct fetch_history *h2 = fetch_history_get ("export 'b'", SIZE);
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
  h1 = fetch_history_get ("export 'a'", SIZE);
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
  struct fetch_history *h = fetch_history_get ("export 'many'", SIZE);
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

/* With the worker, a sequential read gets the windows after the first
 * from it, each block once, and the same bytes.
 */
static void
test_prefetch (void)
{
  struct conn c = { .lock = PTHREAD_MUTEX_INITIALIZER, .delay_us = 2000 };
  struct source_cache *sc = new_cache (&c, NULL);
  unsigned i, twice = 0;

  CHECK (source_cache_start_prefetch (sc) == 0, "the worker starts");
  CHECK (read_span (sc, 0, SIZE) == 0,
         "a whole read with prefetch returns the source's bytes");
  for (i = 0; i < BLOCKS; i++)
    twice += c.fetched[i] > 1;
  CHECK (c.from_worker > 0 && c.from_worker < c.requests && twice == 0 &&
         c.bytes == SIZE,
         "%u of %u requests made by the worker, no block twice",
         c.from_worker, c.requests);
  source_cache_stop_prefetch (sc);
  source_cache_stop_prefetch (sc);          /* idempotent */
  i = c.from_worker;
  c.requests = 0;
  CHECK (read_span (sc, 0, 16 * SOURCE_BLOCK) == 0 && c.requests > 0 &&
         c.from_worker == i,
         "after stop, a read again of evicted blocks: %u requests, none "
         "by the worker", c.requests);
  source_cache_free (sc);
}

/* A window the worker cannot fetch fails no read by itself: the reads
 * of its good blocks succeed, and only a read of the bad block fails.
 */
static void
test_prefetch_failure (void)
{
  struct conn c = { .lock = PTHREAD_MUTEX_INITIALIZER, .bad_block = 20 };
  struct source_cache *sc = new_cache (&c, NULL);
  unsigned char buf[4096];

  source_cache_start_prefetch (sc);
  CHECK (read_span (sc, 0, 20 * SOURCE_BLOCK) == 0,
         "the blocks before the bad one read");
  CHECK (source_cache_pread (sc, buf, sizeof buf,
                             20 * SOURCE_BLOCK + 8192) == -1,
         "a read in the bad block fails");
  CHECK (read_span (sc, 21 * SOURCE_BLOCK, SIZE) == 0,
         "the blocks after it read");
  CHECK (c.from_worker > 0, "the worker took part (%u requests)",
         c.from_worker);
  source_cache_free (sc);
}

/* A stream far from the last read: the reader fetches its first block
 * alone, and contiguous reads there make the worker fetch the next
 * window (each piece of a copy started with two requests the reader
 * waited for).  Single small reads, as of metadata, start nothing.
 */
static void
test_stream_start (void)
{
  struct conn c = { .lock = PTHREAD_MUTEX_INITIALIZER, .delay_us = 2000 };
  struct source_cache *sc = new_cache (&c, NULL);
  unsigned char buf[4096];
  unsigned i, reader;

  source_cache_start_prefetch (sc);
  for (i = 1; i <= 3; i++)
    source_cache_pread (sc, buf, sizeof buf, 10 * i * SOURCE_BLOCK + 512);
  usleep (20000);
  CHECK (c.requests == 3 && c.from_worker == 0,
         "3 single reads in 3 far blocks: %u requests (3), %u by the "
         "worker (0)", c.requests, c.from_worker);
  CHECK (read_span (sc, 40 * SOURCE_BLOCK, 43 * SOURCE_BLOCK) == 0,
         "a stream's bytes");
  reader = c.requests - c.from_worker - 3;
  CHECK (reader == 1 && c.fetched[41] == 1 && c.fetched[42] == 1,
         "a stream of 3 blocks: the reader fetched %u block(s) (1), the "
         "worker the next window", reader);
  source_cache_free (sc);
}

struct slow_read {
  struct source_cache *sc;
  uint64_t offset;
  int r;
};

static void *
slow_read (void *arg)
{
  struct slow_read *a = arg;
  unsigned char buf[4096];

  a->r = source_cache_pread (a->sc, buf, sizeof buf, a->offset);
  return NULL;
}

/* B needs a block while A's request for it is in flight: B waits for
 * A's request and copies the block, and never fetches it.
 */
static void
test_wait_for_peer (void)
{
  struct conn a = { .lock = PTHREAD_MUTEX_INITIALIZER, .delay_us = 100000 };
  struct conn b = { .lock = PTHREAD_MUTEX_INITIALIZER };
  struct fetch_history *h = fetch_history_get ("export 'wait'", SIZE);
  struct source_cache *ca = new_cache (&a, h);
  struct source_cache *cb = new_cache (&b, h);
  struct slow_read r = { ca, 40 * SOURCE_BLOCK + 4096, -1 };
  unsigned char buf[4096];
  pthread_t t;

  pthread_create (&t, NULL, slow_read, &r);
  usleep (30000);                   /* A's request is on its way */
  CHECK (source_cache_pread (cb, buf, sizeof buf, 40 * SOURCE_BLOCK) == 0 &&
         memcmp (buf, source + 40 * SOURCE_BLOCK, sizeof buf) == 0,
         "B reads the block A is fetching");
  pthread_join (t, NULL);
  CHECK (r.r == 0 && a.fetched[40] == 1 && b.requests == 0,
         "fetched once, by A (%u); B made %u requests (0)", a.fetched[40],
         b.requests);
  source_cache_free (ca);
  source_cache_free (cb);
  fetch_history_put (h);
}

/* Blocks 5 and 20-29 were fetched (and are held by no cache).  A stream
 * from block 5 (a fetched block: fetched alone) to 20, with the worker:
 * the miss on block 20 is far from the one on block 5, not the next
 * block of a re-read, and fetches block 20 alone (it fetched a whole
 * window of fetched blocks before).
 */
static void
test_far_seen_misses (void)
{
  struct conn c = { .lock = PTHREAD_MUTEX_INITIALIZER, .delay_us = 2000 };
  struct fetch_history *h = fetch_history_get ("export 'far'", SIZE);
  struct source_cache *sc = new_cache (&c, h);
  unsigned i, twice = 0;

  fetch_history_add (h, 5, 1);
  fetch_history_add (h, 20, 10);
  source_cache_start_prefetch (sc);
  CHECK (read_span (sc, 5 * SOURCE_BLOCK, 21 * SOURCE_BLOCK) == 0,
         "the stream's bytes");
  for (i = 0; i < BLOCKS; i++)
    twice += c.fetched[i] > 1;
  CHECK (c.fetched[5] == 1 && c.fetched[20] == 1 && c.fetched[21] == 0 &&
         twice == 0,
         "blocks 5 and 20 fetched alone, 21 not fetched (%u)",
         c.fetched[21]);
  source_cache_free (sc);
  fetch_history_put (h);
}

int
main (void)
{
  uint64_t i;

  main_thread = pthread_self ();
  source = malloc (SIZE);
  if (source == NULL)
    return 1;
  for (i = 0; i < SIZE; i++)
    source[i] = (i * 2654435761u) >> 13;
  test_sequential ();
  test_two_connections ();
  test_separate_exports ();
  test_bounded ();
  test_prefetch ();
  test_prefetch_failure ();
  test_stream_start ();
  test_wait_for_peer ();
  test_far_seen_misses ();
  free (source);
  return failures != 0;
}
