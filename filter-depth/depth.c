/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdkit-depth-filter: publish the allocation depth of every guest
 * extent of a qcow2 backing chain (qemu's qemu:allocation-depth) as
 * exports, over the qcow2map plugin.
 *
 * nbdkit 1.32 negotiates only base:allocation and cannot open a second
 * plugin context per connection, so the filter opens the same chain
 * read-only with lib/ to learn the depth, and takes guest bytes from
 * the plugin through its one next context.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-filter.h>

#include "backing_chain.h"
#include "depth_map.h"
#include "image_lock.h"
#include "json_budget.h"
#include "json_pad.h"
#include "l2_cache.h"
#include "q2_error.h"
#include "nbd_extents.h"

#define JSON_EXPORT "depth.json"
#define VIEW_PREFIX "depth/"

static char *filename;                   /* the plugin's file= */
/* The chain as the plugin opens it: same overrides.  Encrypted layers
 * are opened without their keys (the filter only maps; guest bytes
 * come from the plugin), so passphrases are left to the plugin.
 */
static struct chain_params params = {
  .l2_cache_bytes = L2_CACHE_DEFAULT_BYTES,
  .keys_optional = true,
};
static const char *default_depth;        /* depth= parameter */
static unsigned default_lo, default_hi;
static struct chain *chain;

/* The JSON document, built on first use and then shared: the chain is
 * read-only, so it never changes.
 */
static pthread_mutex_t json_lock = PTHREAD_MUTEX_INITIALIZER;
static char *json;
static size_t json_len;

static void
depth_unload (void)
{
  chain_close (chain);
  chain_params_free (&params);
  free (filename);
  free (json);
}

static int
depth_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
              const char *key, const char *value)
{
  if (strcmp (key, "depth") == 0) {
    if (depth_range_parse (value, &default_lo, &default_hi) == -1) {
      nbdkit_error ("depth=%s: expected N or N-M (0 <= N <= M)", value);
      return -1;
    }
    default_depth = value;
    return 0;                    /* ours, not the plugin's */
  }
  /* The plugin's parameters: the plugin checks them first (and says
   * what is wrong with them); then the filter records them, to open the
   * same chain.
   */
  if (next (nxdata, key, value) == -1)
    return -1;
  if (strcmp (key, "file") == 0) {
    free (filename);
    filename = nbdkit_realpath (value);
    if (filename == NULL)
      return -1;
  }
  else if (strcmp (key, "json-max-size") == 0) {
    int64_t r = nbdkit_parse_size (value);
    if (r == -1)
      return -1;
    json_budget_set (r);           /* for depth.json, in our own budget */
  }
  else if (strcmp (key, "l2-cache-size") == 0) {
    int64_t r = nbdkit_parse_size (value);
    if (r == -1)
      return -1;
    params.l2_cache_bytes = r;
  }
  else if (chain_params_set (&params, key, value) == -1) {
    nbdkit_error ("%s", q2_last_error ());
    return -1;
  }
  else if (image_lock_config (&params.locking, key, value) == -1) {
    nbdkit_error ("%s", q2_last_error ());
    return -1;
  }
  return 0;
}

static int
depth_config_complete (nbdkit_next_config_complete *next,
                       nbdkit_backend *nxdata)
{
  if (filename == NULL) {
    nbdkit_error ("the depth filter works only over the qcow2map plugin: "
                  "no file= parameter was given");
    return -1;
  }
  return next (nxdata);
}

#define depth_config_help \
  "depth=N|N-M         Make the default export the guest disk restricted\n" \
  "                    to extents of allocation depth N (or N..M)."

/* Open the chain as the plugin does, read-only, at startup: any
 * problem stops nbdkit here with one line.
 */
static int
depth_get_ready (int thread_model)
{
  /* Our own descriptors, with the same locks as the plugin's: readers'
   * locks never conflict, even within one process.
   */
  chain = chain_open (filename, &params);
  if (chain == NULL) {
    nbdkit_error ("%s", q2_last_error ());
    return -1;
  }
  if (default_depth && default_hi > chain->n) {
    nbdkit_error ("depth=%s: %s has only %zu layer(s)",
                  default_depth, filename, chain->n);
    return -1;
  }
  return 0;
}

