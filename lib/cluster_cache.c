/* SPDX-License-Identifier: BSD-3-Clause */
/* The decompressed-cluster cache: see cluster_cache.h for the design
 * (set-associative, 2Q eviction per set, one inflation per cluster).
 */
#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_cache.h"
#include "q2_error.h"

#define MAX_WAYS 16

enum slot_state { EMPTY, FILLING, READY };

struct key {
  const void *owner;           /* NULL = none */
  uint64_t host_offset;
  uint64_t compressed_size;
};

struct slot {
  struct key key;
  enum slot_state state;
  bool protected;              /* in Am (else in A1in) */
  uint64_t stamp;              /* A1in: insertion; Am: last use */
  size_t bytes;                /* of the decompressed cluster */
  unsigned char *data;         /* slot_bytes in c->mem */
};

struct set {
  pthread_mutex_t lock;
  pthread_cond_t filled;       /* a FILLING slot of this set changed */
  uint64_t clock;
  size_t ghost_next;
  struct slot *slots;          /* ways */
  struct key *ghosts;          /* ways: A1out, keys only */
};

struct cluster_cache {
  size_t nsets, ways, kin;     /* kin: A1in's share of a full set */
  size_t slot_bytes;
  unsigned char *mem;
  struct slot *slots;
  struct key *ghosts;
  uint64_t hits, misses, waits;
  struct set sets[];
};

struct cluster_cache *
cluster_cache_new (uint64_t max_bytes, size_t slot_bytes)
{
  uint64_t nslots;
  struct cluster_cache *c;
  size_t i, j, nsets, ways;

  if (max_bytes == 0)
    return NULL;
  nslots = max_bytes / slot_bytes;
  if (nslots < 1)
    nslots = 1;
  if (nslots > SIZE_MAX / 2 / slot_bytes) {
    q2_error ("compressed cluster cache size %" PRIu64 " is too large",
              max_bytes);
    return NULL;
  }
  ways = nslots < MAX_WAYS ? nslots : MAX_WAYS;
  nsets = nslots / ways;
  c = calloc (1, sizeof *c + nsets * sizeof (struct set));
  if (c == NULL) {
    q2_error ("calloc: %m");
    return NULL;
  }
  c->nsets = nsets;
  c->ways = ways;
  c->kin = ways / 4 ? ways / 4 : 1;
  c->slot_bytes = slot_bytes;
  c->mem = malloc (nsets * ways * slot_bytes);
  c->slots = calloc (nsets * ways, sizeof *c->slots);
  c->ghosts = calloc (nsets * ways, sizeof *c->ghosts);
  if (c->mem == NULL || c->slots == NULL || c->ghosts == NULL) {
    q2_error ("malloc: %m");
    free (c->mem);
    free (c->slots);
    free (c->ghosts);
    free (c);
    return NULL;
  }
  for (i = 0; i < nsets; i++) {
    struct set *s = &c->sets[i];

    pthread_mutex_init (&s->lock, NULL);
    pthread_cond_init (&s->filled, NULL);
    s->slots = c->slots + i * ways;
    s->ghosts = c->ghosts + i * ways;
    for (j = 0; j < ways; j++)
      s->slots[j].data = c->mem + (i * ways + j) * slot_bytes;
  }
  return c;
}

void
cluster_cache_free (struct cluster_cache *c)
{
  size_t i;

  if (c == NULL)
    return;
  for (i = 0; i < c->nsets; i++) {
    pthread_mutex_destroy (&c->sets[i].lock);
    pthread_cond_destroy (&c->sets[i].filled);
  }
  free (c->mem);
  free (c->slots);
  free (c->ghosts);
  free (c);
}

static bool
key_eq (const struct key *a, const struct key *b)
{
  return a->owner == b->owner && a->host_offset == b->host_offset &&
         a->compressed_size == b->compressed_size;
}

static struct set *
set_for (struct cluster_cache *c, const struct key *k)
{
  uint64_t h = (uint64_t) (uintptr_t) k->owner ^ (k->host_offset >> 9);

  h *= 0x9e3779b97f4a7c15ULL;  /* Fibonacci hashing spreads the bits */
  return &c->sets[(h >> 32) % c->nsets];
}

static struct slot *
find (struct cluster_cache *c, struct set *s, const struct key *k)
{
  size_t j;

  for (j = 0; j < c->ways; j++)
    if (s->slots[j].state != EMPTY && key_eq (&s->slots[j].key, k))
      return &s->slots[j];
  return NULL;
}

/* Was K evicted from A1in recently?  (Forgets it: it is being read.) */
static bool
ghost_take (struct cluster_cache *c, struct set *s, const struct key *k)
{
  size_t j;

  for (j = 0; j < c->ways; j++)
    if (s->ghosts[j].owner && key_eq (&s->ghosts[j], k)) {
      s->ghosts[j].owner = NULL;
      return true;
    }
  return false;
}

static void
ghost_add (struct cluster_cache *c, struct set *s, const struct key *k)
{
  s->ghosts[s->ghost_next] = *k;
  s->ghost_next = (s->ghost_next + 1) % c->ways;
}

