/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* nbdkit's common API (nbdkit_error, nbdkit_add_extent, ...) is the
 * same for plugins and filters; this file is linked into both.
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "served_image.h"
#include "nbd_extents.h"
#include "bitmap.h"
#include "chain_prefetch.h"
#include "cluster_cache.h"
#include "json_pad.h"
#include "l2_cache.h"
#include "luks.h"
#include "map_json.h"
#include "q2_error.h"

/* ---- the image ---- */

static void
describe_chain (const struct chain *chain)
{
  size_t i;

  for (i = 0; i < chain->n; i++) {
    const struct layer *l = chain->layers[i];
    nbdkit_debug ("layer %zu: %s: %s, size %" PRIu64 ", cluster size %" PRIu64
                  "%s%s%s%s", i + 1, l->file.path,
                  l->format == LAYER_RAW ? "raw" : "qcow2", l->size,
                  l->format == LAYER_RAW ? 0 : l->header.cluster_size,
                  l->header.extended_l2 ? ", extended L2" : "",
                  l->metadata_preallocated ? ", metadata preallocated" : "",
                  l->crypto ? ", LUKS " : "",
                  l->crypto ? luks_describe (l->crypto) : "");
  }
}

static void
warn_flags (const struct chain *chain)
{
  size_t i;

  for (i = 0; i < chain->n; i++) {
    const struct layer *l = chain->layers[i];
    /* nbdkit has no warning call: like qemu, say it on stderr. */
    if (l->header.incompatible_features & QCOW2_INCOMPAT_CORRUPT)
      fprintf (stderr, "nbdkit: qcow2map: warning: %s is marked corrupt; "
               "serving it read-only\n", l->file.path);
  }
}

struct served_image *
served_image_new (struct chain *chain, bool debug_chain)
{
  struct served_image *img = calloc (1, sizeof *img);

  if (img == NULL) {
    nbdkit_error ("calloc: %m");
    chain_close (chain);
    return NULL;
  }
  pthread_mutex_init (&img->lock, NULL);
  img->chain = chain;
  img->sources.chain = chain;
  /* The top image's snapshot table and bitmap directory: read and
   * checked as qemu does when the layer was opened.
   */
  img->sources.snapshots = &chain->layers[0]->snapshots;
  img->sources.bitmaps = &chain->layers[0]->bitmaps;
  warn_flags (chain);
  if (debug_chain)
    describe_chain (chain);
  return img;
}

static void
free_docs (struct json_doc *slots, size_t n)
{
  size_t i;

  for (i = 0; slots && i < n; i++)
    free (slots[i].text);
  free (slots);
}

void
served_image_free (struct served_image *img)
{
  size_t i;

  if (img == NULL)
    return;
  for (i = 0; img->containers && i < img->chain->n; i++)
    container_close (img->containers[i]);
  free (img->containers);
  free_docs (img->map_docs, img->chain->n + 1);
  free_docs (img->bitmap_docs, img->sources.bitmaps->count);
  for (i = 0; img->snapshot_chains && i < img->sources.snapshots->count; i++)
    snapshot_chain_close (img->snapshot_chains[i]);
  free (img->snapshot_chains);
  chain_close (img->chain);
  pthread_mutex_destroy (&img->lock);
  free (img);
}

void
served_image_debug_caches (const struct served_image *img)
{
  uint64_t hits, misses, waits;
  size_t slots, slot_bytes;

  l2_cache_stats (img->chain->cache, &hits, &misses, &slots);
  nbdkit_debug ("L2 cache: %" PRIu64 " hits, %" PRIu64 " misses, "
                "%zu slices of %d bytes", hits, misses, slots,
                L2_SLICE_BYTES);
  cluster_cache_stats (img->chain->clusters, &hits, &misses, &waits, &slots,
                       &slot_bytes);
  nbdkit_debug ("compressed cluster cache: %" PRIu64 " hits (%" PRIu64
                " waited for another reader's inflate), %" PRIu64
                " misses, %zu slots of %zu bytes",
                hits, waits, misses, slots, slot_bytes);
}

/* ---- what views build on first use ---- */

