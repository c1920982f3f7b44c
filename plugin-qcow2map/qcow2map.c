/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdkit-qcow2map-plugin: serve a qcow2 image and its backing chain,
 * read-only, without qemu.  The format itself lives in lib/; this file
 * only adapts it to nbdkit's plugin API.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#include <nbdkit-plugin.h>

#include "backing_chain.h"
#include "chain_prefetch.h"
#include "compress.h"
#include "container.h"
#include "image_lock.h"
#include "views.h"
#include "nbd_extents.h"
#include "l2_cache.h"
#include "json_budget.h"
#include "json_pad.h"
#include "map_json.h"
#include "bitmap.h"
#include "luks.h"
#include "cluster_cache.h"
#include "q2_error.h"
#include "thread_model.h"

/* -D qcow2map.chain=1: describe each layer at startup.
 * -D qcow2map.cache=1: L2 cache and decompressed-cluster cache
 * statistics when a connection closes and when the server stops.
 */
NBDKIT_DLL_PUBLIC int qcow2map_debug_chain = 0;
NBDKIT_DLL_PUBLIC int qcow2map_debug_cache = 0;

#define DEFAULT_COMPRESSED_CACHE_SIZE (16 * 1024 * 1024)

static char *filename;
static struct chain_params params = {
  .l2_cache_bytes = L2_CACHE_DEFAULT_BYTES,
};
static uint64_t compressed_cache_size = DEFAULT_COMPRESSED_CACHE_SIZE;
static struct chain *chain;
static struct view_sources sources;

static void free_containers (void);
static void free_json_docs (void);
static void free_snapshot_chains (void);

static void
qcow2map_unload (void)
{
  if (chain) {
    free_containers ();
    free_json_docs ();
    free_snapshot_chains ();
  }
  chain_close (chain);
  chain_params_free (&params);
  free (filename);
}

/* l2-cache-size: at least 1M; at most 64G, which holds the L2 tables
 * of any practical chain (64 TiB of guest disk even with 512-byte
 * clusters) and keeps the cache's own bookkeeping small.
 */
#define MIN_L2_CACHE_SIZE (UINT64_C (1) << 20)
#define MAX_L2_CACHE_SIZE (UINT64_C (64) << 30)

static int
parse_l2_cache_size (const char *value)
{
  int64_t r = nbdkit_parse_size (value);

  /* nbdkit_parse_size has said why; say which parameter it was. */
  if (r == -1) {
    nbdkit_error ("l2-cache-size: could not parse size string (%s)", value);
    return -1;
  }
  if ((uint64_t) r < MIN_L2_CACHE_SIZE || (uint64_t) r > MAX_L2_CACHE_SIZE) {
    nbdkit_error ("l2-cache-size: %s is outside the allowed range 1M..64G",
                  value);
    return -1;
  }
  params.l2_cache_bytes = r;
  return 0;
}

/* passphrase=SECRET|+FILE|-|-FD (nbdkit's conventions for secrets) and
 * passphrase.N= for layer N.
 */
static int
config_passphrase (size_t layer, const char *value)
{
  char *secret;
  int r;

  if (nbdkit_read_password (value, &secret) == -1)
    return -1;
  r = chain_params_set_passphrase (&params, layer, secret);
  explicit_bzero (secret, strlen (secret));
  free (secret);
  if (r == -1)
    nbdkit_error ("%s", q2_last_error ());
  return r;
}

