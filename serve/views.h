/* SPDX-License-Identifier: BSD-3-Clause */
/* The exports ("views") the plugin serves of its image (and the qcow2map
 * filter of each image; filter-qcow2map/export_name.h), and their names:
 *
 *   ""             the guest disk of the whole chain
 *   layer/N        layer N alone (1 = the image named by file=)
 *   file/N         the qcow2 file of layer N, unused clusters as holes
 *   file/N.json    statistics and metadata map of that file
 *   map.json       qemu-img map --output=json of the guest disk
 *   layer/N.map.json  the same for layer N alone ("backing": null)
 *   snapshot/NAME  the guest disk as of internal snapshot NAME
 *   snapshot-id/ID the same, snapshot chosen by id
 *   bitmap/NAME    the guest disk where persistent bitmap NAME is dirty
 *   bitmap/NAME.json  that bitmap's dirty map (nbdinfo --json --map)
 */
#ifndef QCOW2MAP_VIEWS_H
#define QCOW2MAP_VIEWS_H

#include <stddef.h>
#include <stdbool.h>

#include "backing_chain.h"
#include "snapshot.h"
#include "bitmap.h"

enum view_kind {
  VIEW_GUEST, VIEW_LAYER, VIEW_FILE, VIEW_FILE_JSON,
  VIEW_MAP_JSON,                /* map.json (layer 0) */
  VIEW_LAYER_MAP_JSON,          /* layer/N.map.json */
  VIEW_SNAPSHOT,                /* snapshot/NAME, snapshot-id/ID */
  VIEW_BITMAP,                  /* bitmap/NAME */
  VIEW_BITMAP_JSON,             /* bitmap/NAME.json */
};

struct view {
  enum view_kind kind;
  size_t layer;                 /* index into chain->layers */
  size_t index;                 /* snapshot or bitmap index */
  bool by_id;                   /* VIEW_SNAPSHOT: named by id */
};

/* What views are made of: the chain, and the internal snapshots and
 * persistent bitmaps of its top image.
 */
struct view_sources {
  const struct chain *chain;
  const struct qcow2_snapshot_table *snapshots;   /* the top layer's */
  const struct qcow2_bitmap_directory *bitmaps;    /* the top layer's */
};

/* Parse an export name.  Returns 0, or -1 if no such view exists in
 * VS (malformed, layer out of range, container view of a raw layer,
 * no such snapshot).
 */
int view_parse (const struct view_sources *vs, const char *name,
                struct view *v);

/* The export name of V (malloc'd), or NULL. */
char *view_name (const struct view_sources *vs, const struct view *v);

/* A description of V for nbdinfo --list (malloc'd), or NULL. */
char *view_describe (const struct view_sources *vs, const struct view *v);

/* Call F for every view listed, in listing order. */
int view_for_each (const struct view_sources *vs,
                   int (*f) (void *opaque, const struct view *v),
                   void *opaque);

#endif