/* ---- views ---- */

enum view_kind { VIEW_PASS, VIEW_JSON, VIEW_RANGE };

struct handle {
  enum view_kind kind;
  unsigned lo, hi;               /* VIEW_RANGE */
};

/* Parse a client export name.  Returns 0, or -1 if it names a depth
 * view that does not exist.
 */
static int
parse_export (const char *name, struct handle *h)
{
  *h = (struct handle) { .kind = VIEW_PASS };
  if (name[0] == '\0' && default_depth) {
    h->kind = VIEW_RANGE;
    h->lo = default_lo;
    h->hi = default_hi;
    return 0;
  }
  if (strcmp (name, JSON_EXPORT) == 0) {
    h->kind = VIEW_JSON;
    return 0;
  }
  if (strncmp (name, VIEW_PREFIX, strlen (VIEW_PREFIX)) == 0) {
    h->kind = VIEW_RANGE;
    if (depth_range_parse (name + strlen (VIEW_PREFIX), &h->lo, &h->hi) == -1
        || h->hi > chain->n)
      return -1;
  }
  return 0;
}

static char *
range_description (unsigned lo, unsigned hi)
{
  char *s;

  if (lo == hi
      ? asprintf (&s, "guest disk of %s restricted to allocation depth %u "
                  "(%s)", filename, lo,
                  lo == 0 ? "allocated nowhere" :
                  chain->layers[lo - 1]->file.path) == -1
      : asprintf (&s, "guest disk of %s restricted to allocation depth "
                  "%u-%u", filename, lo, hi) == -1)
    return NULL;
  return s;
}

static int
add_export (struct nbdkit_exports *exports, const char *name, char *desc)
{
  int r;

  if (desc == NULL) {
    nbdkit_error ("asprintf: %m");
    return -1;
  }
  r = nbdkit_add_export (exports, name, desc);
  free (desc);
  return r;
}

/* The plugin's exports (all pass through), then depth.json and depth/N
 * for every layer.  depth/0 and the ranges depth/N-M are served but not
 * listed: their number grows with the square of the chain length.
 */
static int
depth_list_exports (nbdkit_next_list_exports *next, nbdkit_backend *nxdata,
                    int readonly, int is_tls, struct nbdkit_exports *exports)
{
  struct nbdkit_exports *plugin_exports = nbdkit_exports_new ();
  char name[64];
  size_t i;
  int r = -1;

  if (plugin_exports == NULL)
    return -1;
  if (next (nxdata, readonly, plugin_exports) == -1)
    goto out;
  for (i = 0; i < nbdkit_exports_count (plugin_exports); i++) {
    struct nbdkit_export e = nbdkit_get_export (plugin_exports, i);
    if (e.name[0] == '\0' && default_depth)
      r = add_export (exports, "", range_description (default_lo,
                                                      default_hi));
    else
      r = nbdkit_add_export (exports, e.name, e.description);
    if (r == -1)
      goto out;
  }
  r = add_export (exports, JSON_EXPORT,
                  strdup ("allocation depth map (qemu:allocation-depth) "
                          "as JSON, as nbdinfo --json --map prints it"));
  for (i = 1; r == 0 && i <= chain->n; i++) {
    snprintf (name, sizeof name, VIEW_PREFIX "%zu", i);
    r = add_export (exports, name, range_description (i, i));
  }
 out:
  nbdkit_exports_free (plugin_exports);
  return r;
}

