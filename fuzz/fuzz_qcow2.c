/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer harness: do with one untrusted image what the plugin and
 * the depth filter do with it, with bounded work per input.
 *
 *  - write the input to a private directory and open it as a chain
 *    (chain_open), as the plugin's get_ready and the filter do;
 *  - the guest disk and every layer view: base:allocation and bytes
 *    at a fixed number of places spread over the disk (chain_block_status,
 *    chain_pread, chain_depth), checking that an extent said to read as
 *    zeros does;
 *  - the depth filter's depth/N views (chain_origin,
 *    chain_run_allocation) and depth.json (depth_map_json);
 *  - the container view of every qcow2 layer (file/N, file/N.json):
 *    the analysis, its JSON (which must be valid JSON), and bytes and
 *    allocation at a few places.
 *
 * Backing and external data file names must not reach outside the
 * private directory: an input whose backing or data file name holds a
 * '/' is not opened.  The directory holds the input ("input.qcow2")
 * and a small raw file ("backing.raw") that inputs may name.
 */
#include <config.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backing_chain.h"
#include "be.h"
#include "container.h"
#include "depth_map.h"
#include "map_json.h"
#include "json_budget.h"
#include "qcow2_header.h"
#include "json_valid.h"

#define L2_CACHE_BYTES (1024 * 1024)
#define SAMPLES 8                  /* places per view */
#define EXTENTS_PER_SAMPLE 3       /* extents followed from each place */
#define READ_CAP (16 * 1024)       /* bytes read per extent */
#define BACKING_RAW_SIZE (192 * 1024)

static char dir[64], input_path[96], backing_path[96];
/* As the plugin opens a chain, without locks (nothing else opens these
 * files) and without LUKS keys (encrypted layers are mapped only, as
 * the depth filter does).
 */
static const struct chain_params params = {
  .l2_cache_bytes = L2_CACHE_BYTES,
  .locking = { .locking = IMAGE_LOCKING_OFF },
  .keys_optional = true,
};
static uint8_t readbuf[READ_CAP];

static void
cleanup (void)
{
  unlink (input_path);
  unlink (backing_path);
  rmdir (dir);
}

static void
write_file (const char *path, const void *data, size_t len)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

  if (fd == -1 || (len > 0 && write (fd, data, len) != (ssize_t) len) ||
      close (fd) == -1) {
    perror (path);
    abort ();
  }
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  const char *tmp = getenv ("TMPDIR");
  static uint8_t pattern[BACKING_RAW_SIZE];
  size_t i;

  snprintf (dir, sizeof dir, "%s/qcow2map-fuzz.XXXXXX",
            tmp && strlen (tmp) < 32 ? tmp : "/tmp");
  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    abort ();
  }
  snprintf (input_path, sizeof input_path, "%s/input.qcow2", dir);
  snprintf (backing_path, sizeof backing_path, "%s/backing.raw", dir);
  /* Data with a zero stretch in the middle and a nonzero tail. */
  for (i = 0; i < sizeof pattern; i++)
    pattern[i] = (i >= 65536 && i < 131072) ? 0 : (uint8_t) (i * 7 + 1);
  write_file (backing_path, pattern, sizeof pattern);
  atexit (cleanup);
  return 0;
}

static void
fail (const char *what, uint64_t offset)
{
  fprintf (stderr, "qcow2map fuzz: %s at offset %llu\n", what,
           (unsigned long long) offset);
  abort ();
}

