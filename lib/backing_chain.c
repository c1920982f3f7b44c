#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backing_chain.h"
#include "filename.h"
#include "q2_error.h"

/* ---- opening ---- */

static int
backing_format (const struct layer *parent, const char *path,
                enum layer_format *format)
{
  const char *f = parent->header.backing_format;

  if (f == NULL)                /* not recorded: probe, as qemu does */
    return layer_probe_format (path, format);
  if (strcmp (f, "qcow2") == 0)
    *format = LAYER_QCOW2;
  else if (strcmp (f, "raw") == 0)
    *format = LAYER_RAW;
  else
    return q2_error ("%s: backing format '%s' is not supported "
                     "(qcow2 and raw are)", parent->file.path, f);
  return 0;
}

/* The backing file of PARENT: its resolved path, or NULL with
 * *PATH_OUT = NULL if it has none.
 */
static int
backing_path (const struct layer *parent, char **path_out)
{
  const char *name = parent->header.backing_file;

  *path_out = NULL;
  if (parent->format != LAYER_QCOW2 || name == NULL)
    return 0;
  if (filename_has_protocol (name))
    return q2_error ("%s: backing file '%s': only local files are supported",
                     parent->file.path, name);
  *path_out = filename_resolve (parent->file.path, name);
  return *path_out ? 0 : -1;
}

/* A loop is a file already in the chain (same device and inode). */
static int
check_loop (struct chain *c, const char *path)
{
  struct stat st, lst;
  size_t i;

  if (stat (path, &st) == -1)
    return q2_error ("%s: backing file '%s': %m",
                     c->layers[c->n - 1]->file.path, path);
  for (i = 0; i < c->n; i++)
    if (fstat (c->layers[i]->file.fd, &lst) == 0 &&
        lst.st_dev == st.st_dev && lst.st_ino == st.st_ino)
      return q2_error ("%s: backing file '%s' makes a loop in the backing "
                       "chain (it is %s)", c->layers[c->n - 1]->file.path,
                       path, c->layers[i]->file.path);
  return 0;
}

static int
append_layer (struct chain *c, const char *path, enum layer_format format)
{
  struct layer *l, **p;

  if (c->n >= CHAIN_MAX_LAYERS)
    return q2_error ("%s: backing chain longer than %d layers",
                     c->layers[0]->file.path, CHAIN_MAX_LAYERS);
  l = layer_open (path, format, c->cache);
  if (l == NULL)
    return -1;
  p = realloc (c->layers, (c->n + 1) * sizeof *p);
  if (p == NULL) {
    layer_close (l);
    return q2_error ("realloc: %m");
  }
  c->layers = p;
  c->layers[c->n++] = l;
  return 0;
}

static int
open_backing_files (struct chain *c)
{
  for (;;) {
    struct layer *parent = c->layers[c->n - 1];
    enum layer_format format;
    char *path;
    int r;

    if (backing_path (parent, &path) == -1)
      return -1;
    if (path == NULL)
      return 0;
    r = check_loop (c, path);
    if (r == 0)
      r = backing_format (parent, path, &format);
    if (r == 0)
      r = append_layer (c, path, format);
    free (path);
    if (r == -1)
      return -1;
  }
}

struct chain *
chain_open (const char *path, uint64_t l2_cache_bytes)
{
  struct chain *c = calloc (1, sizeof *c);
  enum layer_format format;

  if (c == NULL) {
    q2_error ("calloc: %m");
    return NULL;
  }
  c->cache = l2_cache_new (l2_cache_bytes);
  if (c->cache == NULL)
    goto fail;
  if (layer_probe_format (path, &format) == -1)
    goto fail;
  if (format != LAYER_QCOW2) {
    q2_error ("%s: magic: not a qcow2 image", path);
    goto fail;
  }
  if (append_layer (c, path, LAYER_QCOW2) == -1 ||
      open_backing_files (c) == -1)
    goto fail;
  return c;
 fail:
  chain_close (c);
  return NULL;
}

void
chain_close (struct chain *c)
{
  size_t i;

  if (c == NULL)
    return;
  for (i = 0; i < c->n; i++)
    layer_close (c->layers[i]);
  free (c->layers);
  l2_cache_free (c->cache);
  cluster_cache_free (c->clusters);
  free (c);
}

/* Slots sized for the largest cluster of the chain. */
int
chain_enable_cluster_cache (struct chain *c, uint64_t max_bytes)
{
  size_t i, slot = 0;

  for (i = 0; i < c->n; i++)
    if (c->layers[i]->format == LAYER_QCOW2 &&
        c->layers[i]->header.cluster_size > slot)
      slot = c->layers[i]->header.cluster_size;
  if (max_bytes == 0 || slot == 0)
    return 0;
  c->clusters = cluster_cache_new (max_bytes, slot);
  if (c->clusters == NULL)
    return -1;
  for (i = 0; i < c->n; i++)
    c->layers[i]->clusters = c->clusters;
  return 0;
}

