/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "source_cache.h"
#include "fetch_history.h"

struct slot {
  uint64_t block;          /* block number, UINT64_MAX: empty */
  uint64_t last_use;       /* for LRU eviction */
  bool loading;            /* a reader is fetching it (others wait) */
  char *data;
};

struct source_cache {
  pthread_mutex_t lock;
  pthread_cond_t loaded;
  struct slot *slots;
  size_t n;
  uint64_t size, clock;
  uint64_t last_missed;    /* block of the last miss (sequential test) */
  unsigned readahead;      /* blocks fetched at the next sequential miss */
  struct fetch_history *history;   /* NULL: none */
  bool rereading;          /* the last miss was a block fetched before */
  source_fetch_fn fetch;
  void *opaque;
};

struct source_cache *
source_cache_new (uint64_t max_bytes, uint64_t size,
                  struct fetch_history *history, source_fetch_fn fetch,
                  void *opaque)
{
  struct source_cache *c = calloc (1, sizeof *c);
  size_t i;

  if (c == NULL)
    return NULL;
  c->n = max_bytes / SOURCE_BLOCK;
  c->slots = calloc (c->n ? c->n : 1, sizeof *c->slots);
  if (c->slots == NULL) {
    free (c);
    return NULL;
  }
  for (i = 0; i < c->n; i++)
    c->slots[i].block = UINT64_MAX;
  pthread_mutex_init (&c->lock, NULL);
  pthread_cond_init (&c->loaded, NULL);
  c->size = size;
  c->history = history;
  c->fetch = fetch;
  c->opaque = opaque;
  c->last_missed = UINT64_MAX;
  c->readahead = 1;
  return c;
}

void
source_cache_free (struct source_cache *c)
{
  size_t i;

  if (c == NULL)
    return;
  for (i = 0; i < c->n; i++)
    free (c->slots[i].data);
  free (c->slots);
  pthread_mutex_destroy (&c->lock);
  pthread_cond_destroy (&c->loaded);
  free (c);
}

static struct slot *
find (struct source_cache *c, uint64_t block)
{
  size_t i;

  for (i = 0; i < c->n; i++)
    if (c->slots[i].block == block)
      return &c->slots[i];
  return NULL;
}

/* The least recently used slot that no reader is loading. */
static struct slot *
victim (struct source_cache *c)
{
  struct slot *v = NULL;
  size_t i;

  for (i = 0; i < c->n; i++) {
    struct slot *s = &c->slots[i];
    if (s->loading)
      continue;
    if (s->block == UINT64_MAX)
      return s;
    if (v == NULL || s->last_use < v->last_use)
      v = s;
  }
  return v;
}

static uint64_t
block_bytes (const struct source_cache *c, uint64_t block)
{
  uint64_t start = block * SOURCE_BLOCK;

  return c->size - start < SOURCE_BLOCK ? c->size - start : SOURCE_BLOCK;
}

/* Fetch COUNT bytes at OFFSET, and tell the history which blocks. */
static int
fetch_and_record (struct source_cache *c, void *buf, size_t count,
                  uint64_t offset)
{
  uint64_t first = offset / SOURCE_BLOCK;

  if (c->fetch (c->opaque, buf, count, offset) == -1)
    return -1;
  if (c->history && count > 0)
    fetch_history_add (c->history, first,
                       (offset + count - 1) / SOURCE_BLOCK - first + 1);
  return 0;
}

/* Fetch blocks [FIRST, FIRST + N) with one request into slots claimed
 * (loading) by the caller.  Called without the lock.
 */
static int
fetch_blocks (struct source_cache *c, struct slot **slots, uint64_t first,
              unsigned n)
{
  uint64_t bytes = 0;
  unsigned i;
  char *buf;
  int r;

  for (i = 0; i < n; i++)
    bytes += block_bytes (c, first + i);
  if (n == 1)
    return fetch_and_record (c, slots[0]->data, bytes, first * SOURCE_BLOCK);
  buf = malloc (bytes);
  if (buf == NULL) {
    errno = ENOMEM;
    return -1;
  }
  r = fetch_and_record (c, buf, bytes, first * SOURCE_BLOCK);
  for (i = 0; r == 0 && i < n; i++)
    memcpy (slots[i]->data, buf + (uint64_t) i * SOURCE_BLOCK,
            block_bytes (c, first + i));
  free (buf);
  return r;
}

