#include <config.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "l2_cache.h"
#include "q2_error.h"

#define WAYS 8

struct slot {
  const void *owner;           /* NULL = empty */
  uint64_t l2_offset;
  uint64_t last_use;
  size_t bytes;
  unsigned char *table;        /* max_table_bytes, allocated on first use */
};

struct set {
  pthread_mutex_t lock;
  uint64_t clock;
  struct slot slots[WAYS];
};

struct l2_cache {
  size_t nsets;
  size_t max_table_bytes;
  uint64_t hits, misses;       /* approximate (updated without a lock) */
  struct set sets[];
};

struct l2_cache *
l2_cache_new (uint64_t max_bytes, size_t max_table_bytes)
{
  uint64_t slots = max_bytes / max_table_bytes;
  size_t nsets = slots / WAYS;
  struct l2_cache *c;
  size_t i;

  if (nsets < 1)
    nsets = 1;                 /* always room for WAYS tables */
  c = calloc (1, sizeof *c + nsets * sizeof (struct set));
  if (c == NULL) {
    q2_error ("calloc: %m");
    return NULL;
  }
  c->nsets = nsets;
  c->max_table_bytes = max_table_bytes;
  for (i = 0; i < nsets; i++)
    pthread_mutex_init (&c->sets[i].lock, NULL);
  return c;
}

void
l2_cache_free (struct l2_cache *c)
{
  size_t i, j;

  if (c == NULL)
    return;
  for (i = 0; i < c->nsets; i++) {
    for (j = 0; j < WAYS; j++)
      free (c->sets[i].slots[j].table);
    pthread_mutex_destroy (&c->sets[i].lock);
  }
  free (c);
}

static struct set *
set_for (struct l2_cache *c, const void *owner, uint64_t l2_offset)
{
  uint64_t h = (uint64_t) (uintptr_t) owner ^ (l2_offset >> 9);

  h *= 0x9e3779b97f4a7c15ULL;  /* Fibonacci hashing spreads the bits */
  return &c->sets[(h >> 32) % c->nsets];
}

static struct slot *
find (struct set *s, const void *owner, uint64_t l2_offset)
{
  size_t j;

  for (j = 0; j < WAYS; j++)
    if (s->slots[j].owner == owner && s->slots[j].l2_offset == l2_offset)
      return &s->slots[j];
  return NULL;
}

bool
l2_cache_get (struct l2_cache *c, const void *owner, uint64_t l2_offset,
              size_t start, size_t n, void *out)
{
  struct set *s = set_for (c, owner, l2_offset);
  struct slot *slot;
  bool hit = false;

  pthread_mutex_lock (&s->lock);
  slot = find (s, owner, l2_offset);
  if (slot && start + n <= slot->bytes) {
    memcpy (out, slot->table + start, n);
    slot->last_use = ++s->clock;
    hit = true;
  }
  pthread_mutex_unlock (&s->lock);
  if (hit) __atomic_add_fetch (&c->hits, 1, __ATOMIC_RELAXED);
  else     __atomic_add_fetch (&c->misses, 1, __ATOMIC_RELAXED);
  return hit;
}

void
l2_cache_put (struct l2_cache *c, const void *owner, uint64_t l2_offset,
              const void *table, size_t table_bytes)
{
  struct set *s = set_for (c, owner, l2_offset);
  struct slot *victim;
  size_t j;

  if (table_bytes > c->max_table_bytes)
    return;
  pthread_mutex_lock (&s->lock);
  victim = find (s, owner, l2_offset);    /* another thread was faster */
  if (victim == NULL) {
    victim = &s->slots[0];
    for (j = 1; j < WAYS; j++)
      if (s->slots[j].last_use < victim->last_use)
        victim = &s->slots[j];
    if (victim->table == NULL)
      victim->table = malloc (c->max_table_bytes);
    if (victim->table == NULL) {
      victim->owner = NULL;
      goto out;
    }
    memcpy (victim->table, table, table_bytes);
    victim->owner = owner;
    victim->l2_offset = l2_offset;
    victim->bytes = table_bytes;
  }
  victim->last_use = ++s->clock;
 out:
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
