/* nbdkit-qcow2map-plugin: serve a qcow2 image and its backing chain,
 * read-only, without qemu.  The format itself lives in lib/; this file
 * only adapts it to nbdkit's plugin API.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#include <nbdkit-plugin.h>

#include "backing_chain.h"
#include "compress.h"
#include "l2_cache.h"
#include "q2_error.h"

/* -D qcow2map.chain=1: describe each layer at startup.
 * -D qcow2map.cache=1: L2 cache statistics when a connection closes.
 */
NBDKIT_DLL_PUBLIC int qcow2map_debug_chain = 0;
NBDKIT_DLL_PUBLIC int qcow2map_debug_cache = 0;

#define DEFAULT_L2_CACHE_SIZE (32 * 1024 * 1024)
#define MAX_EXTENTS_PER_REQUEST 4096   /* bounded work per request */

static char *filename;
static uint64_t l2_cache_size = DEFAULT_L2_CACHE_SIZE;
static struct chain *chain;

static void
qcow2map_unload (void)
{
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
  "l2-cache-size=SIZE  Bound on cached L2 tables (default 32M)."

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
    if (l->header.incompatible_features & QCOW2_INCOMPAT_CORRUPT)
      nbdkit_debug ("warning: %s is marked corrupt; serving it read-only",
                    l->file.path);
  }
}

/* Open the chain here, after config and before serving, so that any
 * problem stops nbdkit with one line naming the file and the cause.
 */
static int
qcow2map_get_ready (void)
{
  chain = chain_open (filename, l2_cache_size);
  if (chain == NULL) {
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

/* Per connection: the view [first, last] of the chain it serves. */
struct handle {
  size_t first, last;
};

static void *
qcow2map_open (int readonly)
{
  struct handle *h = malloc (sizeof *h);

  if (h == NULL) {
    nbdkit_error ("malloc: %m");
    return NULL;
  }
  h->first = 0;
  h->last = chain->n - 1;
  return h;
}

static void
qcow2map_close (void *handle)
{
  if (qcow2map_debug_cache) {
    uint64_t hits, misses;
    size_t slots;
    l2_cache_stats (chain->cache, &hits, &misses, &slots);
    nbdkit_debug ("L2 cache: %" PRIu64 " hits, %" PRIu64 " misses, "
                  "%zu slots", hits, misses, slots);
  }
  free (handle);
}

static int64_t
qcow2map_get_size (void *handle)
{
  struct handle *h = handle;
  return chain->layers[h->first]->size;
}

static const char *
qcow2map_export_description (void *handle)
{
  struct handle *h = handle;
  const char *r;
  char *s = NULL;
  size_t len, i;
  FILE *fp = open_memstream (&s, &len);

  if (fp == NULL) {
    nbdkit_error ("open_memstream: %m");
    return NULL;
  }
  fprintf (fp, "qcow2 image %s", chain->layers[h->first]->file.path);
  for (i = h->first + 1; i <= h->last; i++)
    fprintf (fp, "%s%s (%s)", i == h->first + 1 ? ", backing chain: " : " <- ",
             chain->layers[i]->file.path,
             chain->layers[i]->format == LAYER_RAW ? "raw" : "qcow2");
  fclose (fp);
  r = nbdkit_strdup_intern (s);
  free (s);
  return r;
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

  if (chain_pread (chain, h->first, h->last, buf, count, offset) == -1) {
    nbdkit_error ("%s", q2_last_error ());
    errno = EIO;
    return -1;
  }
  return 0;
}

static int
qcow2map_extents (void *handle, uint32_t count, uint64_t offset,
                  uint32_t flags, struct nbdkit_extents *extents)
{
  struct handle *h = handle;
  bool req_one = flags & NBDKIT_FLAG_REQ_ONE;
  unsigned n;

  for (n = 0; count > 0 && n < MAX_EXTENTS_PER_REQUEST; n++) {
    uint64_t length;
    uint32_t type;

    if (chain_block_status (chain, h->first, h->last, offset, count,
                            &length, &type) == -1) {
      nbdkit_error ("%s", q2_last_error ());
      errno = EIO;
      return -1;
    }
    if (nbdkit_add_extent (extents, offset, length, type) == -1)
      return -1;
    offset += length;
    count -= length;
    if (req_one)
      break;
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name               = "qcow2map",
  .longname           = "nbdkit qcow2 plugin (read-only, no qemu)",
  .version            = PACKAGE_VERSION,
  .unload             = qcow2map_unload,
  .config             = qcow2map_config,
  .config_complete    = qcow2map_config_complete,
  .config_help        = qcow2map_config_help,
  .magic_config_key   = "file",
  .get_ready          = qcow2map_get_ready,
  .dump_plugin        = qcow2map_dump_plugin,
  .open               = qcow2map_open,
  .close              = qcow2map_close,
  .get_size           = qcow2map_get_size,
  .export_description = qcow2map_export_description,
  .block_size         = qcow2map_block_size,
  .can_write          = qcow2map_can_write,
  .can_multi_conn     = qcow2map_can_multi_conn,
  .pread              = qcow2map_pread,
  .extents            = qcow2map_extents,
  .errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN (plugin)
