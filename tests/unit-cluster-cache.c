/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for the decompressed-cluster cache (lib/cluster_cache.c):
 * capacity in slots, bytes come back as inflated, one inflate for many
 * reads and for concurrent readers of one cluster, whole-cluster reads
 * bypass the cache on a miss, failures are not
 * cached, a full set of slots being filled falls back to a private
 * buffer, and 2Q keeps re-read clusters through a long scan.
 */
#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster_cache.h"
#include "q2_error.h"

#include "unit.h"

#define CS 4096

static unsigned inflates;      /* calls of the inflate function */

struct job {
  uint64_t key;
  int fail;
  unsigned delay_ms;
};

static int
inflate (void *opaque, void *out)
{
  struct job *j = opaque;
  unsigned char *p = out;
  size_t i;

  __atomic_add_fetch (&inflates, 1, __ATOMIC_RELAXED);
  if (j->delay_ms)
    usleep (j->delay_ms * 1000);
  if (j->fail)
    return q2_error ("corrupt");
  for (i = 0; i < CS; i++)
    p[i] = (unsigned char) (j->key * 7 + i);
  return 0;
}

static int
read_key (struct cluster_cache *c, uint64_t key, size_t start, size_t n,
          unsigned char *out)
{
  struct job j = { key, 0, 0 };

  return cluster_cache_read (c, (void *) 1, key * CS, 100, CS, start, n, out,
                             inflate, &j);
}

static int
bytes_ok (uint64_t key, size_t start, size_t n, const unsigned char *out)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (out[i] != (unsigned char) (key * 7 + start + i))
      return 0;
  return 1;
}

static void
test_capacity (void)
{
  struct cluster_cache *c;
  uint64_t h, m, w;
  size_t slots, sb;

  c = cluster_cache_new (16 << 20, 65536);
  cluster_cache_stats (c, &h, &m, &w, &slots, &sb);
  CHECK (slots == 256 && sb == 65536 &&
         cluster_cache_capacity (c) == 16 << 20,
         "16M of 64 KiB clusters: %zu slots of %zu", slots, sb);
  cluster_cache_free (c);
  c = cluster_cache_new (1 << 20, 2 << 20);
  cluster_cache_stats (c, &h, &m, &w, &slots, &sb);
  CHECK (slots == 1 && cluster_cache_capacity (c) == 2 << 20,
         "1M of 2 MiB clusters: at least one slot (%zu)", slots);
  cluster_cache_free (c);
  CHECK (cluster_cache_new (0, 65536) == NULL, "size 0: no cache");
}

static void
test_bytes (void)
{
  struct cluster_cache *c = cluster_cache_new (64 * CS, CS);
  unsigned char out[CS];
  unsigned before;
  int ok = 1, k;

  inflates = 0;
  for (k = 0; k < 16; k++)
    ok &= read_key (c, 5, k * 256, 256, out) == 0 && bytes_ok (5, k * 256, 256, out);
  CHECK (ok && inflates == 1, "16 reads of one cluster: right bytes, %u inflate",
         inflates);
  before = inflates;
  ok = read_key (NULL, 9, 100, 50, out) == 0 && bytes_ok (9, 100, 50, out);
  CHECK (ok && inflates == before + 1, "no cache: inflates every time");
  ok = read_key (c, 11, 0, 0, NULL) == 0 && read_key (c, 11, 10, 20, out) == 0 &&
       bytes_ok (11, 10, 20, out);
  CHECK (ok && inflates == before + 2, "prefetch (n = 0), then a hit");
  before = inflates;
  ok = read_key (c, 12, 0, CS, out) == 0 && bytes_ok (12, 0, CS, out) &&
       read_key (c, 12, 0, 10, out) == 0 && bytes_ok (12, 0, 10, out);
  CHECK (ok && inflates == before + 2,
         "a whole-cluster read that misses is not cached");
  before = inflates;
  ok = read_key (c, 12, 0, CS, out) == 0 && bytes_ok (12, 0, CS, out);
  CHECK (ok && inflates == before, "a whole-cluster read that hits is a copy");
  cluster_cache_free (c);
}