static int
qcow2map_config (const char *key, const char *value)
{
  size_t layer;
  int r;

  /* locking=, force-share=; backing[.N]=, backing-format[.N]= */
  if ((r = image_lock_config (&params.locking, key, value)) == 0)
    r = chain_params_set (&params, key, value);
  if (r != 0) {
    if (r == -1)
      nbdkit_error ("%s", q2_last_error ());
    return r == -1 ? -1 : 0;
  }
  switch (chain_params_passphrase_key (key, &layer)) {
  case 1:
    return config_passphrase (layer, value);
  case -1:
    nbdkit_error ("%s", q2_last_error ());
    return -1;
  }
  if (strcmp (key, "file") == 0) {
    if (filename) {
      nbdkit_error ("file=%s: only one file= parameter is allowed "
                    "(already given: %s)", value, filename);
      return -1;
    }
    filename = nbdkit_realpath (value);
    return filename ? 0 : -1;
  }
  if (strcmp (key, "l2-cache-size") == 0)
    return parse_l2_cache_size (value);
  if (strcmp (key, "thread-model") == 0)
    return thread_model_config (value);
  if (strcmp (key, "json-max-size") == 0) {
    int64_t size = nbdkit_parse_size (value);
    if (size == -1)
      return -1;
    json_budget_set (size);
    return 0;
  }
  if (strcmp (key, "compressed-cache-size") == 0) {
    int64_t size = nbdkit_parse_size (value);
    if (size == -1) {
      nbdkit_error ("compressed-cache-size: could not parse size string "
                    "(%s)", value);
      return -1;
    }
    compressed_cache_size = size;     /* 0: no cache */
    return 0;
  }
  nbdkit_error ("unknown parameter '%s'", key);
  return -1;
}

static int
qcow2map_config_complete (void)
{
  if (filename == NULL) {
    nbdkit_error ("you must supply the file=<IMAGE> parameter");
    return -1;
  }
  return 0;
}

#define qcow2map_config_help \
  "file=<IMAGE>        (required) The qcow2 image to serve (with its\n" \
  "                    backing chain).\n" \
  "l2-cache-size=SIZE  Bound on cached L2 tables (default 32M, 1M..64G).\n" \
  "locking=on|off|auto Take qemu's image locks (default auto).\n" \
  "force-share=BOOL    Serve even if a writer has the image open.\n" \
  "backing[.N]=PATH    Use PATH as the backing file of layer N (default\n" \
  "                    1, the top image); empty: no backing file.\n" \
  "backing-format[.N]=qcow2|raw  Format of that backing file (default:\n" \
  "                    probed for backing=, else as the image records).\n" \
  "passphrase[.N]=SECRET|+FILE|-|-FD  Passphrase of the LUKS-encrypted\n" \
  "                    layers (of layer N only, with .N).\n" \
  "thread-model=auto|parallel|serialize_requests\n" \
  "                    Requests in flight per connection (default auto:\n" \
  "                    parallel unless nbdkit < 1.33.10, see the man page).\n" \
  "compressed-cache-size=SIZE\n" \
  "                    Bound on cached decompressed clusters (default 16M;\n" \
  "                    0 disables the cache).\n" \
  "json-max-size=SIZE  Bound on the memory of the JSON exports together\n" \
  "                    (default 64M)."

static void
debug_chain (void)
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
warn_flags (void)
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

/* Open the chain here, after config and before serving, so that any
 * problem stops nbdkit with one line naming the file and the cause.
 */
static int
qcow2map_get_ready (void)
{
  chain = chain_open (filename, &params);
  if (chain == NULL ||
      chain_enable_cluster_cache (chain, compressed_cache_size) == -1) {
    nbdkit_error ("%s", q2_last_error ());
    return -1;
  }
  sources.chain = chain;
  /* The top image's snapshot table and bitmap directory: read and
   * checked as qemu does when the layer was opened.
   */
  sources.snapshots = &chain->layers[0]->snapshots;
  sources.bitmaps = &chain->layers[0]->bitmaps;
  warn_flags ();
  if (qcow2map_debug_chain)
    debug_chain ();
  return 0;
}

static void
qcow2map_dump_plugin (void)
{
  printf ("qcow2map_version=%s\n", PACKAGE_VERSION);
  printf ("qcow2map_zlib=yes\n");
  printf ("qcow2map_deflate=%s\n", compress_deflate_impl ());
  printf ("qcow2map_zstd=%s\n", compress_have_zstd () ? "yes" : "no");
  printf ("qcow2map_auto_thread_model=%s\n", thread_model_auto_name ());
}

/* Container views are analysed (metadata walk, refcount check) on
 * first use, once per layer, and then shared by all connections.
 */