/* Container views are analysed (metadata walk, refcount check) on
 * first use, once per layer.
 */
static struct container *
get_container (struct served_image *img, size_t layer)
{
  struct container *c;

  pthread_mutex_lock (&img->lock);
  if (img->containers == NULL)
    img->containers = calloc (img->chain->n, sizeof *img->containers);
  if (img->containers == NULL) {
    nbdkit_error ("calloc: %m");
    c = NULL;
  }
  else if ((c = img->containers[layer]) == NULL) {
    c = container_open (img->chain->layers[layer]);
    if (c && json_pad (&c->json, &c->json_len) == -1) {
      container_close (c);
      c = NULL;
    }
    if (c == NULL)
      nbdkit_error ("%s", q2_last_error ());
    img->containers[layer] = c;
  }
  pthread_mutex_unlock (&img->lock);
  return c;
}

static char *
build_map_doc (struct served_image *img, size_t i, size_t *len)
{
  struct chain *chain = img->chain;
  char *text;
  int r = i == 0 ? map_json_build (chain, 0, chain->n - 1, &text, len)
                 : map_json_build (chain, i - 1, i - 1, &text, len);
  return r == -1 ? NULL : text;
}

static char *
build_bitmap_doc (struct served_image *img, size_t i, size_t *len)
{
  return bitmap_json (img->chain->layers[0], &img->sources.bitmaps->entries[i],
                      len);
}

/* Slot I of the N documents *SLOTS, built by BUILD if not yet. */
static const struct json_doc *
get_doc (struct served_image *img, struct json_doc **slots, size_t n,
         size_t i,
         char *(*build) (struct served_image *img, size_t i,
                         size_t *len))
{
  struct json_doc *d = NULL;

  pthread_mutex_lock (&img->lock);
  if (*slots == NULL)
    *slots = calloc (n, sizeof **slots);
  if (*slots == NULL)
    nbdkit_error ("calloc: %m");
  else if ((*slots)[i].text == NULL &&
           (((*slots)[i].text = build (img, i, &(*slots)[i].len)) == NULL ||
            json_pad (&(*slots)[i].text, &(*slots)[i].len) == -1)) {
    nbdkit_error ("%s", q2_last_error ());
    free ((*slots)[i].text);
    (*slots)[i].text = NULL;
  }
  else
    d = &(*slots)[i];
  pthread_mutex_unlock (&img->lock);
  return d;
}

static struct chain *
get_snapshot_chain (struct served_image *img, size_t i)
{
  const struct qcow2_snapshot_table *t = img->sources.snapshots;
  struct chain *sc = NULL;

  pthread_mutex_lock (&img->lock);
  if (img->snapshot_chains == NULL)
    img->snapshot_chains = calloc (t->count, sizeof *img->snapshot_chains);
  if (img->snapshot_chains == NULL)
    nbdkit_error ("calloc: %m");
  else if ((sc = img->snapshot_chains[i]) == NULL) {
    sc = img->snapshot_chains[i] = snapshot_chain_open (img->chain,
                                                        &t->entries[i]);
    if (sc == NULL)
      nbdkit_error ("%s", q2_last_error ());
  }
  pthread_mutex_unlock (&img->lock);
  return sc;
}

/* ---- views ---- */

/* qemu serves no bitmap that was not saved cleanly (IN_USE flag). */
static int
check_bitmap_usable (const struct served_image *img, size_t i)
{
  const struct qcow2_bitmap *b = &img->sources.bitmaps->entries[i];

  if (b->flags & QCOW2_BITMAP_IN_USE) {
    nbdkit_error ("%s: Bitmap '%s' is inconsistent and cannot be used",
                  img->chain->layers[0]->file.path, b->name);
    return -1;
  }
  return 0;
}

/* Find (or build) what the view of H serves.  Returns 0 or -1 (error
 * already reported).
 */