static void
test_failure (void)
{
  struct cluster_cache *c = cluster_cache_new (16 * CS, CS);
  struct job j = { 3, 1, 0 };
  unsigned char out[CS];
  int r1, r2;

  inflates = 0;
  r1 = cluster_cache_read (c, (void *) 1, 3 * CS, 100, CS, 0, 10, out, inflate, &j);
  r2 = cluster_cache_read (c, (void *) 1, 3 * CS, 100, CS, 0, 10, out, inflate, &j);
  CHECK (r1 == -1 && r2 == -1 && inflates == 2,
         "a failed inflate is not cached: tried again (%u)", inflates);
  j.fail = 0;
  CHECK (cluster_cache_read (c, (void *) 1, 3 * CS, 100, CS, 0, 10, out,
                             inflate, &j) == 0 && bytes_ok (3, 0, 10, out),
         "then succeeds");
  cluster_cache_free (c);
}

struct reader {
  struct cluster_cache *c;
  uint64_t key;
  unsigned delay_ms;
  int ok;
};

static void *
reader (void *arg)
{
  struct reader *r = arg;
  struct job j = { r->key, 0, r->delay_ms };
  unsigned char out[CS];

  r->ok = cluster_cache_read (r->c, (void *) 1, r->key * CS, 100, CS, 0,
                              CS / 2, out, inflate, &j) == 0 &&
          bytes_ok (r->key, 0, CS / 2, out);
  return NULL;
}

static void
test_concurrent (void)
{
  struct cluster_cache *c = cluster_cache_new (16 * CS, CS);
  struct reader r[8];
  pthread_t t[8];
  uint64_t h, m, w;
  size_t slots, sb;
  int i, ok = 1;

  inflates = 0;
  for (i = 0; i < 8; i++) {
    r[i] = (struct reader) { c, 42, 200, 0 };
    pthread_create (&t[i], NULL, reader, &r[i]);
  }
  for (i = 0; i < 8; i++) {
    pthread_join (t[i], NULL);
    ok &= r[i].ok;
  }
  cluster_cache_stats (c, &h, &m, &w, &slots, &sb);
  CHECK (ok && inflates == 1 && m == 1 && h == 7,
         "8 concurrent readers of one cluster: right bytes, %u inflate, "
         "%" PRIu64 " misses, %" PRIu64 " hits (%" PRIu64 " waited)",
         inflates, m, h, w);
  cluster_cache_free (c);

  /* One slot, being filled: another cluster is read without waiting. */
  c = cluster_cache_new (CS, CS);
  inflates = 0;
  r[0] = (struct reader) { c, 1, 300, 0 };
  pthread_create (&t[0], NULL, reader, &r[0]);
  usleep (100 * 1000);
  r[1] = (struct reader) { c, 2, 0, 0 };
  reader (&r[1]);
  pthread_join (t[0], NULL);
  CHECK (r[0].ok && r[1].ok && inflates == 2,
         "every slot being filled: private buffer, right bytes");
  cluster_cache_free (c);
}

static void
test_scan_resistance (void)
{
  /* 16 slots: one set of 16 ways, probation share 4. */
  struct cluster_cache *c = cluster_cache_new (16 * CS, CS);
  unsigned char out[CS];
  uint64_t k;
  int n, ok = 1;
  unsigned before;

  for (k = 0; k < 8; k++)                 /* hot clusters, first time */
    read_key (c, k, 0, 16, out);
  for (k = 100; k < 116; k++)             /* pushed out of probation */
    read_key (c, k, 0, 16, out);
  for (k = 0; k < 8; k++)                 /* read again: protected */
    read_key (c, k, 0, 16, out);
  for (k = 1000; k < 3000; k++)           /* a long scan, 16 reads each */
    for (n = 0; n < 16; n++)
      read_key (c, k, n * 256, 256, out);
  inflates = 0;
  for (k = 0; k < 8; k++)
    ok &= read_key (c, k, 0, 16, out) == 0 && bytes_ok (k, 0, 16, out);
  CHECK (ok && inflates == 0,
         "8 re-read clusters survive a scan of 2000 clusters (16 reads "
         "each) in 16 slots: %u inflates", inflates);
  before = inflates;
  read_key (c, 2999, 0, 16, out);
  CHECK (inflates == before, "the scan's last cluster is still cached");
  cluster_cache_free (c);
}

int
main (void)
{
  test_capacity ();
  test_bytes ();
  test_failure ();
  test_concurrent ();
  test_scan_resistance ();
  return failures ? 1 : 0;
}
