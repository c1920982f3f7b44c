/* SPDX-License-Identifier: BSD-3-Clause */
/* The container report (file/N.json) and the metadata map it lists. */
#ifndef Q2_CONTAINER_JSON_H
#define Q2_CONTAINER_JSON_H

#include <stddef.h>

#include "container.h"
#include "metadata_walk.h"

/* The metadata walk's references, one per (kind, offset): see
 * container_json.c.
 */
struct meta_list {
  struct meta_ref *v;
  size_t n, cap;
  size_t *slots;                /* index + 1 into v, 0: empty */
  size_t nslots;                /* a power of 2, > 2 * n */
};

/* Metadata walk callback (OPAQUE: a struct meta_list, zeroed before
 * the first call) that adds REF to the list.
 */
int meta_list_collect (void *opaque, const struct meta_ref *ref);
void meta_list_free (struct meta_list *m);
#define CLEANUP_META_LIST __attribute__ ((cleanup (meta_list_free)))

/* Write C's report, with the metadata map M (sorted and merged here),
 * into c->json.  Returns 0 or -1 with q2_error set.
 */
int container_json_build (struct container *c, struct meta_list *m);

#endif