/* The oldest READY slot in queue PROTECTED (or in either if ANY). */
static struct slot *
oldest (struct cluster_cache *c, struct set *s, bool protected, bool any)
{
  struct slot *v = NULL;
  size_t j;

  for (j = 0; j < c->ways; j++) {
    struct slot *e = &s->slots[j];

    if (e->state == READY && (any || e->protected == protected) &&
        (v == NULL || e->stamp < v->stamp))
      v = e;
  }
  return v;
}

/* 2Q's choice: a free slot; else the head of A1in if A1in holds more
 * than its share; else the least recently used of Am.  Never a slot
 * being filled.  NULL if every slot is being filled.
 */
static struct slot *
victim (struct cluster_cache *c, struct set *s)
{
  size_t j, nin = 0;
  struct slot *v;

  for (j = 0; j < c->ways; j++) {
    if (s->slots[j].state == EMPTY)
      return &s->slots[j];
    nin += !s->slots[j].protected;
  }
  if (nin > c->kin && (v = oldest (c, s, false, false)) != NULL)
    return v;
  if ((v = oldest (c, s, true, false)) != NULL)
    return v;
  return oldest (c, s, false, true);
}

/* No room (or no cache): inflate into a private buffer. */
static int
read_uncached (size_t cluster_bytes, size_t start, size_t n, void *out,
               cluster_inflate_fn inflate, void *opaque)
{
  unsigned char *buf;
  int r;

  if (n == 0)
    return 0;                  /* a prefetch with nowhere to keep it */
  buf = malloc (cluster_bytes);
  if (buf == NULL)
    return q2_error ("malloc: %m");
  r = inflate (opaque, buf);
  if (r == 0)
    memcpy (out, buf + start, n);
  free (buf);
  return r;
}

int
cluster_cache_read (struct cluster_cache *c, const void *owner,
                    uint64_t host_offset, uint64_t compressed_size,
                    size_t cluster_bytes, size_t start, size_t n,
                    void *out, cluster_inflate_fn inflate, void *opaque)
{
  struct key k = { owner, host_offset, compressed_size };
  struct set *s;
  struct slot *e;
  bool promote;
  int r;

  if (c == NULL || cluster_bytes > c->slot_bytes)
    return read_uncached (cluster_bytes, start, n, out, inflate, opaque);
  s = set_for (c, &k);
  pthread_mutex_lock (&s->lock);
  while ((e = find (c, s, &k)) != NULL && e->state == FILLING) {
    __atomic_add_fetch (&c->waits, 1, __ATOMIC_RELAXED);
    pthread_cond_wait (&s->filled, &s->lock);
  }
  if (e) {                                    /* hit */
    if (n)
      memcpy (out, e->data + start, n);
    if (e->protected)
      e->stamp = ++s->clock;                  /* Am is LRU, A1in FIFO */
    pthread_mutex_unlock (&s->lock);
    __atomic_add_fetch (&c->hits, 1, __ATOMIC_RELAXED);
    return 0;
  }

  __atomic_add_fetch (&c->misses, 1, __ATOMIC_RELAXED);
  if (start == 0 && n == cluster_bytes) {
    /* The caller wants the whole cluster: inflate straight into OUT.
     * No copy, and no slot: a copy of the whole disk (nbdcopy, a
     * backup) reads whole clusters once and would only evict others.
     */
    pthread_mutex_unlock (&s->lock);
    return inflate (opaque, out);
  }
  promote = ghost_take (c, s, &k);
  e = victim (c, s);
  if (e == NULL) {
    pthread_mutex_unlock (&s->lock);
    return read_uncached (cluster_bytes, start, n, out, inflate, opaque);
  }
  if (e->state == READY && !e->protected)
    ghost_add (c, s, &e->key);
  e->key = k;
  e->state = FILLING;
  e->protected = promote;
  e->stamp = ++s->clock;
  e->bytes = cluster_bytes;
  pthread_mutex_unlock (&s->lock);

  r = inflate (opaque, e->data);              /* no lock held */

  pthread_mutex_lock (&s->lock);
  if (r == 0) {
    e->state = READY;
    if (n)
      memcpy (out, e->data + start, n);
  }
  else {
    e->state = EMPTY;                         /* waiters try themselves */
    e->key.owner = NULL;
  }
  pthread_cond_broadcast (&s->filled);
  pthread_mutex_unlock (&s->lock);
  return r;
}

void
cluster_cache_stats (struct cluster_cache *c, uint64_t *hits,
                     uint64_t *misses, uint64_t *waits, size_t *slots,
                     size_t *slot_bytes)
{
  if (c == NULL) {
    *hits = *misses = *waits = 0;
    *slots = *slot_bytes = 0;
    return;
  }
  *hits = __atomic_load_n (&c->hits, __ATOMIC_RELAXED);
  *misses = __atomic_load_n (&c->misses, __ATOMIC_RELAXED);
  *waits = __atomic_load_n (&c->waits, __ATOMIC_RELAXED);
  *slots = c->nsets * c->ways;
  *slot_bytes = c->slot_bytes;
}

uint64_t
cluster_cache_capacity (const struct cluster_cache *c)
{
  return c ? (uint64_t) c->nsets * c->ways * c->slot_bytes : 0;
}
