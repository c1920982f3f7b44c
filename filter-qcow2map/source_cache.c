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
  bool in_request;         /* loading, by a request to the source that
                            * waits for nothing else (peers may wait) */
  char *data;              /* block I of the cache: arena + I blocks */
};

struct source_cache {
  pthread_mutex_t lock;
  pthread_cond_t loaded;
  struct slot *slots;
  size_t n;
  char *arena;             /* the slots' data, in slot order */
  uint64_t size, clock;
  uint64_t last_missed;    /* block of the last miss (sequential test) */
  unsigned readahead;      /* blocks fetched at the next sequential miss */
  struct fetch_history *history;   /* NULL: none */
  /* A client re-reading blocks some connection fetched: the block its
   * next miss would be on, if the last miss was on such a block.
   */
  uint64_t reread_next;    /* UINT64_MAX: none */
  /* The run of contiguous reads the last read belongs to (bytes
   * [run_start, read_end)): a stream shows itself in its first block.
   */
  uint64_t run_start, read_end;
  /* Prefetch (source_cache_start_prefetch): the next window of a
   * sequential read, fetched by the worker while the reader uses this
   * one.  TRIGGER is the first block of the newest window: its first
   * read schedules the next.
   */
  bool prefetching;        /* the worker runs */
  bool quit;               /* the worker is asked to end */
  pthread_t worker;
  pthread_cond_t work;     /* a job posted, or quit */
  struct slot *job[SOURCE_MAX_READAHEAD];
  unsigned job_n;          /* blocks of the posted job; 0: none */
  bool job_running;
  uint64_t job_first, trigger;
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
  /* One allocation: a window of consecutive slots is fetched with one
   * request straight into them.  Its pages are the kernel's until used.
   */
  c->arena = malloc (c->n ? c->n * SOURCE_BLOCK : 1);
  if (c->slots == NULL || c->arena == NULL) {
    free (c->slots);
    free (c->arena);
    free (c);
    return NULL;
  }
  for (i = 0; i < c->n; i++) {
    c->slots[i].block = UINT64_MAX;
    c->slots[i].data = c->arena + i * SOURCE_BLOCK;
  }
  pthread_mutex_init (&c->lock, NULL);
  pthread_cond_init (&c->loaded, NULL);
  c->size = size;
  c->history = history;
  c->fetch = fetch;
  c->opaque = opaque;
  if (history && fetch_history_join (history, c) == -1) {
    c->history = NULL;
    source_cache_free (c);
    return NULL;
  }
  c->last_missed = UINT64_MAX;
  c->reread_next = UINT64_MAX;
  c->trigger = UINT64_MAX;
  c->readahead = 1;
  return c;
}

