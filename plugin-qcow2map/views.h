/* The exports ("views") the plugin serves, and their names:
 *
 *   ""             the guest disk of the whole chain
 *   layer/N        layer N alone (1 = the image named by file=)
 *   file/N         the qcow2 file of layer N, unused clusters as holes
 *   file/N.json    statistics and metadata map of that file
 *   map.json       qemu-img map --output=json of the guest disk
 *   layer/N.map.json  the same for layer N alone ("backing": null)
 */
#ifndef QCOW2MAP_VIEWS_H
#define QCOW2MAP_VIEWS_H

#include <stddef.h>

#include "backing_chain.h"

enum view_kind {
  VIEW_GUEST, VIEW_LAYER, VIEW_FILE, VIEW_FILE_JSON,
  VIEW_MAP_JSON,                /* map.json (layer 0) */
  VIEW_LAYER_MAP_JSON,          /* layer/N.map.json */
};

struct view {
  enum view_kind kind;
  size_t layer;                 /* index into chain->layers */
};

/* Parse an export name.  Returns 0, or -1 if no such view exists in
 * chain C (malformed, layer out of range, container view of a raw
 * layer).
 */
int view_parse (const struct chain *c, const char *name, struct view *v);

/* The export name of V (static buffer of the caller, 64 bytes). */
void view_name (const struct view *v, char name[64]);

/* A description of V for nbdinfo --list (malloc'd), or NULL. */
char *view_describe (const struct chain *c, const struct view *v);

/* Call F for every view of chain C, in listing order. */
int view_for_each (const struct chain *c,
                   int (*f) (void *opaque, const struct view *v),
                   void *opaque);

#endif