static pthread_mutex_t containers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct container **containers;

static struct container *
get_container (size_t layer)
{
  struct container *c;

  pthread_mutex_lock (&containers_lock);
  if (containers == NULL)
    containers = calloc (chain->n, sizeof *containers);
  if (containers == NULL) {
    nbdkit_error ("calloc: %m");
    c = NULL;
  }
  else if ((c = containers[layer]) == NULL) {
    c = container_open (chain->layers[layer]);
    if (c && json_pad (&c->json, &c->json_len) == -1) {
      container_close (c);
      c = NULL;
    }
    if (c == NULL)
      nbdkit_error ("%s", q2_last_error ());
    containers[layer] = c;
  }
  pthread_mutex_unlock (&containers_lock);
  return c;
}

static void
free_containers (void)
{
  size_t i;

  for (i = 0; containers && i < chain->n; i++)
    container_close (containers[i]);
  free (containers);
}

/* JSON exports (map.json, layer/N.map.json, bitmap/NAME.json): each
 * document is built on first use, then shared by all connections.
 */
struct json_doc {
  char *text;
  size_t len;
};
static pthread_mutex_t docs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct json_doc *map_docs;     /* [0] the chain, [I+1] layer I */
static struct json_doc *bitmap_docs;  /* one per bitmap of the top */

static char *
build_map_doc (size_t i, size_t *len)
{
  char *text;
  int r = i == 0 ? map_json_build (chain, 0, chain->n - 1, &text, len)
                 : map_json_build (chain, i - 1, i - 1, &text, len);
  return r == -1 ? NULL : text;
}

static char *
build_bitmap_doc (size_t i, size_t *len)
{
  return bitmap_json (chain->layers[0], &sources.bitmaps->entries[i], len);
}

/* Slot I of the N documents *SLOTS, built by BUILD if not yet. */
static const struct json_doc *
get_doc (struct json_doc **slots, size_t n, size_t i,
         char *(*build) (size_t i, size_t *len))
{
  struct json_doc *d = NULL;

  pthread_mutex_lock (&docs_lock);
  if (*slots == NULL)
    *slots = calloc (n, sizeof **slots);
  if (*slots == NULL)
    nbdkit_error ("calloc: %m");
  else if ((*slots)[i].text == NULL &&
           (((*slots)[i].text = build (i, &(*slots)[i].len)) == NULL ||
            json_pad (&(*slots)[i].text, &(*slots)[i].len) == -1)) {
    nbdkit_error ("%s", q2_last_error ());
    free ((*slots)[i].text);
    (*slots)[i].text = NULL;
  }
  else
    d = &(*slots)[i];
  pthread_mutex_unlock (&docs_lock);
  return d;
}

static void
free_docs (struct json_doc *slots, size_t n)
{
  size_t i;

  for (i = 0; slots && i < n; i++)
    free (slots[i].text);
  free (slots);
}

static void
free_json_docs (void)
{
  free_docs (map_docs, chain->n + 1);
  free_docs (bitmap_docs, sources.bitmaps->count);
}

/* The chains of snapshot views: opened on first use, then shared. */
static pthread_mutex_t snapshot_chains_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chain **snapshot_chains;

static struct chain *
get_snapshot_chain (size_t i)
{
  const struct qcow2_snapshot_table *t = sources.snapshots;
  struct chain *sc = NULL;

  pthread_mutex_lock (&snapshot_chains_lock);
  if (snapshot_chains == NULL)
    snapshot_chains = calloc (t->count, sizeof *snapshot_chains);
  if (snapshot_chains == NULL)
    nbdkit_error ("calloc: %m");
  else if ((sc = snapshot_chains[i]) == NULL) {
    sc = snapshot_chains[i] = snapshot_chain_open (chain, &t->entries[i]);
    if (sc == NULL)
      nbdkit_error ("%s", q2_last_error ());
  }
  pthread_mutex_unlock (&snapshot_chains_lock);
  return sc;
}

