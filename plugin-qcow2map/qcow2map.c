/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdkit-qcow2map-plugin: serve a qcow2 image and its backing chain,
 * read-only, without qemu.  The format itself lives in lib/, the
 * exports in serve/ (shared with the qcow2map filter); this file holds
 * the plugin's parameters and adapts them to nbdkit's plugin API.
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
#include "compress.h"
#include "image_lock.h"
#include "l2_cache.h"
#include "json_budget.h"
#include "q2_error.h"
#include "served_image.h"
#include "serve_params.h"
#include "thread_model.h"

/* -D qcow2map.chain=1: describe each layer at startup.
 * -D qcow2map.cache=1: L2 cache and decompressed-cluster cache
 * statistics when a connection closes and when the server stops.
 */
NBDKIT_DLL_PUBLIC int qcow2map_debug_chain = 0;
NBDKIT_DLL_PUBLIC int qcow2map_debug_cache = 0;

static char *filename;
static struct serve_params params = SERVE_PARAMS_INIT;
static struct served_image *image;

static void
qcow2map_unload (void)
{
  served_image_free (image);
  serve_params_free (&params);
  free (filename);
}

static int
qcow2map_config (const char *key, const char *value)
{
  int r = serve_params_config (&params, key, value);

  if (r != 0)
    return r == -1 ? -1 : 0;
  if (strcmp (key, "file") == 0) {
    if (filename) {
      nbdkit_error ("file=%s: only one file= parameter is allowed "
                    "(already given: %s)", value, filename);
      return -1;
    }
    filename = nbdkit_realpath (value);
    return filename ? 0 : -1;
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
  "locking=on|off|auto Take qemu's image locks (default auto).\n" \
  "force-share=BOOL    Serve even if a writer has the image open.\n" \
  SERVE_PARAMS_HELP

/* Open the chain here, after config and before serving, so that any
 * problem stops nbdkit with one line naming the file and the cause.
 */
static int
qcow2map_get_ready (void)
{
  struct chain *chain = chain_open (filename, &params.chain);

  if (chain == NULL ||
      chain_enable_cluster_cache (chain,
                                  params.compressed_cache_size) == -1) {
    nbdkit_error ("%s", q2_last_error ());
    chain_close (chain);
    return -1;
  }
  image = served_image_new (chain, qcow2map_debug_chain);
  return image ? 0 : -1;
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

/* Per connection: the view it serves (see served_image.h). */
static void *
qcow2map_open (int readonly)
{
  const char *name = nbdkit_export_name ();
  struct view_handle *h;

  if (name == NULL)
    return NULL;
  h = malloc (sizeof *h);
  if (h == NULL) {
    nbdkit_error ("malloc: %m");
    return NULL;
  }
  if (view_handle_open (h, image, name, filename) == -1) {
    free (h);
    return NULL;
  }
  return h;
}

static void
debug_cache_stats (void)
{
  if (qcow2map_debug_cache && image)
    served_image_debug_caches (image);
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
add_export (void *exports, const char *name, const char *description)
{
  return nbdkit_add_export (exports, name, description);
}

static int
qcow2map_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  return served_image_for_each_export (image, add_export, exports);
}

static const char *
qcow2map_default_export (int readonly, int is_tls)
{
  return "";
}

static const char *
qcow2map_export_description (void *handle)
{
  return view_handle_description (handle);
}

static int64_t
qcow2map_get_size (void *handle)
{
  return view_handle_size (handle);
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
  view_handle_block_size (handle, minimum, preferred, maximum);
  return 0;
}

static int
qcow2map_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
                uint32_t flags)
{
  return view_handle_pread (handle, buf, count, offset);
}

static int
qcow2map_extents (void *handle, uint32_t count, uint64_t offset,
                  uint32_t flags, struct nbdkit_extents *extents)
{
  return view_handle_extents (handle, count, offset, flags, extents);
}

static int
qcow2map_can_cache (void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

static int
qcow2map_cache (void *handle, uint32_t count, uint64_t offset,
                uint32_t flags)
{
  return view_handle_cache (handle, count, offset);
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
