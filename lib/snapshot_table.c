/* SPDX-License-Identifier: BSD-3-Clause */
/* The snapshot table, read as qemu 7.2 reads it when it opens an image
 * (qcow2_read_snapshots).  See snapshot_table.h.
 */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot_table.h"
#include "cleanup.h"
#include "be.h"
#include "q2_error.h"
#include "qcow2_geometry.h"

#define KNOWN_EXTRA_DATA 16     /* vm_state_size_large, disk_size */
#define MAX_NAMES (2 * 65535)   /* id and name, 16-bit sizes each */

/* A string of LEN bytes of BUF, up to its first NUL (qemu uses the
 * names as C strings); so a name past the end of the file costs
 * nothing.
 */
static char *
dup_string (const char *buf, size_t len)
{
  char *s = strndup (buf, len);

  if (s == NULL)
    q2_error ("strndup: %m");
  return s;
}

static int
past_max (const struct hostfile *f, uint32_t i, uint64_t offset)
{
  return q2_error ("%s: snapshot table entry %" PRIu32 ": at %#" PRIx64
                   ", runs past the largest offset qemu reads (%#" PRIx64
                   ")", f->path, i, offset, HOSTFILE_MAX_OFFSET);
}

/* Decode the entry at *OFFSET (8-aligned) into S and move *OFFSET past
 * its last name byte.  NAMES is a scratch buffer of MAX_NAMES bytes.
 */
static int
read_entry (struct qcow2_snapshot *s, uint32_t i, const struct hostfile *f,
            const struct qcow2_header *h, uint64_t *offset, char *names)
{
  uint8_t e[QCOW2_SNAPSHOT_HEADER_LENGTH], extra[KNOWN_EXTRA_DATA] = { 0 };

  s->entry_offset = *offset;
  if (!hostfile_offset_ok (*offset, sizeof e))
    return past_max (f, i, *offset);
  if (hostfile_pread (f, e, sizeof e, *offset) == -1)
    return -1;
  s->l1_table_offset = get_be64 (e);
  s->l1_size = get_be32 (e + 8);
  s->id_size = get_be16 (e + 12);
  s->name_size = get_be16 (e + 14);
  s->date_sec = get_be32 (e + 16);
  s->date_nsec = get_be32 (e + 20);
  s->vm_clock_nsec = get_be64 (e + 24);
  s->vm_state_size = get_be32 (e + 32);
  s->extra_data_size = get_be32 (e + 36);
  if (s->extra_data_size > QCOW2_MAX_SNAPSHOT_EXTRA_DATA)
    return q2_error ("%s: snapshot table entry %" PRIu32 ": "
                     "extra_data_size: %" PRIu32 " is more than %d",
                     f->path, i, s->extra_data_size,
                     QCOW2_MAX_SNAPSHOT_EXTRA_DATA);
  *offset += sizeof e;
  /* qemu's later reads of the entry (extra data, id, name) must end by
   * HOSTFILE_MAX_OFFSET too.
   */
  if (!hostfile_offset_ok (s->entry_offset, sizeof e + s->extra_data_size +
                           s->id_size + s->name_size))
    return past_max (f, i, s->entry_offset);

  if (hostfile_pread (f, extra, s->extra_data_size < sizeof extra ?
                      s->extra_data_size : sizeof extra, *offset) == -1)
    return -1;
  if (s->extra_data_size >= 8)
    s->vm_state_size = get_be64 (extra);
  /* Without the field, qemu takes the image's size in whole sectors. */
  s->disk_size = s->extra_data_size >= 16 ? get_be64 (extra + 8)
                                          : qcow2_guest_size (h);
  *offset += s->extra_data_size;

  if (hostfile_pread (f, names, s->id_size + s->name_size, *offset) == -1)
    return -1;
  s->id = dup_string (names, s->id_size);
  s->name = dup_string (names + s->id_size, s->name_size);
  if (s->id == NULL || s->name == NULL)
    return -1;
  *offset += s->id_size + s->name_size;
  return 0;
}

int
qcow2_snapshot_table_read (struct qcow2_snapshot_table *t,
                           const struct hostfile *f,
                           const struct qcow2_header *h)
{
  uint64_t offset = h->snapshots_offset;
  CLEANUP_FREE char *names = NULL;   /* scratch for one entry's names */
  uint32_t i;

  memset (t, 0, sizeof *t);
  t->offset = h->snapshots_offset;
  if (h->nb_snapshots == 0)
    return 0;
  /* nb_snapshots <= QCOW2_MAX_SNAPSHOTS: the header check saw to it. */
  t->entries = calloc (h->nb_snapshots, sizeof *t->entries);
  names = malloc (MAX_NAMES);
  if (t->entries == NULL || names == NULL) {
    q2_error ("malloc: %m");
    goto fail;
  }
  for (i = 0; i < h->nb_snapshots; i++) {
    offset = (offset + 7) & ~UINT64_C (7);
    t->count = i + 1;
    if (read_entry (&t->entries[i], i, f, h, &offset, names) == -1)
      goto fail;
    if (offset - t->offset > QCOW2_MAX_SNAPSHOTS_SIZE) {
      q2_error ("%s: nb_snapshots: the snapshot table is more than %d "
                "bytes long (at entry %" PRIu32 ")", f->path,
                QCOW2_MAX_SNAPSHOTS_SIZE, i);
      goto fail;
    }
  }
  t->length = offset - t->offset;
  return 0;
 fail:
  qcow2_snapshot_table_free (t);
  return -1;
}

void
qcow2_snapshot_table_free (struct qcow2_snapshot_table *t)
{
  uint32_t i;

  for (i = 0; i < t->count; i++) {
    free (t->entries[i].id);
    free (t->entries[i].name);
  }
  free (t->entries);
  t->entries = NULL;
  t->count = 0;
}