static void
free_snapshot_chains (void)
{
  size_t i;

  for (i = 0; snapshot_chains && i < sources.snapshots->count; i++)
    snapshot_chain_close (snapshot_chains[i]);
  free (snapshot_chains);
}

/* Per connection: the view it serves (see views.h). */
struct handle {
  struct view view;
  struct chain *chain;           /* guest, layer and snapshot views */
  size_t first, last;            /* guest and layer views: the layers */
  struct container *container;   /* file views */
  const char *json;              /* JSON views: the document served */
  size_t json_len;
};

/* qemu serves no bitmap that was not saved cleanly (IN_USE flag). */
static int
check_bitmap_usable (size_t i)
{
  if (sources.bitmaps->entries[i].flags & QCOW2_BITMAP_IN_USE) {
    nbdkit_error ("%s: Bitmap '%s' is inconsistent and cannot be used",
                  filename, sources.bitmaps->entries[i].name);
    return -1;
  }
  return 0;
}

/* Find (or build) what view V of handle H serves.  Returns 0 or -1
 * (error already reported).
 */
static int
attach_view (struct handle *h)
{
  const struct json_doc *d;

  h->chain = chain;
  h->first = h->view.layer;
  h->last = h->view.kind == VIEW_GUEST ? chain->n - 1 : h->view.layer;
  switch (h->view.kind) {
  case VIEW_SNAPSHOT:
    h->chain = get_snapshot_chain (h->view.index);
    h->last = chain->n - 1;
    return h->chain ? 0 : -1;
  case VIEW_BITMAP:
    h->last = chain->n - 1;
    return check_bitmap_usable (h->view.index);
  case VIEW_FILE:
  case VIEW_FILE_JSON:
    h->container = get_container (h->view.layer);
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
      if (check_bitmap_usable (h->view.index) == -1)
        return -1;
      d = get_doc (&bitmap_docs, sources.bitmaps->count, h->view.index, build_bitmap_doc);
    }
    else
      d = get_doc (&map_docs, chain->n + 1,
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

static bool
is_json_view (const struct handle *h)
{
  return h->json != NULL;
}

static void *
qcow2map_open (int readonly)
{
  const char *name = nbdkit_export_name ();
  struct handle *h;

  if (name == NULL)
    return NULL;
  h = calloc (1, sizeof *h);
  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  if (view_parse (&sources, name, &h->view) == -1) {
    nbdkit_error ("%s: export '%s' not found (see nbdinfo --list)",
                  filename, name);
    free (h);
    return NULL;
  }
  if (attach_view (h) == -1) {
    free (h);
    return NULL;
  }
  return h;
}

static void
debug_cache_stats (void)
{
  uint64_t hits, misses, waits;
  size_t slots, slot_bytes;

  if (!qcow2map_debug_cache)
    return;
  l2_cache_stats (chain->cache, &hits, &misses, &slots);
  nbdkit_debug ("L2 cache: %" PRIu64 " hits, %" PRIu64 " misses, "
                "%zu slices of %d bytes", hits, misses, slots,
                L2_SLICE_BYTES);
  cluster_cache_stats (chain->clusters, &hits, &misses, &waits, &slots,
                       &slot_bytes);
  nbdkit_debug ("compressed cluster cache: %" PRIu64 " hits (%" PRIu64
                " waited for another reader's inflate), %" PRIu64
                " misses, %zu slots of %zu bytes",
                hits, waits, misses, slots, slot_bytes);
}

static void
qcow2map_close (void *handle)
{
  debug_cache_stats ();
  free (handle);
}

/* Once more when the server stops: a connection still open when nbdkit
 * is told to exit may not be closed through .close.
 */
static void
qcow2map_cleanup (void)
{
  debug_cache_stats ();
}

static int
add_view_export (void *exports, const struct view *v)
{
  char *name = view_name (&sources, v), *desc = view_describe (&sources, v);
  int r = -1;

  if (name == NULL || desc == NULL)
    nbdkit_error ("describe export: %m");
  else
    r = nbdkit_add_export (exports, name, desc);
  free (name);
  free (desc);
  return r;
}

static int
qcow2map_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  return view_for_each (&sources, add_view_export, exports);
}

static const char *
qcow2map_default_export (int readonly, int is_tls)
{
  return "";
}

static const char *
qcow2map_export_description (void *handle)
{
  struct handle *h = handle;
  char *s = view_describe (&sources, &h->view);
  const char *r = s ? nbdkit_strdup_intern (s) : NULL;

  free (s);
  return r;
}

static int64_t
qcow2map_get_size (void *handle)
{
  struct handle *h = handle;

  if (is_json_view (h))
    return h->json_len;
  if (h->view.kind == VIEW_FILE)
    return chain->layers[h->first]->file.size;
  return chain->layers[h->first]->size;
}

static int
qcow2map_can_multi_conn (void *handle)
{
  return 1;                      /* read-only and consistent */
}

static int
qcow2map_can_write (void *handle)
{
  return 0;
}

static int
qcow2map_block_size (void *handle,
                     uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
  struct handle *h = handle;
  const struct layer *top = chain->layers[h->first];

  *minimum = 1;
  *preferred = top->format == LAYER_QCOW2 ? top->header.cluster_size : 4096;
  if (*preferred < 512)
    *preferred = 512;
  *maximum = 0xffffffff;
  return 0;
}

/* The guest disk where bitmap I is dirty, zeros elsewhere. */
static int
bitmap_view_pread (struct handle *h, uint8_t *buf, uint64_t count,
                   uint64_t offset)
{
  const struct qcow2_bitmap *b = &sources.bitmaps->entries[h->view.index];

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
bitmap_view_block_status (struct handle *h, uint64_t offset, uint64_t count,
                          uint64_t *length, struct allocation *a)
{
  const struct qcow2_bitmap *b = &sources.bitmaps->entries[h->view.index];
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

static int
qcow2map_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
                uint32_t flags)
{
  struct handle *h = handle;
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
  struct handle *h = opaque;

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

static int
qcow2map_extents (void *handle, uint32_t count, uint64_t offset,
                  uint32_t flags, struct nbdkit_extents *extents)
{
  return nbd_add_extents (extents, offset, count,
                          flags & NBDKIT_FLAG_REQ_ONE, view_block_status,
                          handle);
}

static int
qcow2map_can_cache (void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

/* NBD_CMD_CACHE: prefetch what reading the range will need (see
 * chain_prefetch.h), so that --filter=readahead and --filter=scan help.
 */
static int
qcow2map_cache (void *handle, uint32_t count, uint64_t offset,
                uint32_t flags)
{
  struct handle *h = handle;

  if (is_json_view (h))
    return 0;                    /* in memory already */
  switch (h->view.kind) {
  case VIEW_FILE:
    (void) posix_fadvise (chain->layers[h->first]->file.fd, offset, count,
                          POSIX_FADV_WILLNEED);
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

static struct nbdkit_plugin plugin = {
  .name               = "qcow2map",
  .longname           = "nbdkit qcow2 plugin (read-only, no qemu)",
  .version            = PACKAGE_VERSION,
  .unload             = qcow2map_unload,
  .cleanup            = qcow2map_cleanup,
  .config             = qcow2map_config,
  .config_complete    = qcow2map_config_complete,
  .config_help        = qcow2map_config_help,
  .magic_config_key   = "file",
  .thread_model       = thread_model_choose,
  .get_ready          = qcow2map_get_ready,
  .dump_plugin        = qcow2map_dump_plugin,
  .open               = qcow2map_open,
  .close              = qcow2map_close,
  .get_size           = qcow2map_get_size,
  .list_exports       = qcow2map_list_exports,
  .default_export     = qcow2map_default_export,
  .export_description = qcow2map_export_description,
  .block_size         = qcow2map_block_size,
  .can_write          = qcow2map_can_write,
  .can_multi_conn     = qcow2map_can_multi_conn,
  .pread              = qcow2map_pread,
  .extents            = qcow2map_extents,
  .can_cache          = qcow2map_can_cache,
  .cache              = qcow2map_cache,
  .errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN (plugin)
