/* SPDX-License-Identifier: BSD-3-Clause */
/* A served image: an open backing chain and every export ("view", see
 * views.h) made of it, as nbdkit serves them.  Shared by the plugin
 * (one served image for the server, over local files) and the qcow2map
 * filter (one per connection, over the plugin below): the views, their
 * bytes, extents, sizes and descriptions have one home, here.
 *
 * What views build on first use (container analyses, JSON documents,
 * snapshot chains) is kept in the served image and shared by every
 * handle on it.  Errors are reported with nbdkit_error (and errno for
 * the client), naming the file, the guest offset and the cause.
 */
#ifndef QCOW2MAP_SERVED_IMAGE_H
#define QCOW2MAP_SERVED_IMAGE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "backing_chain.h"
#include "container.h"
#include "views.h"

struct nbdkit_extents;

struct json_doc {
  char *text;
  size_t len;
};

struct served_image {
  struct chain *chain;
  struct view_sources sources;
  pthread_mutex_t lock;               /* what is built on first use: */
  struct container **containers;      /* [layer] */
  struct json_doc *map_docs;          /* [0] the chain, [I+1] layer I */
  struct json_doc *bitmap_docs;       /* one per bitmap of the top */
  struct chain **snapshot_chains;     /* one per snapshot of the top */
};

/* Serve CHAIN (which the served image takes over).  Warns (stderr)
 * about images marked corrupt; describes the chain with DEBUG_CHAIN.
 * Returns NULL after nbdkit_error (CHAIN is then closed).
 */
struct served_image *served_image_new (struct chain *chain, bool debug_chain);
void served_image_free (struct served_image *img);

/* nbdkit_debug the L2 and compressed-cluster cache statistics. */
void served_image_debug_caches (const struct served_image *img);

/* One export being served: the view an export name names, and what it
 * reads from.
 */
struct view_handle {
  struct served_image *img;
  struct view view;
  struct chain *chain;           /* guest, layer and snapshot views */
  size_t first, last;            /* guest and layer views: the layers */
  struct container *container;   /* file views */
  const char *json;              /* JSON views: the document served */
  size_t json_len;
};

/* Open view NAME of IMG into H.  SOURCE names the image in the "not
 * found" message.  Returns 0, or -1 after nbdkit_error.
 */
int view_handle_open (struct view_handle *h, struct served_image *img,
                      const char *name, const char *source);

int64_t view_handle_size (const struct view_handle *h);
void view_handle_block_size (const struct view_handle *h, uint32_t *minimum,
                             uint32_t *preferred, uint32_t *maximum);
/* The description of H's view (interned by nbdkit), or NULL. */
const char *view_handle_description (const struct view_handle *h);

/* Requests: 0, or -1 after nbdkit_error with errno set. */
int view_handle_pread (struct view_handle *h, void *buf, uint32_t count,
                       uint64_t offset);
int view_handle_extents (struct view_handle *h, uint32_t count,
                         uint64_t offset, uint32_t flags,
                         struct nbdkit_extents *extents);
int view_handle_cache (struct view_handle *h, uint32_t count,
                       uint64_t offset);

/* Call F (OPAQUE, export name, description) for every view of IMG, in
 * listing order.
 */
int served_image_for_each_export (const struct served_image *img,
                                  int (*f) (void *opaque, const char *name,
                                            const char *description),
                                  void *opaque);

#endif
