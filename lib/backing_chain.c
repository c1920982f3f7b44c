/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backing_chain.h"
#include "qcow2_geometry.h"
#include "filename.h"
#include "q2_error.h"

/* ---- opening ---- */

static int
recorded_format (const struct layer *parent, const char *path,
                 enum layer_format *format)
{
  const char *f = parent->header.backing_format;

  if (f == NULL)                /* not recorded: probe, as qemu does */
    return layer_probe_format (path, format);
  if (layer_format_by_name (f, format) == -1)
    return q2_error ("%s: backing format '%s' is not supported "
                     "(qcow2, raw and file are)", path, f);
  return 0;
}

/* The format of PARENT's backing file PATH: backing-format.N= if
 * given; probed if backing.N= replaced the file (qemu probes a file
 * named in json: without a driver); else what PARENT records.
 */
static int
backing_format (const struct layer *parent, const struct layer_params *lp,
                const char *path, enum layer_format *format)
{
  if (lp && lp->backing_format)   /* checked by chain_params_set */
    return layer_format_by_name (lp->backing_format, format);
  if (lp && lp->backing_set)
    return layer_probe_format (path, format);
  return recorded_format (parent, path, format);
}

/* ".N" for messages about layer N (one static buffer: one use per
 * message).
 */
static const char *
n_suffix (size_t n)
{
  static __thread char buf[24];

  snprintf (buf, sizeof buf, ".%zu", n);
  return buf;
}

/* The backing file of PARENT (layer N): its resolved path, or NULL
 * with *PATH_OUT = NULL if it has none.  backing.N= overrides what the
 * image records.
 */
static int
backing_path (const struct layer *parent, size_t n,
              const struct layer_params *lp, char **path_out)
{
  const char *name = parent->header.backing_file;
  enum layer_format format;

  *path_out = NULL;
  if (lp && lp->backing_set) {
    if (parent->format != LAYER_QCOW2)
      return q2_error ("backing.%zu=: layer %zu (%s) is a raw image: it "
                       "has no backing file to replace",
                       n, n, parent->file.path);
    if (lp->backing == NULL)
      return 0;
    *path_out = strdup (lp->backing);
    return *path_out ? 0 : q2_error ("strdup: %m");
  }
  if (parent->format != LAYER_QCOW2 || name == NULL)
    return 0;
  /* Through the filter the backing file cannot be opened; a recorded
   * format that no backing file could have is the first cause to name.
   */
  if (!hostfile_is_local (&parent->file) &&
      parent->header.backing_format != NULL &&
      layer_format_by_name (parent->header.backing_format, &format) == -1)
    return q2_error ("%s: backing file '%s': backing format '%s' is not "
                     "supported (qcow2, raw and file are)", parent->file.path,
                     name, parent->header.backing_format);
  if (!hostfile_is_local (&parent->file))
    return q2_error ("%s: backing file '%s': the qcow2map filter reads only "
                     "the image its plugin serves: give the backing file "
                     "with backing%s=PATH (a local file), or backing%s= "
                     "for none", parent->file.path, name,
                     n == 1 ? "" : n_suffix (n), n == 1 ? "" : n_suffix (n));
  if (filename_has_protocol (name)) {
    bool not_file;

    *path_out = filename_file_protocol (name, &not_file);
    if (not_file)
      return q2_error ("%s: backing file '%s': only local files are "
                       "supported", parent->file.path, name);
    return *path_out ? 0 : -1;
  }
  *path_out = filename_resolve (parent->file.path, name);
  return *path_out ? 0 : -1;
}

/* A loop is a file already in the chain (same device and inode)
 * opened again as qcow2 (QCOW2; the file must exist in any case).
 */
