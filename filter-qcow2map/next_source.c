/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-filter.h>

#include "next_source.h"
#include "source_cache.h"
#include "fetch_history.h"
#include "q2_error.h"

/* Largest single request asked of the plugin below (nbdkit's own
 * requests are at most 64M; plugins are written for that).
 */
#define MAX_NEXT_REQUEST (32 * 1024 * 1024)

struct next_source {
  nbdkit_next *next;
  bool can_extents, can_cache;
  bool debug_io;
  uint64_t requests, bytes;      /* atomic */
  unsigned refs;                 /* host files reading it; atomic */
  const char *name;              /* for messages (the first host file's) */
  struct source_cache *cache;    /* NULL: none */
  struct fetch_history *history; /* shared with the export's connections */
  /* With a prefetch worker over a stack that is not parallel, one call
   * into NEXT at a time, as the plugin's thread model promises it:
   * OWN_LOCK for one connection's calls, ALL_REQUESTS_LOCK for every
   * connection's (NULL: parallel).
   */
  pthread_mutex_t *call_lock;
  pthread_mutex_t own_lock;
};

/* SERIALIZE_ALL_REQUESTS (a Python plugin, say): nbdkit lets one
 * request of any connection run at a time, and the prefetch workers of
 * all connections must take turns with each other too.
 */
static pthread_mutex_t all_requests_lock = PTHREAD_MUTEX_INITIALIZER;

static void
call_begin (struct next_source *s)
{
  if (s->call_lock)
    pthread_mutex_lock (s->call_lock);
}

static void
call_end (struct next_source *s)
{
  if (s->call_lock)
    pthread_mutex_unlock (s->call_lock);
}

