/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdkit-qcow2map-filter: decode the qcow2 image that the plugin below
 * serves (file, curl, ssh, nbd...), with the same exports, bytes,
 * extents and parameters as the qcow2map plugin.  lib/ reads the image
 * through next_source.c; the exports are serve/'s, as in the plugin.
 *
 * One decoder per connection, over that connection's next context:
 * nbdkit 1.32.5 and 1.42.3 allow one plugin context per connection at
 * a time (a second one asserts in plugins.c), and a "shared" context
 * crashes plugins that look at the export name (file dir=), so the
 * filter can neither keep one decoder for all connections nor open a
 * backing file as a sibling export.  See the man page.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-filter.h>

#include "backing_chain.h"
#include "catalog.h"
#include "export_name.h"
#include "next_source.h"
#include "source_cache.h"
#include "q2_error.h"
#include "served_image.h"
#include "serve_params.h"
#include "thread_model.h"

/* -D qcow2map.chain=1: describe each layer when a connection opens it.
 * -D qcow2map.cache=1: cache statistics when a connection closes.
 * -D qcow2map.io=1: every request asked of the plugin below, and the
 * totals when a connection closes.
 */
NBDKIT_DLL_PUBLIC int qcow2map_debug_chain = 0;
NBDKIT_DLL_PUBLIC int qcow2map_debug_cache = 0;
NBDKIT_DLL_PUBLIC int qcow2map_debug_io = 0;

static struct serve_params params = SERVE_PARAMS_INIT;
static uint64_t source_cache_size = SOURCE_CACHE_DEFAULT;
/* The stack's thread model (.get_ready): if it is not parallel, the
 * prefetch worker's requests and the connection's take turns.
 */
static int final_thread_model = NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;

struct handle {
  char *source;                  /* the plugin's export */
  char *view_name;               /* the view of it */
  char *source_name;             /* SOURCE for messages */
  struct served_image *img;      /* this connection's decoder */
  struct view_handle view;
};

static void
qcow2map_unload (void)
{
  serve_params_free (&params);
  catalog_free ();
}

static int
qcow2map_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
                 const char *key, const char *value)
{
  int r = serve_params_config (&params, key, value);
  int64_t size;

  if (r != 0)
    return r == -1 ? -1 : 0;
  if (strcmp (key, "source-cache-size") == 0) {
    size = nbdkit_parse_size (value);
    if (size == -1) {
      nbdkit_error ("source-cache-size: could not parse size string (%s)",
                    value);
      return -1;
    }
    source_cache_size = size;
    return 0;
  }
  return next (nxdata, key, value);
}

#define qcow2map_config_help \
  SERVE_PARAMS_HELP "\n" \
  "source-cache-size=SIZE  Bound on the blocks read from the plugin below\n" \
  "                    and kept for small reads, per connection (default\n" \
  "                    32M; 0: every read goes to the plugin).\n" \
  "locking=on|off|auto, force-share=BOOL  qemu's image locks on local\n" \
  "                    backing files given with backing[.N]="

static int
qcow2map_thread_model (void)
{
  return thread_model_choose ();
}

static int
qcow2map_get_ready (int thread_model)
{
  final_thread_model = thread_model;
  return 0;
}

/* ---- exports ---- */

static int
add_export (void *exports, const char *name, const char *description)
{
  return nbdkit_add_export (exports, name, description);
}

static int
qcow2map_list_exports (nbdkit_next_list_exports *next, nbdkit_backend *nxdata,
                       int readonly, int is_tls,
                       struct nbdkit_exports *exports)
{
  struct nbdkit_exports *below = nbdkit_exports_new ();
  size_t i;
  int r = -1;

  if (below == NULL)
    return -1;
  if (next (nxdata, 1, below) == -1)
    goto out;
  for (i = 0; i < nbdkit_exports_count (below); i++) {
    struct nbdkit_export e = nbdkit_get_export (below, i);
    char *desc = NULL;
    int n = catalog_for_each (e.name, add_export, exports);

    if (n == -1)
      goto out;
    if (n > 0)
      continue;
    /* Not decoded yet: the plugin's export alone. */
    if (asprintf (&desc, "qcow2 image served by the plugin below%s%s "
                  "(its views are listed once a client has opened it)",
                  e.description ? ": " : "",
                  e.description ? e.description : "") == -1) {
      nbdkit_error ("asprintf: %m");
      goto out;
    }
    r = nbdkit_add_export (exports, e.name, desc);
    free (desc);
    if (r == -1)
      goto out;
  }
  r = 0;
 out:
  nbdkit_exports_free (below);
  return r;
}

static const char *
qcow2map_default_export (nbdkit_next_default_export *next,
                         nbdkit_backend *nxdata, int readonly, int is_tls)
{
  return next (nxdata, 1);
}

/* ---- connections ---- */

static void
handle_free (struct handle *h)
{
  if (h == NULL)
    return;
  served_image_free (h->img);
  free (h->source);
  free (h->view_name);
  free (h->source_name);
  free (h);
}

/* The plugin's export is opened read-only, always: nothing is written
 * to the source.
 */
static void *
qcow2map_open (nbdkit_next_open *next, nbdkit_context *context,
               int readonly, const char *exportname, int is_tls)
{
  struct handle *h = calloc (1, sizeof *h);

  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  if (export_name_split (exportname, &h->source, &h->view_name) == -1 ||
      asprintf (&h->source_name, "plugin export '%s'", h->source) == -1) {
    h->source_name = NULL;
    nbdkit_error ("export name: %m");
    handle_free (h);
    return NULL;
  }
  if (next (context, 1, h->source) == -1) {
    handle_free (h);
    return NULL;
  }
  return h;
}