static int
check_loop (struct chain *c, const char *path, bool qcow2)
{
  struct stat st, lst;
  size_t i;

  if (stat (path, &st) == -1)
    return q2_error ("%s: backing file '%s': %m",
                     c->layers[c->n - 1]->file.path, path);
  for (i = 0; qcow2 && i < c->n; i++)
    if (hostfile_is_local (&c->layers[i]->file) &&
        fstat (c->layers[i]->file.fd, &lst) == 0 &&
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
  l = layer_open (path, format, c->cache, &c->locking);
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
open_backing_files (struct chain *c, const struct chain_params *p)
{
  for (;;) {
    struct layer *parent = c->layers[c->n - 1];
    const struct layer_params *lp = chain_params_layer (p, c->n);
    enum layer_format format;
    char *path;
    int r;

    if (backing_path (parent, c->n, lp, &path) == -1)
      return -1;
    if (path == NULL) {
      if (lp && lp->backing_format)
        return q2_error ("backing-format.%zu=%s: layer %zu (%s) has no "
                         "backing file", c->n, lp->backing_format, c->n,
                         parent->file.path);
      return 0;
    }
    /* A raw layer ends the chain: qemu opens a file of the chain again
     * as raw bytes (its guest then starts with the qcow2 header), so
     * only a file opened again as qcow2 makes a loop.
     */
    if (check_loop (c, path, false) == -1)
      r = -2;                   /* its own message */
    else if (backing_format (parent, lp, path, &format) == -1)
      r = -1;
    else if (check_loop (c, path, format == LAYER_QCOW2) == -1)
      r = -2;
    else
      r = append_layer (c, path, format);
    if (r == -1)
      r = q2_error ("backing file of %s: %s",  /* whose backing file */
                    parent->file.path, q2_last_error ());
    free (path);
    if (r < 0)
      return -1;
  }
}

/* Bytes of L2 slices needed to cache every L2 table that layer L can
 * reference for its virtual size: as in qemu (read_cache_sizes), a
 * larger l2-cache-size is capped to this, so that a generous setting
 * costs nothing on a small image.
 */
static uint64_t
l2_bytes_needed (const struct layer *l)
{
  const struct qcow2_header *h = &l->header;
  uint64_t table_span, tables, slice;

  if (l->format != LAYER_QCOW2)
    return 0;
  table_span = l2_table_span (h);
  tables = l->size / table_span + (l->size % table_span != 0);
  slice = h->cluster_size < L2_SLICE_BYTES ? h->cluster_size : L2_SLICE_BYTES;
  /* each table is cluster_size bytes, cached in slices */
  return tables * (h->cluster_size / slice) * L2_SLICE_BYTES;
}

/* Create the L2 cache once every layer is open (no layer reads an L2
 * table while it opens), sized min(REQUESTED, what the chain needs).
 */
static int
create_l2_cache (struct chain *c, uint64_t requested)
{
  uint64_t needed = 0;
  size_t i;

  for (i = 0; i < c->n; i++)
    needed += l2_bytes_needed (c->layers[i]);
  c->cache = l2_cache_new (needed < requested ? needed : requested);
  if (c->cache == NULL)
    return -1;
  for (i = 0; i < c->n; i++)
    c->layers[i]->cache = c->cache;
  return 0;
}

/* Every per-layer parameter must name a layer of the chain: a typo in
 * N must not be silently ignored.
 */
static int
check_params_used (const struct chain *c, const struct chain_params *p)
{
  size_t n;

  for (n = c->n + 1; n <= p->n; n++) {
    const struct layer_params *lp = chain_params_layer (p, n);
    const char *key = lp->backing_set ? "backing" :
                      lp->backing_format ? "backing-format" :
                      lp->passphrase ? "passphrase" : NULL;
    if (key)
      return q2_error ("%s.%zu=: %s has only %zu layer(s)",
                       key, n, c->layers[0]->file.path, c->n);
  }
  return 0;
}

/* Unlock every encrypted layer with passphrase.N= or passphrase=.  A
 * layer without a key is refused unless P->keys_optional; a key for a
 * layer that is not encrypted is refused (it is surely a mistake).
 */
static int
unlock_layers (struct chain *c, const struct chain_params *p)
{
  bool any_encrypted = false;
  size_t i;

  for (i = 0; i < c->n; i++) {
    struct layer *l = c->layers[i];
    const struct layer_params *lp = chain_params_layer (p, i + 1);
    const char *key = lp && lp->passphrase ? lp->passphrase : p->passphrase;

    if (l->format != LAYER_QCOW2 ||
        l->header.crypt_method == QCOW2_CRYPT_NONE) {
      if (lp && lp->passphrase)
        return q2_error ("passphrase.%zu=: layer %zu (%s) is not encrypted",
                         i + 1, i + 1, l->file.path);
      continue;
    }
    any_encrypted = true;
    if (key == NULL) {
      if (p->keys_optional)
        continue;
      return q2_error ("%s is encrypted: give passphrase= (or "
                       "passphrase.%zu= for layer %zu alone)",
                       l->file.path, i + 1, i + 1);
    }
    if (layer_unlock (l, key) == -1)
      return -1;
  }
  if (p->passphrase && !any_encrypted)
    return q2_error ("passphrase=: no layer of %s is encrypted",
                     c->layers[0]->file.path);
  return 0;
}

struct chain *
chain_open_file (struct hostfile *top, const struct chain_params *p)
{
  struct chain *c = calloc (1, sizeof *c);
  enum layer_format format;
  struct layer **layers;

  if (c == NULL) {
    q2_error ("calloc: %m");
    hostfile_close (top);
    return NULL;
  }
  c->locking = p->locking;
  if (layer_probe_file (top, &format) == -1) {
    hostfile_close (top);
    goto fail;
  }
  if (format != LAYER_QCOW2) {
    q2_error ("%s: magic: not a qcow2 image", top->path);
    hostfile_close (top);
    goto fail;
  }
  layers = malloc (sizeof *layers);
  if (layers == NULL) {
    q2_error ("malloc: %m");
    hostfile_close (top);
    goto fail;
  }
  c->layers = layers;
  c->layers[0] = layer_open_file (top, LAYER_QCOW2, c->cache, &c->locking);
  if (c->layers[0] == NULL)
    goto fail;
  c->n = 1;
  if (open_backing_files (c, p) == -1 ||
      check_params_used (c, p) == -1 ||
      create_l2_cache (c, p->l2_cache_bytes) == -1 ||
      unlock_layers (c, p) == -1)
    goto fail;
  return c;
 fail:
  chain_close (c);
  return NULL;
}

struct chain *
chain_open (const char *path, const struct chain_params *p)
{
  struct hostfile top;

  if (hostfile_open (&top, path) == -1)
    return NULL;
  return chain_open_file (&top, p);
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
                      uint64_t *length, struct allocation *a)
{
  const struct allocation data = { .allocated = true, .reads_zero = false };
  const struct allocation zero = { .allocated = !zero_is_hole,
                                   .reads_zero = true };
  struct layer *l;
  bool is_data;

  *length = o->length;
  if (!o->found) {
    *a = ALLOCATION_HOLE;
    return 0;
  }
  if (o->past_end) {
    *a = zero;
    return 0;
  }
  l = c->layers[o->layer];
  switch (o->run.kind) {
  case RUN_ZERO:
    *a = zero;
    return 0;
  case RUN_COMPRESSED:
    *a = data;
    return 0;
  case RUN_DATA:
    *a = data;
    if (l->format == LAYER_RAW) {
      /* qemu's file driver: a hole in a raw file reads as zero. */
      if (hostfile_allocation (&l->file, offset, o->length,
                               &is_data, length) == -1)
        return -1;
      *a = is_data ? data : zero;
    }
    else if (l->metadata_preallocated) {
      /* qemu asks the host file only for metadata-preallocated images,
       * and reports data over a host hole as zero (still allocated).
       */
      if (hostfile_allocation (l->data, o->run.host_offset, o->length,
                               &is_data, length) == -1)
        return -1;
      a->reads_zero = !is_data;
    }
    return 0;
  default:
    return q2_error ("internal error: status of an unallocated run");
  }
}

int
chain_block_status (struct chain *c, size_t first, size_t last,
                    uint64_t offset, uint64_t count, bool zero_is_hole,
                    uint64_t *length, struct allocation *a)
{
  struct origin o;

  if (chain_origin (c, first, last, offset, count, &o) == -1)
    return -1;
  return chain_run_allocation (c, &o, offset, zero_is_hole, length, a);
}

/* ---- allocation depth ---- */

unsigned
chain_origin_depth (const struct origin *o, size_t first)
{
  return o->found ? o->layer - first + 1 : 0;
}

int
chain_depth (struct chain *c, size_t first, size_t last,
             uint64_t offset, uint64_t count,
             uint64_t *length, unsigned *depth)
{
  struct origin o;

  if (chain_origin (c, first, last, offset, count, &o) == -1)
    return -1;
  *length = o.length;
  *depth = chain_origin_depth (&o, first);
  return 0;
}