/* ---- guest bytes ---- */

/* Read from layer I of the view (falling through to I+1 for what I
 * does not allocate); past a layer's end, and past LAST, zeros.
 */
static int
read_from (struct chain *c, size_t i, size_t last, uint8_t *buf,
           uint64_t count, uint64_t offset)
{
  struct layer *l;

  while (count > 0) {
    struct run r;

    if (i > last || offset >= c->layers[i]->size) {
      memset (buf, 0, count);
      return 0;
    }
    l = c->layers[i];
    if (layer_map (l, offset, count < l->size - offset ? count
                                                        : l->size - offset,
                   &r) == -1)
      return -1;
    if (r.kind == RUN_UNALLOCATED) {
      if (read_from (c, i + 1, last, buf, r.length, offset) == -1)
        return -1;
    }
    else if (layer_read_run (l, &r, offset, buf) == -1)
      return -1;
    buf += r.length;
    offset += r.length;
    count -= r.length;
  }
  return 0;
}

int
chain_pread (struct chain *c, size_t first, size_t last,
             void *buf, uint64_t count, uint64_t offset)
{
  return read_from (c, first, last, buf, count, offset);
}

/* ---- where a range comes from ---- */

int
chain_origin (struct chain *c, size_t first, size_t last,
              uint64_t offset, uint64_t count, struct origin *o)
{
  size_t i;

  for (i = first; i <= last; i++) {
    struct layer *l = c->layers[i];

    /* qemu: a backing file shorter than its overlay answers for the
     * range beyond its end itself (zeros, allocated there).
     */
    if (offset >= l->size) {
      *o = (struct origin) { .found = true, .past_end = true, .layer = i,
                             .length = count };
      return 0;
    }
    if (count > l->size - offset)
      count = l->size - offset;
    if (layer_map (l, offset, count, &o->run) == -1)
      return -1;
    if (o->run.kind != RUN_UNALLOCATED) {
      o->found = true;
      o->past_end = false;
      o->layer = i;
      o->length = o->run.length;
      return 0;
    }
    count = o->run.length;
  }
  *o = (struct origin) { .found = false, .length = count };
  return 0;
}

/* ---- base:allocation ---- */

int
chain_run_allocation (struct chain *c, const struct origin *o,
                      uint64_t offset, bool zero_is_hole,
                      uint64_t *length, uint32_t *flags)
{
  const uint32_t zero = zero_is_hole ? CHAIN_HOLE | CHAIN_ZERO : CHAIN_ZERO;
  struct layer *l;
  bool is_data;

  *length = o->length;
  if (!o->found) {
    *flags = CHAIN_HOLE | CHAIN_ZERO;
    return 0;
  }
  if (o->past_end) {
    *flags = zero;
    return 0;
  }
  l = c->layers[o->layer];
  switch (o->run.kind) {
  case RUN_ZERO:
    *flags = zero;
    return 0;
  case RUN_COMPRESSED:
    *flags = 0;
    return 0;
  case RUN_DATA:
    *flags = 0;
    if (l->format == LAYER_RAW) {
      /* qemu's file driver: a hole in a raw file reads as zero. */
      if (hostfile_allocation (&l->file, offset, o->length,
                               &is_data, length) == -1)
        return -1;
      *flags = is_data ? 0 : zero;
    }
    else if (l->metadata_preallocated) {
      /* qemu asks the host file only for metadata-preallocated images,
       * and reports data over a host hole as zero (still allocated).
       */
      if (hostfile_allocation (l->data, o->run.host_offset, o->length,
                               &is_data, length) == -1)
        return -1;
      *flags = is_data ? 0 : CHAIN_ZERO;
    }
    return 0;
  default:
    return q2_error ("internal error: status of an unallocated run");
  }
}

int
chain_block_status (struct chain *c, size_t first, size_t last,
                    uint64_t offset, uint64_t count, bool zero_is_hole,
                    uint64_t *length, uint32_t *flags)
{
  struct origin o;

  if (chain_origin (c, first, last, offset, count, &o) == -1)
    return -1;
  return chain_run_allocation (c, &o, offset, zero_is_hole, length, flags);
}

/* ---- allocation depth ---- */

int
chain_depth (struct chain *c, size_t first, size_t last,
             uint64_t offset, uint64_t count,
             uint64_t *length, unsigned *depth)
{
  struct origin o;

  if (chain_origin (c, first, last, offset, count, &o) == -1)
    return -1;
  *length = o.length;
  *depth = o.found ? o.layer - first + 1 : 0;
  return 0;
}