/* Limit a fetch of N blocks from BLOCK by the history: stop before
 * blocks some connection fetched.  A miss on such a block itself (the
 * last block of one connection's piece of a copy is often the first of
 * another's) fetches just it; only a run of such misses (a second copy,
 * a client re-reading) reads ahead again, from 1 block.
 */
static unsigned
history_limit (struct source_cache *c, uint64_t block, unsigned n)
{
  bool seen;

  n = fetch_history_limit (c->history, block, n, &seen);
  if (seen && !c->rereading)
    n = c->readahead = 1;
  c->rereading = seen;
  return n;
}

/* Make BLOCK present, fetching it (and, on a sequential miss, the
 * blocks after it) if needed.  Called and returns with the lock held;
 * returns the slot, or NULL (errno set).
 */
static struct slot *
get_block (struct source_cache *c, uint64_t block)
{
  struct slot *s, *claimed[SOURCE_MAX_READAHEAD];
  unsigned n, i;
  int r, err;

  while ((s = find (c, block)) != NULL && s->loading)
    pthread_cond_wait (&c->loaded, &c->lock);
  if (s)
    return s;
  /* A miss: sequential after the previous miss?  Then read ahead. */
  if (c->last_missed != UINT64_MAX && block > c->last_missed &&
      block <= c->last_missed + c->readahead) {
    c->readahead = c->readahead * 2 > SOURCE_MAX_READAHEAD
                   ? SOURCE_MAX_READAHEAD : c->readahead * 2;
  }
  else
    c->readahead = 1;
  n = c->readahead;
  if (n > c->n / 2)                 /* never evict what we just fetched */
    n = c->n / 2 ? c->n / 2 : 1;
  if (c->history)                   /* nor what was fetched before */
    n = history_limit (c, block, n);
  for (i = 0; i < n; i++) {
    uint64_t b = block + i;
    if (b * SOURCE_BLOCK >= c->size || (i > 0 && find (c, b)))
      break;
    s = victim (c);
    if (s == NULL)
      break;
    if (s->data == NULL && (s->data = malloc (SOURCE_BLOCK)) == NULL)
      break;
    s->block = b;
    s->loading = true;
    s->last_use = ++c->clock;     /* read ahead: not the next victim */
    claimed[i] = s;
  }
  n = i;
  if (n == 0) {
    errno = ENOMEM;
    return NULL;
  }
  c->last_missed = block + n - 1;
  pthread_mutex_unlock (&c->lock);
  r = fetch_blocks (c, claimed, block, n);
  err = errno;
  pthread_mutex_lock (&c->lock);
  for (i = 0; i < n; i++) {
    claimed[i]->loading = false;
    if (r == -1)
      claimed[i]->block = UINT64_MAX;
  }
  pthread_cond_broadcast (&c->loaded);
  if (r == -1) {
    errno = err;
    return NULL;
  }
  return claimed[0];
}

int
source_cache_pread (struct source_cache *c, void *buf, size_t count,
                    uint64_t offset)
{
  char *p = buf;

  if (c->n == 0 || count >= SOURCE_BLOCK)
    return fetch_and_record (c, buf, count, offset);
  pthread_mutex_lock (&c->lock);
  while (count > 0) {
    uint64_t block = offset / SOURCE_BLOCK;
    uint64_t in = offset % SOURCE_BLOCK;
    size_t n = SOURCE_BLOCK - in < count ? SOURCE_BLOCK - in : count;
    struct slot *s = get_block (c, block);

    /* A block that cannot be fetched whole (a damaged region of the
     * source near the bytes asked, a short memory): ask for just these
     * bytes, so that only reads touching the damage fail.
     */
    if (s == NULL) {
      pthread_mutex_unlock (&c->lock);
      return fetch_and_record (c, p, count, offset);
    }
    memcpy (p, s->data + in, n);
    s->last_use = ++c->clock;
    p += n;
    offset += n;
    count -= n;
  }
  pthread_mutex_unlock (&c->lock);
  return 0;
}
