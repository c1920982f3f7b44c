/* SPDX-License-Identifier: BSD-3-Clause */
/* Using an internal snapshot: see snapshot.h.  The entries come from
 * the layer's snapshot table (snapshot_table.c).
 */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"
#include "qcow2_geometry.h"
#include "q2_error.h"

/* What qemu checks of a snapshot's L1 table when it loads the snapshot
 * (qcow2_validate_table): qemu's size bound and cluster alignment.  A
 * table past the end of the file reads as zeros, as in qemu.
 */
int
snapshot_check_l1 (const struct layer *l, const struct qcow2_snapshot *s)
{
  if ((uint64_t) s->l1_size * 8 > QCOW2_MAX_L1_BYTES)
    return q2_error ("%s: snapshot '%s' (id %s): L1 table too large "
                     "(%" PRIu32 " entries)", l->file.path, s->name, s->id,
                     s->l1_size);
  if (offset_into_cluster (&l->header, s->l1_table_offset))
    return q2_error ("%s: snapshot '%s' (id %s): L1 table offset %#" PRIx64
                     " is not aligned to a cluster", l->file.path, s->name,
                     s->id, s->l1_table_offset);
  return 0;
}

long
snapshot_find (const struct qcow2_snapshot_table *t, const char *id,
               const char *name)
{
  uint32_t i;

  if (id == NULL && name == NULL)
    return -1;
  for (i = 0; i < t->count; i++)
    if ((id == NULL || strcmp (t->entries[i].id, id) == 0) &&
        (name == NULL || strcmp (t->entries[i].name, name) == 0))
      return i;
  return -1;
}

struct chain *
snapshot_chain_open (const struct chain *c, const struct qcow2_snapshot *s)
{
  struct chain *sc = calloc (1, sizeof *sc);

  if (sc == NULL) {
    q2_error ("calloc: %m");
    return NULL;
  }
  if (snapshot_check_l1 (c->layers[0], s) == -1) {
    free (sc);
    return NULL;
  }
  sc->n = c->n;
  sc->cache = c->cache;
  sc->layers = malloc (c->n * sizeof *sc->layers);
  if (sc->layers == NULL) {
    q2_error ("malloc: %m");
    free (sc);
    return NULL;
  }
  memcpy (sc->layers, c->layers, c->n * sizeof *sc->layers);
  sc->layers[0] = layer_reopen (c->layers[0], c->cache, &c->locking);
  if (sc->layers[0] == NULL ||
      layer_load_l1 (sc->layers[0], s->l1_table_offset, s->l1_size) == -1) {
    snapshot_chain_close (sc);
    return NULL;
  }
  /* The same LUKS key decrypts the snapshot's data (owned by the full
   * chain's layer: see snapshot_chain_close).
   */
  sc->layers[0]->crypto = c->layers[0]->crypto;
  /* And the full chain's cluster cache serves it (keyed by layer, so
   * the snapshot's clusters never pass for the active image's).
   */
  sc->clusters = c->clusters;
  sc->layers[0]->clusters = c->clusters;
  return sc;
}

void
snapshot_chain_close (struct chain *sc)
{
  if (sc == NULL)
    return;
  if (sc->layers[0])
    sc->layers[0]->crypto = NULL;   /* the full chain's */
  layer_close (sc->layers[0]);  /* the others belong to the full chain */
  free (sc->layers);
  free (sc);
}