static bool
all_zero (const uint8_t *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

/* Would opening the input (already written to INPUT_PATH) read a
 * backing or data file outside our directory?  (Parsing fails the same
 * way chain_open would then.)
 */
static bool
names_escape (void)
{
  struct qcow2_header h = { 0 };
  struct hostfile f;
  bool escape = false;

  if (hostfile_open (&f, input_path) == -1)
    return false;
  if (qcow2_header_read (&h, &f) == 0)
    escape = (h.backing_file && strchr (h.backing_file, '/')) ||
             (h.data_file && strchr (h.data_file, '/'));
  qcow2_header_free (&h);
  hostfile_close (&f);
  return escape;
}

static void
exercise_view (struct chain *c, size_t first, size_t last, bool zero_is_hole)
{
  uint64_t size = c->layers[first]->size;
  unsigned k, j;

  for (k = 0; k < SAMPLES && size > 0; k++) {
    uint64_t offset = size / SAMPLES * k & ~UINT64_C (511);

    for (j = 0; j < EXTENTS_PER_SAMPLE && offset < size; j++) {
      uint64_t length, n;
      struct allocation a;
      unsigned depth;

      if (chain_depth (c, first, last, offset, size - offset,
                       &length, &depth) == 0 &&
          (length == 0 || length > size - offset || depth > last - first + 1))
        fail ("chain_depth: bad answer", offset);
      if (chain_block_status (c, first, last, offset, size - offset,
                              zero_is_hole, &length, &a) == -1)
        break;
      if (length == 0 || length > size - offset)
        fail ("chain_block_status: bad length", offset);
      n = length < READ_CAP ? length : READ_CAP;
      if (chain_pread (c, first, last, readbuf, n, offset) == 0 &&
          a.reads_zero && !all_zero (readbuf, n))
        fail ("extent says zero, bytes are not", offset);
      offset += length;
    }
  }
}

/* What the depth filter's depth/N views ask: the origin of each
 * extent, and its allocation when it is inside the range.
 */
static void
exercise_origins (struct chain *c)
{
  uint64_t size = c->layers[0]->size;
  unsigned k, j;

  for (k = 0; k < SAMPLES && size > 0; k++) {
    uint64_t offset = size / SAMPLES * k & ~UINT64_C (511);

    for (j = 0; j < EXTENTS_PER_SAMPLE && offset < size; j++) {
      struct origin o;
      uint64_t length, n;
      struct allocation a = ALLOCATION_HOLE;

      if (chain_origin (c, 0, c->n - 1, offset, size - offset, &o) == -1)
        break;
      if (o.length == 0 || o.length > size - offset ||
          (o.found && o.layer >= c->n))
        fail ("chain_origin: bad answer", offset);
      length = o.length;
      if (o.found &&
          chain_run_allocation (c, &o, offset, false, &length, &a) == 0 &&
          (length == 0 || length > o.length))
        fail ("chain_run_allocation: bad length", offset);
      n = length < READ_CAP ? length : READ_CAP;
      if (chain_pread (c, 0, c->n - 1, readbuf, n, offset) == 0 &&
          a.reads_zero && !all_zero (readbuf, n))
        fail ("origin says zero, bytes are not", offset);
      offset += length;
    }
  }
}

static void
exercise_container (struct layer *l)
{
  struct container *c = container_open (l);
  uint64_t size = l->file.size;
  unsigned k;

  if (c == NULL)
    return;
  if (!json_valid (c->json, c->json_len)) {
    fwrite (c->json, 1, c->json_len, stderr);
    fail ("file/N.json is not valid JSON", 0);
  }
  for (k = 0; k < SAMPLES && size > 0; k++) {
    uint64_t offset = size / SAMPLES * k, length, n;
    struct allocation a;

    if (container_block_status (c, offset, size - offset, &length,
                                &a) == -1)
      continue;
    if (length == 0 || length > size - offset)
      fail ("container_block_status: bad length", offset);
    n = length < READ_CAP ? length : READ_CAP;
    if (container_pread (c, readbuf, n, offset) == 0 &&
        a.reads_zero && !all_zero (readbuf, n))
      fail ("container extent says zero, bytes are not", offset);
  }
  container_close (c);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct chain *c;
  char *json;
  size_t i, json_len;

  write_file (input_path, data, size);
  if (names_escape ())
    return -1;                  /* not added to the corpus */
  c = chain_open (input_path, &params);
  if (c == NULL)
    return 0;

  if (chain_enable_cluster_cache (c, L2_CACHE_BYTES) == -1) {
    chain_close (c);
    return 0;
  }
  exercise_view (c, 0, c->n - 1, true);          /* the guest disk */
  for (i = 0; i < c->n; i++)
    exercise_view (c, i, i, false);              /* layer/N */

  exercise_origins (c);                          /* depth/N */
  json = depth_map_json (c, &json_len);          /* depth.json */
  if (json && !json_valid (json, json_len))
    fail ("depth.json is not valid JSON", 0);
  if (json)
    json_budget_uncharge (json_len);
  free (json);
  /* map.json walks the whole disk: bounded work only for small ones. */
  if (c->layers[0]->size <= (UINT64_C (1) << 32) &&
      map_json_build (c, 0, c->n - 1, &json, &json_len) == 0) { /* map.json */
    if (!json_valid (json, json_len))
      fail ("map.json is not valid JSON", 0);
    json_budget_uncharge (json_len);
    free (json);
  }

  for (i = 0; i < c->n; i++)
    if (c->layers[i]->format == LAYER_QCOW2)
      exercise_container (c->layers[i]);         /* file/N, file/N.json */

  chain_close (c);
  return 0;
}
