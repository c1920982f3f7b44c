/* SPDX-License-Identifier: BSD-3-Clause */
/* One pass over many overlapping tables: see l1_sweep.h. */
#include <config.h>

#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "l1_sweep.h"
#include "q2_error.h"
#include "sort_u64.h"

#define CHUNK_WORDS 8192        /* 64 KiB read at a time */

/* A min-heap of the spans met so far, by snapshot: the lowest snapshot
 * covering a position is the top, once the spans that ended before it
 * are popped (lazily: only when they reach the top).
 */
struct heap {
  const struct l1_span **v;
  size_t n;
};

static void
heap_push (struct heap *h, const struct l1_span *s)
{
  size_t i = h->n++;

  while (i > 0 && h->v[(i - 1) / 2]->snapshot > s->snapshot) {
    h->v[i] = h->v[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h->v[i] = s;
}

static void
heap_pop (struct heap *h)
{
  const struct l1_span *last = h->v[--h->n];
  size_t i = 0, c;

  while ((c = 2 * i + 1) < h->n) {
    if (c + 1 < h->n && h->v[c + 1]->snapshot < h->v[c]->snapshot)
      c++;
    if (h->v[c]->snapshot >= last->snapshot)
      break;
    h->v[i] = h->v[c];
    i = c;
  }
  if (h->n)
    h->v[i] = last;
}

/* The words of [A, B), each covered COVERAGE times, lowest SNAPSHOT. */
static int
read_words (const struct hostfile *f, uint64_t a, uint64_t b,
            uint64_t coverage, int snapshot, uint64_t *buf,
            l1_word_fn fn, void *opaque)
{
  while (a < b) {
    size_t n = (b - a) / 8 < CHUNK_WORDS ? (b - a) / 8 : CHUNK_WORDS, i;

    if (hostfile_pread (f, buf, n * 8, a) == -1)
      return -1;
    for (i = 0; i < n; i++)
      if (buf[i] && fn (opaque, a + i * 8, be64toh (buf[i]), coverage,
                        snapshot) == -1)
        return -1;
    a += n * 8;
  }
  return 0;
}

static int
compare_starts (const void *a, const void *b)
{
  const struct l1_span *x = a, *y = b;

  return x->start < y->start ? -1 : x->start > y->start;
}

/* The N spans of one alignment: a sweep over their starts and ends. */
static int
sweep (const struct hostfile *f, struct l1_span *s, size_t n,
       l1_word_fn fn, void *opaque)
{
  uint64_t *ends = malloc (n * sizeof *ends), *buf = malloc (CHUNK_WORDS * 8);
  struct heap h = { malloc (n * sizeof *h.v), 0 };
  size_t i = 0, e = 0, coverage = 0;
  uint64_t pos = 0, next;
  int r = 0;

  if (ends == NULL || buf == NULL || h.v == NULL) {
    r = q2_error ("malloc: %m");
    goto out;
  }
  qsort (s, n, sizeof *s, compare_starts);
  for (i = 0; i < n; i++)
    ends[i] = s[i].end;
  sort_u64 (ends, n);
  for (i = 0; r == 0 && (i < n || coverage > 0); pos = next) {
    if (coverage == 0)
      pos = s[i].start;
    while (e < n && ends[e] == pos) {
      coverage--;
      e++;
    }
    while (i < n && s[i].start == pos) {
      heap_push (&h, &s[i++]);
      coverage++;
    }
    next = e < n ? ends[e] : UINT64_MAX;
    if (i < n && s[i].start < next)
      next = s[i].start;
    if (coverage == 0)
      continue;
    while (h.v[0]->end <= pos)
      heap_pop (&h);
    r = read_words (f, pos, next, coverage, h.v[0]->snapshot, buf, fn,
                    opaque);
  }
 out:
  free (ends);
  free (buf);
  free (h.v);
  return r;
}

int
l1_sweep (const struct hostfile *f, struct l1_span *spans, size_t n,
          l1_word_fn fn, void *opaque)
{
  unsigned align;
  size_t i, k = 0;

  for (i = 0; i < n; i++)       /* empty tables cover nothing */
    if (spans[i].end > spans[i].start)
      spans[k++] = spans[i];
  n = k;
  /* Words are 8-byte aligned to the table's start: one sweep for each
   * alignment (tables at unaligned offsets are possible in a damaged
   * image).  Partition SPANS so that each alignment is contiguous.
   */
  for (align = 0; align < 8 && n > 0; align++) {
    k = 0;
    for (i = 0; i < n; i++)
      if (spans[i].start % 8 == align) {
        struct l1_span t = spans[k];
        spans[k++] = spans[i];
        spans[i] = t;
      }
    if (k > 0 && sweep (f, spans, k, fn, opaque) == -1)
      return -1;
    spans += k;
    n -= k;
  }
  return 0;
}
