/* SPDX-License-Identifier: BSD-3-Clause */
/* The snapshot table: a list of variable-length entries, each 8-byte
 * aligned: a 40-byte head (L1 table offset and size, id and name
 * lengths, dates, VM state size, extra data size), the extra data (v3:
 * at least the 64-bit VM state size and the 64-bit disk size), the id
 * and the name (not NUL-terminated).
 */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"
#include "be.h"
#include "q2_error.h"

#define ENTRY_HEAD 40

static char *
read_string (struct layer *l, uint64_t offset, uint16_t len)
{
  char *s = malloc ((size_t) len + 1);

  if (s == NULL) {
    q2_error ("malloc: %m");
    return NULL;
  }
  if (hostfile_pread (&l->file, s, len, offset) == -1) {
    free (s);
    return NULL;
  }
  s[len] = '\0';
  return s;
}

/* What qemu checks of a snapshot's L1 table when it loads the snapshot
 * (qcow2_validate_table): qemu's size bound and cluster alignment.  A
 * table past the end of the file reads as zeros, as in qemu.
 */
int
snapshot_check_l1 (const struct layer *l, const struct snapshot *s)
{
  if ((uint64_t) s->l1_size * 8 > QCOW2_MAX_L1_BYTES)
    return q2_error ("%s: snapshot '%s' (id %s): L1 table too large "
                     "(%" PRIu32 " entries)", l->file.path, s->name, s->id,
                     s->l1_size);
  if (s->l1_table_offset & (l->header.cluster_size - 1))
    return q2_error ("%s: snapshot '%s' (id %s): L1 table offset %#" PRIx64
                     " is not aligned to a cluster", l->file.path, s->name,
                     s->id, s->l1_table_offset);
  return 0;
}

/* Read entry I at *OFFSET (aligned here) and advance *OFFSET. */
static int
read_entry (struct layer *l, uint32_t i, uint64_t *offset, struct snapshot *s)
{
  uint8_t head[ENTRY_HEAD], extra[16] = { 0 };
  uint32_t extra_size;
  uint64_t off = (*offset + 7) & ~UINT64_C (7);

  if (hostfile_pread (&l->file, head, sizeof head, off) == -1)
    return -1;
  s->l1_table_offset = get_be64 (head);
  s->l1_size = get_be32 (head + 8);
  s->id_len = get_be16 (head + 12);
  s->name_len = get_be16 (head + 14);
  s->date_sec = get_be32 (head + 16);
  s->date_nsec = get_be32 (head + 20);
  s->vm_state_size = get_be32 (head + 32);
  extra_size = get_be32 (head + 36);
  if (extra_size > SNAPSHOT_MAX_EXTRA_DATA)
    return q2_error ("%s: snapshot %" PRIu32 ": too much extra data "
                     "(%" PRIu32 " bytes)", l->file.path, i + 1, extra_size);
  off += ENTRY_HEAD;
  if (hostfile_pread (&l->file, extra,
                      extra_size < sizeof extra ? extra_size : sizeof extra,
                      off) == -1)
    return -1;
  if (extra_size >= 8)
    s->vm_state_size = get_be64 (extra);
  s->disk_size = extra_size >= 16 ? get_be64 (extra + 8) : l->header.size;
  off += extra_size;
  s->id = read_string (l, off, s->id_len);
  off += s->id_len;
  s->name = read_string (l, off, s->name_len);
  off += s->name_len;
  if (s->id == NULL || s->name == NULL)
    return -1;
  if (off - l->header.snapshots_offset > SNAPSHOT_MAX_TABLE_BYTES)
    return q2_error ("%s: snapshot table is too big", l->file.path);
  *offset = off;
  return 0;
}

int
snapshot_table_read (struct layer *l, struct snapshot_table *t)
{
  uint64_t offset = l->header.snapshots_offset;
  uint32_t i;

  *t = (struct snapshot_table) { 0 };
  if (l->format != LAYER_QCOW2 || l->header.nb_snapshots == 0)
    return 0;
  /* nb_snapshots is bounded by the header check (QCOW2_MAX_SNAPSHOTS). */
  t->s = calloc (l->header.nb_snapshots, sizeof *t->s);
  if (t->s == NULL)
    return q2_error ("calloc: %m");
  for (i = 0; i < l->header.nb_snapshots; i++) {
    t->n = i + 1;                 /* so that free releases entry I */
    if (read_entry (l, i, &offset, &t->s[i]) == -1) {
      snapshot_table_free (t);
      return -1;
    }
  }
  return 0;
}

void
snapshot_table_free (struct snapshot_table *t)
{
  uint32_t i;

  for (i = 0; i < t->n; i++) {
    free (t->s[i].id);
    free (t->s[i].name);
  }
  free (t->s);
  *t = (struct snapshot_table) { 0 };
}

long
snapshot_find (const struct snapshot_table *t, const char *id,
               const char *name)
{
  uint32_t i;

  if (id == NULL && name == NULL)
    return -1;
  for (i = 0; i < t->n; i++)
    if ((id == NULL || strcmp (t->s[i].id, id) == 0) &&
        (name == NULL || strcmp (t->s[i].name, name) == 0))
      return i;
  return -1;
}

struct chain *
snapshot_chain_open (const struct chain *c, const struct snapshot *s)
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
  sc->layers[0] = layer_open (c->layers[0]->file.path, LAYER_QCOW2, c->cache,
                             &c->locking);
  if (sc->layers[0] == NULL ||
      layer_load_l1 (sc->layers[0], s->l1_table_offset, s->l1_size) == -1) {
    snapshot_chain_close (sc);
    return NULL;
  }
  /* The same LUKS key decrypts the snapshot's data (owned by the full
   * chain's layer: see snapshot_chain_close).
   */
  sc->layers[0]->crypto = c->layers[0]->crypto;
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
