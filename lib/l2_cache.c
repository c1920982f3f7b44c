/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "l2_cache.h"
#include "q2_error.h"

#define WAYS 8

struct slot {
  const void *owner;           /* NULL = empty */
  uint64_t slice_offset;
  uint64_t last_use;
  size_t bytes;
  unsigned char *data;         /* L2_SLICE_BYTES in c->mem */
};

struct set {
  pthread_mutex_t lock;
  uint64_t clock;
  struct slot slots[WAYS];
};

struct l2_cache {
  size_t nsets;
  unsigned char *mem;          /* nsets * WAYS slices; pages are touched
                                  (enter RSS) only when a slot is used */
  uint64_t hits, misses;       /* approximate (updated without a lock) */
  struct set sets[];
};

struct l2_cache *
l2_cache_new (uint64_t max_bytes)
{
  uint64_t nsets = max_bytes / L2_SLICE_BYTES / WAYS;
  struct l2_cache *c;
  size_t i, j;

  if (nsets < 1)
    nsets = 1;                 /* always room for WAYS slices */
  if (nsets > SIZE_MAX / WAYS / L2_SLICE_BYTES) {
    q2_error ("L2 cache size %" PRIu64 " is too large", max_bytes);
    return NULL;
  }
  c = calloc (1, sizeof *c + nsets * sizeof (struct set));
  if (c == NULL) {
    q2_error ("calloc: %m");
    return NULL;
  }
  c->nsets = nsets;
  c->mem = malloc (nsets * WAYS * L2_SLICE_BYTES);
  if (c->mem == NULL) {
    q2_error ("L2 cache of %zu bytes: %m", nsets * WAYS * L2_SLICE_BYTES);
    free (c);
    return NULL;
  }
  for (i = 0; i < nsets; i++) {
    pthread_mutex_init (&c->sets[i].lock, NULL);
    for (j = 0; j < WAYS; j++)
      c->sets[i].slots[j].data = c->mem + (i * WAYS + j) * L2_SLICE_BYTES;
  }
  return c;
}

void
l2_cache_free (struct l2_cache *c)
{
  size_t i;

  if (c == NULL)
    return;
  for (i = 0; i < c->nsets; i++)
    pthread_mutex_destroy (&c->sets[i].lock);
  free (c->mem);
  free (c);
}

static struct set *
set_for (struct l2_cache *c, const void *owner, uint64_t slice_offset)
{
  uint64_t h = (uint64_t) (uintptr_t) owner ^ (slice_offset >> 9);

  h *= 0x9e3779b97f4a7c15ULL;  /* Fibonacci hashing spreads the bits */
  return &c->sets[(h >> 32) % c->nsets];
}

static struct slot *
find (struct set *s, const void *owner, uint64_t slice_offset)
{
  size_t j;

  for (j = 0; j < WAYS; j++)
    if (s->slots[j].owner == owner && s->slots[j].slice_offset == slice_offset)
      return &s->slots[j];
  return NULL;
}

bool
l2_cache_get (struct l2_cache *c, const void *owner, uint64_t slice_offset,
              size_t start, size_t n, void *out)
{
  struct set *s = set_for (c, owner, slice_offset);
  struct slot *slot;
  bool hit = false;

  pthread_mutex_lock (&s->lock);
  slot = find (s, owner, slice_offset);
  if (slot && start + n <= slot->bytes) {
    memcpy (out, slot->data + start, n);
    slot->last_use = ++s->clock;
    hit = true;
  }
  pthread_mutex_unlock (&s->lock);
  if (hit) __atomic_add_fetch (&c->hits, 1, __ATOMIC_RELAXED);
  else     __atomic_add_fetch (&c->misses, 1, __ATOMIC_RELAXED);
  return hit;
}

void
l2_cache_put (struct l2_cache *c, const void *owner, uint64_t slice_offset,
              const void *slice, size_t bytes)
{
  struct set *s = set_for (c, owner, slice_offset);
  struct slot *victim;
  size_t j;

  if (bytes > L2_SLICE_BYTES)
    return;
  pthread_mutex_lock (&s->lock);
  victim = find (s, owner, slice_offset);  /* another thread was faster */
  if (victim == NULL) {
    victim = &s->slots[0];
    for (j = 1; j < WAYS; j++)
      if (s->slots[j].last_use < victim->last_use)
        victim = &s->slots[j];
    memcpy (victim->data, slice, bytes);
    victim->owner = owner;
    victim->slice_offset = slice_offset;
    victim->bytes = bytes;
  }
  victim->last_use = ++s->clock;
  pthread_mutex_unlock (&s->lock);
}

void
l2_cache_stats (struct l2_cache *c, uint64_t *hits, uint64_t *misses,
                size_t *slots)
{
  *hits = __atomic_load_n (&c->hits, __ATOMIC_RELAXED);
  *misses = __atomic_load_n (&c->misses, __ATOMIC_RELAXED);
  *slots = c->nsets * WAYS;
}

uint64_t
l2_cache_capacity (const struct l2_cache *c)
{
  return (uint64_t) c->nsets * WAYS * L2_SLICE_BYTES;
}
