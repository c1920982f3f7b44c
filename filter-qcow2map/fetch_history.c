/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fetch_history.h"

struct range {
  uint64_t first, end;     /* blocks [first, end) */
  uint64_t stamp;          /* when last extended (for forgetting) */
};

struct fetch_history {
  struct fetch_history *next_export;   /* in the list of exports */
  char *source;
  uint64_t size;
  unsigned refs;                       /* under exports_lock */
  pthread_mutex_t lock;
  struct range ranges[FETCH_HISTORY_RANGES];
  size_t n;
  uint64_t clock;
  /* The members (source caches).  Its own lock: a member asked holds
   * its own lock, and a member holding its lock calls the functions
   * above.
   */
  pthread_mutex_t members_lock;
  void **members;
  size_t n_members;
};

/* The histories of the exports that some connection has open. */
static pthread_mutex_t exports_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fetch_history *exports;

struct fetch_history *
fetch_history_get (const char *source, uint64_t size)
{
  struct fetch_history *h;

  pthread_mutex_lock (&exports_lock);
  for (h = exports; h; h = h->next_export)
    if (strcmp (h->source, source) == 0 && h->size == size)
      break;
  if (h == NULL && (h = calloc (1, sizeof *h)) != NULL) {
    h->source = strdup (source);
    if (h->source == NULL) {
      free (h);
      h = NULL;
    }
    else {
      h->size = size;
      pthread_mutex_init (&h->lock, NULL);
      pthread_mutex_init (&h->members_lock, NULL);
      h->next_export = exports;
      exports = h;
    }
  }
  if (h)
    h->refs++;
  pthread_mutex_unlock (&exports_lock);
  return h;
}

/* The last holder forgets it: a later client may read a replaced file. */
void
fetch_history_put (struct fetch_history *h)
{
  struct fetch_history **p;

  if (h == NULL)
    return;
  pthread_mutex_lock (&exports_lock);
  if (--h->refs > 0) {
    pthread_mutex_unlock (&exports_lock);
    return;
  }
  for (p = &exports; *p != h; p = &(*p)->next_export)
    ;
  *p = h->next_export;
  pthread_mutex_unlock (&exports_lock);
  pthread_mutex_destroy (&h->lock);
  pthread_mutex_destroy (&h->members_lock);
  free (h->members);
  free (h->source);
  free (h);
}

/* Merge range I with every other range it touches. */
static void
merge_touching (struct fetch_history *h, size_t i)
{
  size_t j = 0;

  while (j < h->n) {
    struct range *a = &h->ranges[i], *b = &h->ranges[j];
    if (j == i || b->first > a->end || a->first > b->end) {
      j++;
      continue;
    }
    a->first = a->first < b->first ? a->first : b->first;
    a->end = a->end > b->end ? a->end : b->end;
    /* Remove B: the last range takes its place.  A has grown: look
     * at every range again.
     */
    h->ranges[j] = h->ranges[--h->n];
    if (i == h->n)
      i = j;
    j = 0;
  }
}

void
fetch_history_add (struct fetch_history *h, uint64_t first, uint64_t n)
{
  size_t i, oldest = 0;

  pthread_mutex_lock (&h->lock);
  h->clock++;
  for (i = 0; i < h->n; i++)
    if (first <= h->ranges[i].end && h->ranges[i].first <= first + n)
      break;
  if (i == h->n) {
    if (h->n < FETCH_HISTORY_RANGES)
      h->n++;
    else {
      for (i = 1; i < h->n; i++)
        if (h->ranges[i].stamp < h->ranges[oldest].stamp)
          oldest = i;
      i = oldest;
    }
    h->ranges[i].first = first;
    h->ranges[i].end = first + n;
  }
  else {
    if (first < h->ranges[i].first)
      h->ranges[i].first = first;
    if (first + n > h->ranges[i].end)
      h->ranges[i].end = first + n;
  }
  h->ranges[i].stamp = h->clock;
  merge_touching (h, i);
  pthread_mutex_unlock (&h->lock);
}

uint64_t
fetch_history_limit (struct fetch_history *h, uint64_t first, uint64_t n,
                     bool *seen)
{
  size_t i;

  *seen = false;
  pthread_mutex_lock (&h->lock);
  for (i = 0; i < h->n; i++) {
    const struct range *r = &h->ranges[i];
    if (r->first <= first && first < r->end) {
      pthread_mutex_unlock (&h->lock);
      *seen = true;
      return n;
    }
    if (r->first > first && r->first < first + n)
      n = r->first - first;
  }
  pthread_mutex_unlock (&h->lock);
  return n;
}

int
fetch_history_join (struct fetch_history *h, void *member)
{
  void **m;

  pthread_mutex_lock (&h->members_lock);
  m = realloc (h->members, (h->n_members + 1) * sizeof *m);
  if (m == NULL) {
    pthread_mutex_unlock (&h->members_lock);
    return -1;
  }
  h->members = m;
  h->members[h->n_members++] = member;
  pthread_mutex_unlock (&h->members_lock);
  return 0;
}

void
fetch_history_leave (struct fetch_history *h, void *member)
{
  size_t i;

  pthread_mutex_lock (&h->members_lock);
  for (i = 0; i < h->n_members; i++)
    if (h->members[i] == member) {
      h->members[i] = h->members[--h->n_members];
      break;
    }
  pthread_mutex_unlock (&h->members_lock);
}

bool
fetch_history_ask_peers (struct fetch_history *h, void *self,
                         bool (*ask) (void *member, void *arg), void *arg)
{
  bool found = false;
  size_t i;

  pthread_mutex_lock (&h->members_lock);
  for (i = 0; !found && i < h->n_members; i++)
    if (h->members[i] != self)
      found = ask (h->members[i], arg);
  pthread_mutex_unlock (&h->members_lock);
  return found;
}