static void *
depth_open (nbdkit_next_open *next, nbdkit_context *context,
            int readonly, const char *exportname, int is_tls)
{
  struct handle *h = malloc (sizeof *h);

  if (h == NULL) {
    nbdkit_error ("malloc: %m");
    return NULL;
  }
  if (parse_export (exportname, h) == -1) {
    nbdkit_error ("export '%s' not found: depth views are " VIEW_PREFIX "N "
                  "and " VIEW_PREFIX "N-M with 0 <= N <= M <= %zu",
                  exportname, chain->n);
    free (h);
    return NULL;
  }
  /* Depth views read the plugin's guest disk; others pass through.
   * Always read-only, for every view: the depth map describes the files
   * as they are on disk, which a write below this filter (for example
   * into --filter=cow's overlay) would contradict.
   */
  if (next (context, 1, h->kind == VIEW_PASS ? exportname : "") == -1) {
    free (h);
    return NULL;
  }
  return h;
}

static void
depth_close (void *handle)
{
  free (handle);
}

static int
build_json (void)
{
  int r = 0;

  pthread_mutex_lock (&json_lock);
  if (json == NULL) {
    json = depth_map_json (chain, &json_len);
    if (json && json_pad (&json, &json_len) == -1) {
      free (json);
      json = NULL;
    }
    if (json == NULL) {
      nbdkit_error ("%s", q2_last_error ());
      r = -1;
    }
  }
  pthread_mutex_unlock (&json_lock);
  return r;
}

/* What is below must serve the chain we opened.  Its size is all that
 * can be checked: another plugin, or a filter in between that changes
 * the size (blocksize with a minblock the size is not a multiple of,
 * truncate, ...), shows there.
 */
static int
depth_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;
  int64_t size;

  if (h->kind == VIEW_PASS)
    return 0;
  size = next->get_size (next);
  if (size == -1)
    return -1;
  if ((uint64_t) size != chain->layers[0]->size) {
    nbdkit_error ("depth filter: the export below it has %" PRIi64 " bytes "
                  "but the guest disk of %s has %" PRIu64 ": a filter "
                  "between them changes the size (put --filter=depth last, "
                  "next to the plugin), or the plugin is not qcow2map",
                  size, filename, chain->layers[0]->size);
    return -1;
  }
  return h->kind == VIEW_JSON ? build_json () : 0;
}

static int64_t
depth_get_size (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;

  return h->kind == VIEW_JSON ? (int64_t) json_len : next->get_size (next);
}

static const char *
depth_export_description (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;
  char *s;
  const char *r;

  switch (h->kind) {
  case VIEW_JSON:
    return "allocation depth map (qemu:allocation-depth) as JSON";
  case VIEW_RANGE:
    s = range_description (h->lo, h->hi);
    r = s ? nbdkit_strdup_intern (s) : NULL;
    free (s);
    return r;
  default:
    return next->export_description (next);
  }
}

/* Pass-through views must ask the plugin: nbdkit asserts that the
 * plugin's answer is known before forwarding a request to it.
 */
static int
depth_can_multi_conn (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;

  return h->kind == VIEW_PASS ? next->can_multi_conn (next) : 1;
}

static int
depth_can_extents (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;

  return h->kind == VIEW_PASS ? next->can_extents (next) : 1;
}

static int
depth_can_cache (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;

  /* A range view caches its in-range parts through the plugin. */
  return h->kind == VIEW_JSON ? NBDKIT_CACHE_NONE : next->can_cache (next);
}

/* ---- data path ---- */

static bool
in_range (const struct handle *h, const struct origin *o)
{
  unsigned depth = chain_origin_depth (o, 0);

  return depth >= h->lo && depth <= h->hi;
}

static int
origin_or_eio (uint64_t offset, uint64_t count, struct origin *o, int *err)
{
  if (chain_origin (chain, 0, chain->n - 1, offset, count, o) == -1) {
    nbdkit_error ("%s", q2_last_error ());
    *err = q2_request_errno ();
    return -1;
  }
  return 0;
}

static int
range_pread (nbdkit_next *next, const struct handle *h, uint8_t *buf,
             uint32_t count, uint64_t offset, int *err)
{
  while (count > 0) {
    struct origin o;

    if (origin_or_eio (offset, count, &o, err) == -1)
      return -1;
    if (!in_range (h, &o))
      memset (buf, 0, o.length);
    else if (next->pread (next, buf, o.length, offset, 0, err) == -1)
      return -1;
    buf += o.length;
    offset += o.length;
    count -= o.length;
  }
  return 0;
}

