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
#include "views.h"
#include "l2_cache.h"
#include "cluster_cache.h"
#include "q2_error.h"

/* -D qcow2map.chain=1: describe each layer at startup.
 * -D qcow2map.cache=1: L2 cache and decompressed-cluster cache
 * statistics when a connection closes and when the server stops.
 */
NBDKIT_DLL_PUBLIC int qcow2map_debug_chain = 0;
NBDKIT_DLL_PUBLIC int qcow2map_debug_cache = 0;

#define DEFAULT_L2_CACHE_SIZE (32 * 1024 * 1024)
#define DEFAULT_COMPRESSED_CACHE_SIZE (16 * 1024 * 1024)
#define MAX_EXTENTS_PER_REQUEST 4096   /* bounded work per request */

static char *filename;
static uint64_t l2_cache_size = DEFAULT_L2_CACHE_SIZE;
static uint64_t compressed_cache_size = DEFAULT_COMPRESSED_CACHE_SIZE;
static struct chain *chain;

static void free_containers (void);

static void
qcow2map_unload (void)
{
  if (chain)
    free_containers ();
  chain_close (chain);
  free (filename);
}

static int
qcow2map_config (const char *key, const char *value)
{
  if (strcmp (key, "file") == 0) {
    free (filename);
    filename = nbdkit_realpath (value);
    return filename ? 0 : -1;
  }
  if (strcmp (key, "l2-cache-size") == 0) {
    int64_t r = nbdkit_parse_size (value);
    if (r == -1)
      return -1;
    if (r < 1024 * 1024) {
      nbdkit_error ("l2-cache-size must be at least 1M");
      return -1;
    }
    l2_cache_size = r;
    return 0;
  }
  if (strcmp (key, "compressed-cache-size") == 0) {
    int64_t r = nbdkit_parse_size (value);
    if (r == -1)
      return -1;
    compressed_cache_size = r;      /* 0: no cache */
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
  "l2-cache-size=SIZE  Bound on cached L2 tables (default 32M).\n" \
  "compressed-cache-size=SIZE\n" \
  "                    Bound on cached decompressed clusters (default 16M;\n" \
  "                    0 disables the cache)."

static void
debug_chain (void)
{
  size_t i;

  for (i = 0; i < chain->n; i++) {
    const struct layer *l = chain->layers[i];
    nbdkit_debug ("layer %zu: %s: %s, size %" PRIu64 ", cluster size %" PRIu64
                  "%s%s", i + 1, l->file.path,
                  l->format == LAYER_RAW ? "raw" : "qcow2", l->size,
                  l->format == LAYER_RAW ? 0 : l->header.cluster_size,
                  l->header.extended_l2 ? ", extended L2" : "",
                  l->metadata_preallocated ? ", metadata preallocated" : "");
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
  chain = chain_open (filename, l2_cache_size);
  if (chain == NULL ||
      chain_enable_cluster_cache (chain, compressed_cache_size) == -1) {
    nbdkit_error ("%s", q2_last_error ());
    return -1;
  }
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
    c = containers[layer] = container_open (chain->layers[layer]);
    if (c == NULL)
      nbdkit_error ("%s", q2_last_error ());
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

/* Per connection: the view it serves (see views.h). */
struct handle {
  struct view view;
  size_t first, last;            /* guest and layer views: the layers */
  struct container *container;   /* file views */
};

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
  if (view_parse (chain, name, &h->view) == -1) {
    nbdkit_error ("%s: export '%s' not found (see nbdinfo --list)",
                  filename, name);
    free (h);
    return NULL;
  }
  h->first = h->view.layer;
  h->last = h->view.kind == VIEW_GUEST ? chain->n - 1 : h->view.layer;
  if (h->view.kind == VIEW_FILE || h->view.kind == VIEW_FILE_JSON) {
    h->container = get_container (h->view.layer);
    if (h->container == NULL) {
      free (h);
      return NULL;
    }
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
  char name[64], *desc = view_describe (chain, v);
  int r;

  if (desc == NULL) {
    nbdkit_error ("describe export: %m");
    return -1;
  }
  view_name (v, name);
  r = nbdkit_add_export (exports, name, desc);
  free (desc);
  return r;
}

static int
qcow2map_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  return view_for_each (chain, add_view_export, exports);
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
  char *s = view_describe (chain, &h->view);
  const char *r = s ? nbdkit_strdup_intern (s) : NULL;

  free (s);
  return r;
}

static int64_t
qcow2map_get_size (void *handle)
{
  struct handle *h = handle;

  switch (h->view.kind) {
  case VIEW_FILE:      return chain->layers[h->first]->file.size;
  case VIEW_FILE_JSON: return h->container->json_len;
  default:             return chain->layers[h->first]->size;
  }
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

static int
qcow2map_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
                uint32_t flags)
{
  struct handle *h = handle;
  int r;

  switch (h->view.kind) {
  case VIEW_FILE_JSON:
    memcpy (buf, h->container->json + offset, count);  /* nbdkit checked */
    return 0;
  case VIEW_FILE:
    r = container_pread (h->container, buf, count, offset);
    break;
  default:
    r = chain_pread (chain, h->first, h->last, buf, count, offset);
  }
  if (r == -1) {
    nbdkit_error ("%s", q2_last_error ());
    errno = EIO;
  }
  return r;
}

/* One extent of the view at OFFSET. */
static int
view_block_status (struct handle *h, uint64_t offset, uint32_t count,
                   uint64_t *length, uint32_t *type)
{
  switch (h->view.kind) {
  case VIEW_FILE_JSON:
    *length = count;
    *type = 0;
    return 0;
  case VIEW_FILE:
    return container_block_status (h->container, offset, count,
                                   length, type);
  default:
    /* Guest view: qemu's answer.  Layer view: HOLE = not in this layer. */
    return chain_block_status (chain, h->first, h->last, offset, count,
                               h->view.kind == VIEW_GUEST, length, type);
  }
}

static int
qcow2map_extents (void *handle, uint32_t count, uint64_t offset,
                  uint32_t flags, struct nbdkit_extents *extents)
{
  struct handle *h = handle;
  bool req_one = flags & NBDKIT_FLAG_REQ_ONE;
  uint32_t first_type = 0;
  unsigned n;

  /* The lib answers one L2 slice at a time; nbdkit merges adjacent
   * extents of one type.  With REQ_ONE (which qemu's NBD client always
   * sets) go on while the type stays the same, so that the one extent
   * returned is as long as the metadata proves, not one slice; nbdkit
   * sends only the first extent.  Either way, bounded work.
   */
  for (n = 0; count > 0 && n < MAX_EXTENTS_PER_REQUEST; n++) {
    uint64_t length;
    uint32_t type;

    if (view_block_status (h, offset, count, &length, &type) == -1) {
      nbdkit_error ("%s", q2_last_error ());
      errno = EIO;
      return -1;
    }
    if (nbdkit_add_extent (extents, offset, length, type) == -1)
      return -1;
    offset += length;
    count -= length;
    if (n == 0)
      first_type = type;
    else if (req_one && type != first_type)
      break;
  }
  return 0;
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

  switch (h->view.kind) {
  case VIEW_FILE_JSON:
    return 0;                    /* in memory already */
  case VIEW_FILE:
    (void) posix_fadvise (chain->layers[h->first]->file.fd, offset, count,
                          POSIX_FADV_WILLNEED);
    return 0;
  default:
    if (chain_prefetch (chain, h->first, h->last, offset, count) == -1) {
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