static int
attach_view (struct view_handle *h)
{
  struct served_image *img = h->img;
  struct chain *chain = img->chain;
  const struct json_doc *d;

  h->chain = chain;
  h->first = h->view.layer;
  h->last = h->view.kind == VIEW_GUEST ? chain->n - 1 : h->view.layer;
  switch (h->view.kind) {
  case VIEW_SNAPSHOT:
    h->chain = get_snapshot_chain (img, h->view.index);
    h->last = chain->n - 1;
    return h->chain ? 0 : -1;
  case VIEW_BITMAP:
    h->last = chain->n - 1;
    return check_bitmap_usable (img, h->view.index);
  case VIEW_FILE:
  case VIEW_FILE_JSON:
    h->container = get_container (img, h->view.layer);
    if (h->container == NULL)
      return -1;
    if (h->view.kind == VIEW_FILE_JSON) {
      h->json = h->container->json;
      h->json_len = h->container->json_len;
    }
    return 0;
  case VIEW_MAP_JSON:
  case VIEW_LAYER_MAP_JSON:
  case VIEW_BITMAP_JSON:
    if (h->view.kind == VIEW_BITMAP_JSON) {
      if (check_bitmap_usable (img, h->view.index) == -1)
        return -1;
      d = get_doc (img, &img->bitmap_docs, img->sources.bitmaps->count,
                   h->view.index, build_bitmap_doc);
    }
    else
      d = get_doc (img, &img->map_docs, chain->n + 1,
                   h->view.kind == VIEW_MAP_JSON ? 0 : h->view.layer + 1,
                   build_map_doc);
    if (d == NULL)
      return -1;
    h->json = d->text;
    h->json_len = d->len;
    return 0;
  default:
    return 0;
  }
}

int
view_handle_open (struct view_handle *h, struct served_image *img,
                  const char *name, const char *source)
{
  *h = (struct view_handle) { .img = img };
  if (view_parse (&img->sources, name, &h->view) == -1) {
    nbdkit_error ("%s: export '%s' not found (see nbdinfo --list)",
                  source, name);
    return -1;
  }
  return attach_view (h);
}

static bool
is_json_view (const struct view_handle *h)
{
  return h->json != NULL;
}

int64_t
view_handle_size (const struct view_handle *h)
{
  const struct layer *l = h->img->chain->layers[h->first];

  if (is_json_view (h))
    return h->json_len;
  if (h->view.kind == VIEW_FILE)
    return l->file.size;
  return l->size;
}

void
view_handle_block_size (const struct view_handle *h, uint32_t *minimum,
                        uint32_t *preferred, uint32_t *maximum)
{
  const struct layer *top = h->img->chain->layers[h->first];

  *minimum = 1;
  *preferred = top->format == LAYER_QCOW2 ? top->header.cluster_size : 4096;
  if (*preferred < 512)
    *preferred = 512;
  *maximum = 0xffffffff;
}

const char *
view_handle_description (const struct view_handle *h)
{
  char *s = view_describe (&h->img->sources, &h->view);
  const char *r = s ? nbdkit_strdup_intern (s) : NULL;

  free (s);
  return r;
}

/* The guest disk where bitmap I is dirty, zeros elsewhere. */
static int
bitmap_view_pread (struct view_handle *h, uint8_t *buf, uint64_t count,
                   uint64_t offset)
{
  struct chain *chain = h->img->chain;
  const struct qcow2_bitmap *b = &h->img->sources.bitmaps->entries[h->view.index];

  while (count > 0) {
    uint64_t length;
    bool dirty;

    if (bitmap_dirty (chain->layers[0], b, offset, count, &dirty,
                      &length) == -1)
      return -1;
    if (!dirty)
      memset (buf, 0, length);
    else if (chain_pread (chain, 0, chain->n - 1, buf, length, offset) == -1)
      return -1;
    buf += length;
    offset += length;
    count -= length;
  }
  return 0;
}

/* Extents of a bitmap view: where clean, HOLE+ZERO; where dirty, the
 * guest's HOLE bit but never ZERO, so that a copy that skips zero
 * extents (nbdcopy --destination-is-zero) still copies every changed
 * range, including one the guest has zeroed since.
 */