/* One request (or several of MAX_NEXT_REQUEST) to the plugin below. */
static int
fetch (void *opaque, void *buf, size_t count, uint64_t offset)
{
  struct next_source *s = opaque;
  char *p = buf;

  while (count > 0) {
    uint32_t n = count < MAX_NEXT_REQUEST ? count : MAX_NEXT_REQUEST;
    int err = 0, r;

    __atomic_add_fetch (&s->requests, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch (&s->bytes, n, __ATOMIC_RELAXED);
    if (s->debug_io)
      nbdkit_debug ("io: pread %" PRIu32 " bytes at %" PRIu64 " of %s%s",
                    n, offset, s->name,
                    source_cache_in_prefetch () ? " (prefetch)" : "");
    call_begin (s);
    r = s->next->pread (s->next, p, n, offset, 0, &err);
    call_end (s);
    if (r == -1) {
      errno = err ? err : EIO;
      return q2_error ("%s: read of %" PRIu32 " bytes at host offset %"
                       PRIu64 ": %m", s->name, n, offset);
    }
    p += n;
    offset += n;
    count -= n;
  }
  return 0;
}

static int
next_pread (const struct hostfile *f, void *buf, size_t count,
            uint64_t offset)
{
  struct next_source *s = f->opaque;

  /* Past the end of the source: zeros, as a local file reads them. */
  if (count > f->size - offset) {
    memset ((char *) buf + (f->size - offset), 0,
            count - (f->size - offset));
    count = f->size - offset;
  }
  if (s->cache)
    return source_cache_pread (s->cache, buf, count, offset);
  return fetch (s, buf, count, offset);
}

/* The plugin's base:allocation: data unless it says hole (the
 * nbdkit file plugin answers with SEEK_DATA/SEEK_HOLE, as qemu's file
 * driver does).
 */
static int
next_allocation (const struct hostfile *f, uint64_t offset, uint64_t max,
                 bool *is_data, uint64_t *run)
{
  struct next_source *s = f->opaque;
  uint32_t count = max < UINT32_MAX ? max : UINT32_MAX & ~UINT32_C (511);
  struct nbdkit_extents *e;
  struct nbdkit_extent x;
  int err = 0, r;

  *is_data = true;
  *run = max;
  if (!s->can_extents)
    return 0;
  if (count > f->size - offset)
    count = f->size - offset;
  e = nbdkit_extents_new (offset, offset + count);
  if (e == NULL)
    return q2_error ("%s: extents: %m", f->path);
  __atomic_add_fetch (&s->requests, 1, __ATOMIC_RELAXED);
  if (s->debug_io)
    nbdkit_debug ("io: extents %" PRIu32 " bytes at %" PRIu64 " of %s",
                  count, offset, s->name);
  call_begin (s);
  r = s->next->extents (s->next, count, offset, NBDKIT_FLAG_REQ_ONE, e, &err);
  call_end (s);
  if (r == -1) {
    nbdkit_extents_free (e);
    errno = err ? err : EIO;
    return q2_error ("%s: block status at host offset %" PRIu64 ": %m",
                     f->path, offset);
  }
  if (nbdkit_extents_count (e) > 0) {
    x = nbdkit_get_extent (e, 0);
    if (x.offset <= offset && x.offset + x.length > offset) {
      *is_data = !(x.type & NBDKIT_EXTENT_HOLE);
      *run = x.offset + x.length - offset;
    }
  }
  nbdkit_extents_free (e);
  return 0;
}

static void
next_prefetch (const struct hostfile *f, uint64_t offset, uint64_t count)
{
  struct next_source *s = f->opaque;
  int err;

  if (!s->can_cache || offset >= f->size)
    return;
  if (count > f->size - offset)
    count = f->size - offset;
  if (count > MAX_NEXT_REQUEST)
    count = MAX_NEXT_REQUEST;
  /* Advice only: its failure changes nothing. */
  call_begin (s);
  (void) s->next->cache (s->next, count, offset, 0, &err);
  call_end (s);
}

/* An internal snapshot's layer reads the same next context. */
static int
next_reopen (const struct hostfile *f, struct hostfile *out)
{
  struct next_source *s = f->opaque;

  *out = *f;
  out->path = strdup (f->path);
  if (out->path == NULL)
    return q2_error ("strdup: %m");
  __atomic_add_fetch (&s->refs, 1, __ATOMIC_RELAXED);
  return 0;
}

static void
next_close (struct hostfile *f)
{
  struct next_source *s = f->opaque;

  if (s && __atomic_sub_fetch (&s->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    source_cache_free (s->cache);
    fetch_history_put (s->history);
    pthread_mutex_destroy (&s->own_lock);
    free (s);
  }
  f->opaque = NULL;
}

static const struct hostfile_ops next_ops = {
  .pread = next_pread,
  .allocation = next_allocation,
  .prefetch = next_prefetch,
  .reopen = next_reopen,
  .close = next_close,
};

int
next_source_open (struct hostfile *f, void *next_v, const char *name,
                  uint64_t cache_bytes, bool debug_io)
{
  nbdkit_next *next = next_v;
  struct next_source *s = calloc (1, sizeof *s);
  int64_t size;

  if (s == NULL)
    return q2_error ("calloc: %m");
  s->next = next;
  s->name = name;             /* until the host file has its own copy */
  s->debug_io = debug_io;
  s->refs = 1;
  pthread_mutex_init (&s->own_lock, NULL);
  size = next->get_size (next);
  if (size == -1) {
    pthread_mutex_destroy (&s->own_lock);
    free (s);
    return NEXT_SOURCE_FAILED;
  }
  s->can_extents = next->can_extents (next) == 1;
  s->can_cache = next->can_cache (next) > NBDKIT_CACHE_NONE;
  if (cache_bytes >= SOURCE_BLOCK) {
    /* NAME names the plugin's export: the key of its history. */
    s->history = fetch_history_get (name, size);
    s->cache = source_cache_new (cache_bytes, size, s->history, fetch, s);
    if (s->history == NULL || s->cache == NULL) {
      source_cache_free (s->cache);
      fetch_history_put (s->history);
      pthread_mutex_destroy (&s->own_lock);
      free (s);
      return q2_error ("%s: source cache: %m", name);
    }
  }
  if (hostfile_open_source (f, name, size, &next_ops, s) == -1)
    return -1;
  s->name = f->path;
  return 0;
}

int
next_source_start_prefetch (const struct hostfile *f, int thread_model)
{
  struct next_source *s = f->opaque;

  if (s->cache == NULL)
    return 0;
  /* Set before the worker exists. */
  if (thread_model <= NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS)
    s->call_lock = &all_requests_lock;
  else if (thread_model == NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS)
    s->call_lock = &s->own_lock;
  if (source_cache_start_prefetch (s->cache) == -1)
    return q2_error ("%s: prefetch thread: %m", f->path);
  return 0;
}

void
next_source_stop_prefetch (const struct hostfile *f)
{
  struct next_source *s = f->opaque;

  if (s->cache)
    source_cache_stop_prefetch (s->cache);
}

void
next_source_stats (const struct hostfile *f, uint64_t *requests,
                   uint64_t *bytes)
{
  struct next_source *s = f->opaque;

  *requests = __atomic_load_n (&s->requests, __ATOMIC_RELAXED);
  *bytes = __atomic_load_n (&s->bytes, __ATOMIC_RELAXED);
}