void
source_cache_free (struct source_cache *c)
{
  if (c == NULL)
    return;
  source_cache_stop_prefetch (c);
  if (c->history)
    fetch_history_leave (c->history, c);
  free (c->arena);
  free (c->slots);
  pthread_mutex_destroy (&c->lock);
  pthread_cond_destroy (&c->loaded);
  pthread_cond_destroy (&c->work);
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

/* The least recently used run of K consecutive slots that no reader is
 * loading (a run's age: its most recently used slot).  Returns its
 * first slot's index, or -1 if there is none.
 */
static long
victims (const struct source_cache *c, unsigned k)
{
  long best = -1;
  uint64_t best_age = UINT64_MAX;
  size_t i, j;

  for (i = 0; i + k <= c->n; i++) {
    uint64_t age = 0;
    for (j = i; j < i + k && !c->slots[j].loading; j++)
      if (c->slots[j].block != UINT64_MAX && c->slots[j].last_use > age)
        age = c->slots[j].last_use;
    if (j < i + k) {            /* slot J is loading: no run through it */
      i = j;
      continue;
    }
    if (best == -1 || age < best_age) {
      best = i;
      best_age = age;
      if (age == 0)
        break;
    }
  }
  return best;
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

struct peer_ask {
  uint64_t block;
  char *dst;
  size_t bytes;
};

/* Copy a block another connection's cache holds (called for each peer,
 * with no lock of ours held).  A block the peer is fetching is waited
 * for: fetching it again cost a request and up to 8 MiB of bytes in a
 * copy of issue 14's bench.  Only a block in a request is waited for:
 * such a request waits for no peer, where a block merely claimed may
 * belong to a peer that is itself asking its peers (waiting for it could
 * wait for ever).
 */
static bool
copy_from_peer (void *member, void *arg)
{
  struct source_cache *p = member;
  struct peer_ask *a = arg;
  struct slot *s;
  bool found;

  pthread_mutex_lock (&p->lock);
  while ((s = find (p, a->block)) != NULL && s->loading && s->in_request)
    pthread_cond_wait (&p->loaded, &p->lock);
  found = s && !s->loading;
  if (found)
    memcpy (a->dst, s->data, a->bytes);
  pthread_mutex_unlock (&p->lock);
  return found;
}

/* Fetch blocks [FIRST, FIRST + N) into slots claimed (loading) by the
 * caller: the leading ones another connection holds are copied from it,
 * the rest fetched with one request.  Called without the lock.
 */
static int
fetch_blocks (struct source_cache *c, struct slot **slots, uint64_t first,
              unsigned n)
{
  uint64_t bytes = 0;
  unsigned i;

  while (n > 0 && c->history) {
    struct peer_ask a = { first, slots[0]->data, block_bytes (c, first) };
    if (!fetch_history_ask_peers (c->history, c, copy_from_peer, &a))
      break;
    slots++;
    first++;
    n--;
  }
  if (n == 0)
    return 0;
  pthread_mutex_lock (&c->lock);
  for (i = 0; i < n; i++)
    slots[i]->in_request = true;
  pthread_mutex_unlock (&c->lock);
  for (i = 0; i < n; i++)
    bytes += block_bytes (c, first + i);
  /* The slots are consecutive (claim): one request fills them. */
  return fetch_and_record (c, slots[0]->data, bytes, first * SOURCE_BLOCK);
}

/* A sequential read goes on: its next window is twice as large, up to
 * SOURCE_MAX_READAHEAD blocks.
 */
static void
grow_readahead (struct source_cache *c)
{
  c->readahead = c->readahead * 2 > SOURCE_MAX_READAHEAD
                 ? SOURCE_MAX_READAHEAD : c->readahead * 2;
}

/* Limit a fetch of N blocks from BLOCK by the history: stop before
 * blocks some connection fetched.  A miss on such a block itself (the
 * last block of one connection's piece of a copy is often the first of
 * another's) fetches just it; only a run of such misses, each on the
 * block after the previous one's fetch (a second copy, a client
 * re-reading), reads ahead again, from 1 block.  Two such misses far
 * apart are two ends of pieces, not a re-read (they fetched 8 MiB twice
 * in a copy of issue 14's bench).
 */
static unsigned
history_limit (struct source_cache *c, uint64_t block, unsigned n)
{
  bool seen;

  n = fetch_history_limit (c->history, block, n, &seen);
  if (seen && block != c->reread_next)
    n = c->readahead = 1;
  c->reread_next = seen ? block + n : UINT64_MAX;
  return n;
}

/* Claim up to N consecutive slots for blocks [FIRST, FIRST + N) as
 * loading, stopping at the end of the source, at a block already
 * present, or at the longest run of slots free of loading.  Returns how
 * many.  Called with the lock held.
 */
static unsigned
claim (struct source_cache *c, struct slot **claimed, uint64_t first,
       unsigned n)
{
  unsigned i, k;
  long start = -1;

  for (k = 0; k < n; k++)
    if ((first + k) * SOURCE_BLOCK >= c->size || find (c, first + k))
      break;
  while (k > 0 && (start = victims (c, k)) == -1)
    k--;
  for (i = 0; i < k; i++) {
    struct slot *s = &c->slots[start + i];

    s->block = first + i;
    s->loading = true;
    s->last_use = ++c->clock;     /* read ahead: not the next victim */
    claimed[i] = s;
  }
  return k;
}

/* The end of a fetch of N claimed slots: present, or (R == -1) free. */
static void
release (struct source_cache *c, struct slot **claimed, unsigned n, int r)
{
  unsigned i;

  for (i = 0; i < n; i++) {
    claimed[i]->loading = claimed[i]->in_request = false;
    if (r == -1)
      claimed[i]->block = UINT64_MAX;
  }
  pthread_cond_broadcast (&c->loaded);
}

/* A sequential read has reached the newest window (or, START, has
 * shown itself in the block of its first miss): post the window after
 * it to the worker, unless the worker is busy, the stream is not
 * sequential, or the next blocks were fetched before (another
 * connection's piece of a copy: the foreground decides there).  Called
 * with the lock held.
 */
static void
post_next_window (struct source_cache *c, bool start)
{
  uint64_t first = c->last_missed + 1;
  unsigned n;
  bool seen = false;

  if (!c->prefetching || c->quit || c->job_n > 0 || c->job_running ||
      c->last_missed == UINT64_MAX || (c->readahead < 2 && !start))
    return;
  /* Windows grow as the stream goes on, as misses make them grow. */
  grow_readahead (c);
  n = c->readahead;
  if (n > c->n / 2)
    n = c->n / 2;
  if (c->history)
    n = fetch_history_limit (c->history, first, n, &seen);
  if (seen)
    return;
  n = claim (c, c->job, first, n);
  if (n == 0)
    return;
  c->job_first = first;
  c->job_n = n;
  c->last_missed = first + n - 1;
  c->trigger = first;
  pthread_cond_signal (&c->work);
}

/* Set in the prefetch workers, for messages. */
static __thread bool in_worker;

bool
source_cache_in_prefetch (void)
{
  return in_worker;
}

static void *
worker (void *cv)
{
  struct source_cache *c = cv;
  struct slot *job[SOURCE_MAX_READAHEAD];
  uint64_t first;
  unsigned n;
  int r;

  in_worker = true;
  pthread_mutex_lock (&c->lock);
  for (;;) {
    while (!c->quit && c->job_n == 0)
      pthread_cond_wait (&c->work, &c->lock);
    if (c->quit)
      break;
    n = c->job_n;
    first = c->job_first;
    memcpy (job, c->job, n * sizeof *job);
    c->job_n = 0;
    c->job_running = true;
    pthread_mutex_unlock (&c->lock);
    /* A failure is not reported: the reader that needs these blocks
     * fetches them again, and fails with its own message.
     */
    r = fetch_blocks (c, job, first, n);
    pthread_mutex_lock (&c->lock);
    c->job_running = false;
    release (c, job, n, r);
  }
  /* A job posted but not started: give its slots back. */
  release (c, c->job, c->job_n, -1);
  c->job_n = 0;
  pthread_mutex_unlock (&c->lock);
  return NULL;
}

int
source_cache_start_prefetch (struct source_cache *c)
{
  int err;

  if (c->n < 2 * 2 || c->prefetching)     /* room for two windows */
    return 0;
  c->quit = false;
  err = pthread_create (&c->worker, NULL, worker, c);
  if (err != 0) {
    errno = err;
    return -1;
  }
  pthread_mutex_lock (&c->lock);
  c->prefetching = true;
  pthread_mutex_unlock (&c->lock);
  return 0;
}

void
source_cache_stop_prefetch (struct source_cache *c)
{
  pthread_mutex_lock (&c->lock);
  if (!c->prefetching) {
    pthread_mutex_unlock (&c->lock);
    return;
  }
  c->quit = true;
  pthread_cond_signal (&c->work);
  pthread_mutex_unlock (&c->lock);
  pthread_join (c->worker, NULL);
  pthread_mutex_lock (&c->lock);
  c->prefetching = false;
  c->trigger = UINT64_MAX;
  pthread_mutex_unlock (&c->lock);
}

/* Make BLOCK present, fetching it (and, on a sequential miss, the
 * blocks after it) if needed.  Called and returns with the lock held;
 * returns the slot, or NULL (errno set).
 */
static struct slot *
get_block (struct source_cache *c, uint64_t block)
{
  struct slot *s, *claimed[SOURCE_MAX_READAHEAD];
  unsigned n;
  int r, err;

  while ((s = find (c, block)) != NULL && s->loading)
    pthread_cond_wait (&c->loaded, &c->lock);
  if (s)
    return s;
  /* A miss: sequential after the previous miss?  Then read ahead. */
  if (c->last_missed != UINT64_MAX && block > c->last_missed &&
      block <= c->last_missed + c->readahead) {
    grow_readahead (c);
  }
  else {
    c->readahead = 1;
    c->trigger = UINT64_MAX;
  }
  n = c->readahead;
  if (n > c->n / 2)                 /* never evict what we just fetched */
    n = c->n / 2 ? c->n / 2 : 1;
  if (c->history)                   /* nor what was fetched before */
    n = history_limit (c, block, n);
  n = claim (c, claimed, block, n);
  if (n == 0) {
    errno = ENOMEM;
    return NULL;
  }
  c->last_missed = block + n - 1;
  pthread_mutex_unlock (&c->lock);
  r = fetch_blocks (c, claimed, block, n);
  err = errno;
  pthread_mutex_lock (&c->lock);
  release (c, claimed, n, r);
  if (r == -1) {
    errno = err;
    return NULL;
  }
  /* The stream goes on: fetch the next window meanwhile. */
  if (n >= 2)
    post_next_window (c, false);
  return claimed[0];
}

/* Note the read of N bytes at OFFSET in BLOCK in the run of contiguous
 * reads, and say whether it shows a stream starting: contiguous reads of STREAM_HINT bytes or more in the block
 * of a miss that fetched it alone (a piece of a copy starting, the
 * stream after an L2 table).  Then the worker fetches the next window
 * at once, instead of the reader fetching it when it gets there: each
 * piece of a copy started with two requests the reader waited for.
 * Reads of metadata (an L2 slice, a refcount block) are single reads
 * and start nothing.  Called with the lock held.
 */
#define STREAM_HINT (64 * 1024)

static bool
stream_starts (struct source_cache *c, uint64_t block, uint64_t offset,
               size_t n)
{
  /* Compressed clusters end in the sector where the next begins: the
   * decoder's reads of a stream overlap by up to 511 bytes.
   */
  if (offset < c->run_start || offset > c->read_end)
    c->run_start = c->read_end = offset;
  if (offset + n > c->read_end)
    c->read_end = offset + n;
  return block == c->last_missed && c->readahead == 1 &&
    c->trigger == UINT64_MAX && c->read_end - c->run_start >= STREAM_HINT;
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
    if (block == c->trigger)
      post_next_window (c, false);
    else if (stream_starts (c, block, offset, n))
      post_next_window (c, true);
    p += n;
    offset += n;
    count -= n;
  }
  pthread_mutex_unlock (&c->lock);
  return 0;
}