/* NBD_CMD_CACHE of a range view: the parts that the view reads from the
 * plugin (bounded work, like extents).
 */
static int
range_cache (nbdkit_next *next, const struct handle *h,
             uint32_t count, uint64_t offset, int *err)
{
  unsigned n;

  for (n = 0; count > 0 && n < MAX_EXTENTS_PER_REQUEST; n++) {
    struct origin o;

    if (origin_or_eio (offset, count, &o, err) == -1)
      return -1;
    if (in_range (h, &o) &&
        next->cache (next, o.length, offset, 0, err) == -1)
      return -1;
    offset += o.length;
    count -= o.length;
  }
  return 0;
}

static int
depth_cache (nbdkit_next *next, void *handle, uint32_t count,
             uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;

  if (h->kind == VIEW_RANGE)
    return range_cache (next, h, count, offset, err);
  return next->cache (next, count, offset, flags, err);
}

static int
depth_pread (nbdkit_next *next, void *handle, void *buf,
             uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;

  switch (h->kind) {
  case VIEW_JSON:
    memcpy (buf, json + offset, count);   /* nbdkit checked the bounds */
    return 0;
  case VIEW_RANGE:
    return range_pread (next, h, buf, count, offset, err);
  default:
    return next->pread (next, buf, count, offset, flags, err);
  }
}

/* Inside the range: the guest disk's base:allocation, but zeros that a
 * layer provides (zero clusters, past a short backing file) are
 * allocated, since they belong to the view.  Outside: unallocated
 * zeros.  OPAQUE is the handle.
 */
static int
range_allocation (void *opaque, uint64_t offset, uint64_t count,
                  uint64_t *length, struct allocation *a)
{
  const struct handle *h = opaque;
  struct origin o;

  if (chain_origin (chain, 0, chain->n - 1, offset, count, &o) == -1)
    return -1;
  *length = o.length;
  *a = ALLOCATION_HOLE;
  if (!in_range (h, &o))
    return 0;
  return chain_run_allocation (chain, &o, offset, false, length, a);
}

static int
range_extents (struct handle *h, uint32_t count, uint64_t offset,
               uint32_t flags, struct nbdkit_extents *extents, int *err)
{
  if (nbd_add_extents (extents, offset, count, flags & NBDKIT_FLAG_REQ_ONE,
                       range_allocation, h) == -1) {
    *err = errno;
    return -1;
  }
  return 0;
}

static int
depth_extents (nbdkit_next *next, void *handle, uint32_t count,
               uint64_t offset, uint32_t flags,
               struct nbdkit_extents *extents, int *err)
{
  struct handle *h = handle;

  switch (h->kind) {
  case VIEW_JSON:
    return nbdkit_add_extent (extents, offset, count, 0);
  case VIEW_RANGE:
    return range_extents (h, count, offset, flags, extents, err);
  default:
    return next->extents (next, count, offset, flags, extents, err);
  }
}

static struct nbdkit_filter filter = {
  .name               = "depth",
  /* Filters have no .version field: show ours in the long name
   * ("nbdkit --filter=depth qcow2map --help" prints it).
   */
  .longname           = "nbdkit allocation depth filter (qcow2map "
                        PACKAGE_VERSION ")",
  .unload             = depth_unload,
  .config             = depth_config,
  .config_complete    = depth_config_complete,
  .config_help        = depth_config_help,
  .get_ready          = depth_get_ready,
  .list_exports       = depth_list_exports,
  .open               = depth_open,
  .close              = depth_close,
  .prepare            = depth_prepare,
  .get_size           = depth_get_size,
  .export_description = depth_export_description,
  .can_multi_conn     = depth_can_multi_conn,
  .can_extents        = depth_can_extents,
  .can_cache          = depth_can_cache,
  .cache              = depth_cache,
  .pread              = depth_pread,
  .extents            = depth_extents,
};

NBDKIT_REGISTER_FILTER (filter)