static int
bitmap_view_block_status (struct view_handle *h, uint64_t offset,
                          uint64_t count, uint64_t *length,
                          struct allocation *a)
{
  struct chain *chain = h->img->chain;
  const struct qcow2_bitmap *b = &h->img->sources.bitmaps->entries[h->view.index];
  bool dirty;

  if (bitmap_dirty (chain->layers[0], b, offset, count, &dirty, length) == -1)
    return -1;
  if (!dirty) {
    *a = ALLOCATION_HOLE;
    return 0;
  }
  if (chain_block_status (chain, 0, chain->n - 1, offset, *length, true,
                          length, a) == -1)
    return -1;
  a->reads_zero = false;
  return 0;
}

int
view_handle_pread (struct view_handle *h, void *buf, uint32_t count,
                   uint64_t offset)
{
  int r;

  if (is_json_view (h)) {
    memcpy (buf, h->json + offset, count);  /* nbdkit checked the range */
    return 0;
  }
  switch (h->view.kind) {
  case VIEW_FILE:
    r = container_pread (h->container, buf, count, offset);
    break;
  case VIEW_BITMAP:
    r = bitmap_view_pread (h, buf, count, offset);
    break;
  default:
    r = chain_pread (h->chain, h->first, h->last, buf, count, offset);
  }
  if (r == -1) {
    nbdkit_error ("%s", q2_last_error ());
    errno = q2_request_errno ();
  }
  return r;
}

/* One extent of the view of handle OPAQUE at OFFSET. */
static int
view_block_status (void *opaque, uint64_t offset, uint64_t count,
                   uint64_t *length, struct allocation *a)
{
  struct view_handle *h = opaque;

  if (is_json_view (h)) {
    *length = count;
    *a = (struct allocation) { .allocated = true, .reads_zero = false };
    return 0;
  }
  switch (h->view.kind) {
  case VIEW_FILE:
    return container_block_status (h->container, offset, count, length, a);
  case VIEW_BITMAP:
    return bitmap_view_block_status (h, offset, count, length, a);
  default:
    /* Guest and snapshot views: qemu's answer.  Layer view: HOLE =
     * not in this layer.
     */
    return chain_block_status (h->chain, h->first, h->last, offset, count,
                               h->view.kind != VIEW_LAYER, length, a);
  }
}

int
view_handle_extents (struct view_handle *h, uint32_t count, uint64_t offset,
                     uint32_t flags, struct nbdkit_extents *extents)
{
  return nbd_add_extents (extents, offset, count,
                          flags & NBDKIT_FLAG_REQ_ONE, view_block_status, h);
}

/* NBD_CMD_CACHE: prefetch what reading the range will need (see
 * chain_prefetch.h), so that --filter=readahead and --filter=scan help.
 */
int
view_handle_cache (struct view_handle *h, uint32_t count, uint64_t offset)
{
  if (is_json_view (h))
    return 0;                    /* in memory already */
  switch (h->view.kind) {
  case VIEW_FILE:
    hostfile_prefetch (&h->img->chain->layers[h->first]->file, offset, count);
    return 0;
  default:
    if (chain_prefetch (h->chain, h->first, h->last, offset, count) == -1) {
      nbdkit_error ("%s", q2_last_error ());
      errno = EIO;
      return -1;
    }
    return 0;
  }
}

/* ---- listing ---- */

struct for_each_ctx {
  const struct served_image *img;
  int (*f) (void *opaque, const char *name, const char *description);
  void *opaque;
};

static int
one_export (void *opaque, const struct view *v)
{
  struct for_each_ctx *ctx = opaque;
  char *name = view_name (&ctx->img->sources, v);
  char *desc = view_describe (&ctx->img->sources, v);
  int r = -1;

  if (name == NULL || desc == NULL)
    nbdkit_error ("describe export: %m");
  else
    r = ctx->f (ctx->opaque, name, desc);
  free (name);
  free (desc);
  return r;
}

int
served_image_for_each_export (const struct served_image *img,
                              int (*f) (void *opaque, const char *name,
                                        const char *description),
                              void *opaque)
{
  struct for_each_ctx ctx = { img, f, opaque };

  return view_for_each (&img->sources, one_export, &ctx);
}