/* The image file read through the plugin below. */
static const struct hostfile *
top_file (const struct handle *h)
{
  return &h->img->chain->layers[0]->file;
}

/* Decode the image once the plugin's context is ready: any problem
 * fails this connection with one line naming the source and the cause.
 */
static int
qcow2map_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;
  struct hostfile top;
  struct chain *chain;

  switch (next_source_open (&top, next, h->source_name, source_cache_size,
                            qcow2map_debug_io)) {
  case 0: break;
  case NEXT_SOURCE_FAILED:
    nbdkit_debug ("%s: the plugin below could not give the size",
                  h->source_name);
    return -1;
  default:
    nbdkit_error ("%s", q2_last_error ());
    return -1;
  }
  chain = chain_open_file (&top, &params.chain);
  if (chain == NULL ||
      chain_enable_cluster_cache (chain,
                                  params.compressed_cache_size) == -1) {
    nbdkit_error ("%s", q2_last_error ());
    chain_close (chain);
    return -1;
  }
  h->img = served_image_new (chain, qcow2map_debug_chain);
  if (h->img == NULL)
    return -1;
  catalog_record (h->source, h->img);
  if (view_handle_open (&h->view, h->img, h->view_name,
                        h->source_name) == -1)
    return -1;
  /* Last: .finalize, which stops it, runs only if .prepare succeeded. */
  if (next_source_start_prefetch (top_file (h), final_thread_model) == -1) {
    nbdkit_error ("%s", q2_last_error ());
    return -1;
  }
  return 0;
}

/* Statistics when the client disconnects (nbdkit may exit without
 * .close for a connection still open at exit; .finalize runs first).
 */
static int
qcow2map_finalize (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;
  uint64_t requests, bytes;

  /* The next context is not ours to use after this. */
  if (h->img)
    next_source_stop_prefetch (top_file (h));
  if (h->img && qcow2map_debug_cache)
    served_image_debug_caches (h->img);
  if (h->img && qcow2map_debug_io) {
    next_source_stats (top_file (h), &requests, &bytes);
    nbdkit_debug ("io: %s: %" PRIu64 " requests, %" PRIu64 " bytes read "
                  "from the plugin below", h->source_name, requests, bytes);
  }
  return 0;
}

static void
qcow2map_close (void *handle)
{
  handle_free (handle);
}

static int64_t
qcow2map_get_size (nbdkit_next *next, void *handle)
{
  return view_handle_size (&((struct handle *) handle)->view);
}

static const char *
qcow2map_export_description (nbdkit_next *next, void *handle)
{
  return view_handle_description (&((struct handle *) handle)->view);
}

static int
qcow2map_block_size (nbdkit_next *next, void *handle, uint32_t *minimum,
                     uint32_t *preferred, uint32_t *maximum)
{
  view_handle_block_size (&((struct handle *) handle)->view,
                          minimum, preferred, maximum);
  return 0;
}

static int
qcow2map_can_write (nbdkit_next *next, void *handle)
{
  return 0;
}

/* Nothing to flush, as in the plugin: no NBD_CMD_FLUSH reaches the
 * plugin below.
 */
static int
qcow2map_can_flush (nbdkit_next *next, void *handle)
{
  return 0;
}

static int
qcow2map_can_extents (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
qcow2map_can_multi_conn (nbdkit_next *next, void *handle)
{
  return 1;                      /* read-only and consistent */
}

static int
qcow2map_can_cache (nbdkit_next *next, void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

/* A filter returns a failed request's errno in *ERR (a plugin leaves
 * it in errno): R, with *ERR set if R is -1.
 */
static int
with_err (int r, int *err)
{
  if (r == -1)
    *err = errno;
  return r;
}

static int
qcow2map_pread (nbdkit_next *next, void *handle, void *buf, uint32_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  return with_err (view_handle_pread (&((struct handle *) handle)->view,
                                      buf, count, offset), err);
}

static int
qcow2map_extents (nbdkit_next *next, void *handle, uint32_t count,
                  uint64_t offset, uint32_t flags,
                  struct nbdkit_extents *extents, int *err)
{
  return with_err (view_handle_extents (&((struct handle *) handle)->view,
                                        count, offset, flags, extents), err);
}

static int
qcow2map_cache (nbdkit_next *next, void *handle, uint32_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  return with_err (view_handle_cache (&((struct handle *) handle)->view,
                                      count, offset), err);
}

static struct nbdkit_filter filter = {
  .name               = "qcow2map",
  .longname           = "nbdkit qcow2 decoding filter (read-only, no qemu)",
  .unload             = qcow2map_unload,
  .config             = qcow2map_config,
  .config_help        = qcow2map_config_help,
  .thread_model       = qcow2map_thread_model,
  .get_ready          = qcow2map_get_ready,
  .list_exports       = qcow2map_list_exports,
  .default_export     = qcow2map_default_export,
  .open               = qcow2map_open,
  .prepare            = qcow2map_prepare,
  .finalize           = qcow2map_finalize,
  .close              = qcow2map_close,
  .get_size           = qcow2map_get_size,
  .export_description = qcow2map_export_description,
  .block_size         = qcow2map_block_size,
  .can_write          = qcow2map_can_write,
  .can_flush          = qcow2map_can_flush,
  .can_extents        = qcow2map_can_extents,
  .can_multi_conn     = qcow2map_can_multi_conn,
  .can_cache          = qcow2map_can_cache,
  .pread              = qcow2map_pread,
  .extents            = qcow2map_extents,
  .cache              = qcow2map_cache,
};

NBDKIT_REGISTER_FILTER (filter)
