/* SPDX-License-Identifier: BSD-3-Clause */
/* lib/l1_sweep.c against a brute force: random sets of overlapping
 * spans (some unaligned, some empty, some past the end of the file)
 * over a file of random words (a quarter of them zero); every non-zero
 * word must be reported once per alignment class it is covered in, with
 * the number of spans covering it and the lowest of their snapshots.
 */
#include <config.h>

#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "l1_sweep.h"
#include "unit.h"

#define FILE_BYTES 4096
#define MAX_SPANS 40

struct seen {
  uint64_t coverage[8][FILE_BYTES / 8 + 1];
  int snapshot[8][FILE_BYTES / 8 + 1];
  int calls, bad_value;
  const uint8_t *bytes;
};

static int
record (void *opaque, uint64_t pos, uint64_t value, uint64_t coverage,
        int snapshot)
{
  struct seen *s = opaque;
  uint64_t expect = 0;

  if (pos + 8 <= FILE_BYTES)
    memcpy (&expect, s->bytes + pos, 8);
  else if (pos < FILE_BYTES)
    memcpy (&expect, s->bytes + pos, FILE_BYTES - pos);
  if (be64toh (expect) != value)
    s->bad_value++;
  s->coverage[pos % 8][pos / 8] += coverage;
  s->snapshot[pos % 8][pos / 8] = snapshot;
  s->calls++;
  return 0;
}

int
main (void)
{
  char path[] = "/tmp/unit-l1-sweep.XXXXXX";
  uint8_t bytes[FILE_BYTES];
  struct hostfile f;
  int fd = mkstemp (path), round, i;

  srand (42);
  for (i = 0; i < FILE_BYTES; i++)
    bytes[i] = (i / 8) % 4 == 0 ? 0 : rand ();
  if (fd == -1 || write (fd, bytes, FILE_BYTES) != FILE_BYTES ||
      hostfile_open (&f, path) == -1) {
    perror (path);
    return 1;
  }
  for (round = 0; round < 200; round++) {
    static struct seen s;
    struct l1_span spans[MAX_SPANS];
    int n = 1 + rand () % MAX_SPANS, k, bad = 0, expected_calls = 0;
    uint64_t pos;

    memset (&s, 0, sizeof s);
    s.bytes = bytes;
    for (k = 0; k < n; k++) {
      uint64_t start = rand () % 8 == 0 ? rand () % FILE_BYTES
                                         : 8 * (rand () % (FILE_BYTES / 8));
      uint64_t len = 8 * (rand () % 64);

      if (start + len > FILE_BYTES)   /* as the walk clips them */
        len = (FILE_BYTES - start + 7) / 8 * 8;
      spans[k] = (struct l1_span) { start, start + len, rand () % 1000 };
    }
    struct l1_span copy[MAX_SPANS];
    memcpy (copy, spans, sizeof copy);
    if (l1_sweep (&f, spans, n, record, &s) == -1)
      bad++;
    /* Brute force, per alignment class and word. */
    for (pos = 0; pos < FILE_BYTES; pos++) {
      uint64_t cov = 0, v = 0;
      int low = -1;

      for (k = 0; k < n; k++)
        if (copy[k].start % 8 == pos % 8 && copy[k].start <= pos &&
            pos < copy[k].end) {
          cov++;
          if (low == -1 || copy[k].snapshot < low)
            low = copy[k].snapshot;
        }
      if (pos + 8 <= FILE_BYTES)
        memcpy (&v, bytes + pos, 8);
      else
        memcpy (&v, bytes + pos, FILE_BYTES - pos);
      if (cov == 0 || v == 0)
        cov = 0, low = 0;
      else
        expected_calls++;
      if (s.coverage[pos % 8][pos / 8] != cov ||
          (cov && s.snapshot[pos % 8][pos / 8] != low))
        bad++;
    }
    CHECK (bad == 0 && s.bad_value == 0 && s.calls == expected_calls,
           "round %d: %d spans, %d words reported once each with their "
           "coverage and lowest snapshot", round, n, s.calls);
  }
  hostfile_close (&f);
  unlink (path);
  return failures != 0;
}
