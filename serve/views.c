/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "views.h"
#include "json.h"
#include "q2_parse.h"

/* Strict decimal layer number 1..n (no sign, no leading zero). */
static int
parse_layer_number (const struct chain *c, const char *s, const char **end,
                    size_t *layer)
{
  unsigned n;

  if (*s == '0' || q2_parse_uint (s, end, c->n, &n) == -1)
    return -1;
  *layer = n - 1;
  return 0;
}

/* snapshot/NAME picks the first snapshot named NAME, snapshot-id/ID the
 * first with that id: qemu's snapshot.name= and snapshot.id= choices.
 */
static int
parse_snapshot (const struct view_sources *vs, const char *name,
                struct view *v)
{
  long i = -1;

  if (strncmp (name, "snapshot/", 9) == 0 && name[9])
    i = snapshot_find (vs->snapshots, NULL, name + 9);
  else if (strncmp (name, "snapshot-id/", 12) == 0 && name[12]) {
    i = snapshot_find (vs->snapshots, name + 12, NULL);
    v->by_id = true;
  }
  if (i < 0)
    return -1;
  v->kind = VIEW_SNAPSHOT;
  v->index = i;
  return 0;
}

/* bitmap/NAME is the bitmap named NAME; bitmap/NAME.json the map of
 * bitmap NAME (an exact bitmap name wins: a bitmap may be called
 * "x.json").
 */
static int
parse_bitmap (const struct view_sources *vs, const char *name,
              struct view *v)
{
  const char *b = name + 7;
  size_t len = strlen (b);
  long i = bitmap_find (vs->bitmaps, b);
  char *base;

  if (i >= 0) {
    v->kind = VIEW_BITMAP;
    v->index = i;
    return 0;
  }
  if (len <= 5 || strcmp (b + len - 5, ".json") != 0)
    return -1;
  base = strndup (b, len - 5);
  if (base == NULL)
    return -1;
  i = bitmap_find (vs->bitmaps, base);
  free (base);
  if (i < 0)
    return -1;
  v->kind = VIEW_BITMAP_JSON;
  v->index = i;
  return 0;
}

int
view_parse (const struct view_sources *vs, const char *name, struct view *v)
{
  const struct chain *c = vs->chain;
  const char *rest;

  *v = (struct view) { .kind = VIEW_GUEST, .layer = 0 };
  if (name[0] == '\0')
    return 0;
  if (strcmp (name, "map.json") == 0) {
    v->kind = VIEW_MAP_JSON;
    return 0;
  }
  if (strncmp (name, "snapshot", 8) == 0)
    return parse_snapshot (vs, name, v);
  if (strncmp (name, "bitmap/", 7) == 0)
    return parse_bitmap (vs, name, v);
  if (strncmp (name, "layer/", 6) == 0) {
    if (parse_layer_number (c, name + 6, &rest, &v->layer) == -1)
      return -1;
    if (strcmp (rest, "") == 0)
      v->kind = VIEW_LAYER;
    else if (strcmp (rest, ".map.json") == 0)
      v->kind = VIEW_LAYER_MAP_JSON;
    else
      return -1;
    return 0;
  }
  if (strncmp (name, "file/", 5) == 0) {
    if (parse_layer_number (c, name + 5, &rest, &v->layer) == -1)
      return -1;
    if (strcmp (rest, "") == 0)
      v->kind = VIEW_FILE;
    else if (strcmp (rest, ".json") == 0)
      v->kind = VIEW_FILE_JSON;
    else
      return -1;
    return c->layers[v->layer]->format == LAYER_QCOW2 ? 0 : -1;
  }
  return -1;
}

char *
view_name (const struct view_sources *vs, const struct view *v)
{
  const struct qcow2_snapshot *sn = NULL;
  char *name = NULL;
  int r = -1;

  if (v->kind == VIEW_SNAPSHOT)
    sn = &vs->snapshots->entries[v->index];
  switch (v->kind) {
  case VIEW_GUEST:     r = asprintf (&name, "%s", ""); break;
  case VIEW_LAYER:     r = asprintf (&name, "layer/%zu", v->layer + 1); break;
  case VIEW_FILE:      r = asprintf (&name, "file/%zu", v->layer + 1); break;
  case VIEW_FILE_JSON: r = asprintf (&name, "file/%zu.json", v->layer + 1);
                       break;
  case VIEW_MAP_JSON:  r = asprintf (&name, "map.json"); break;
  case VIEW_LAYER_MAP_JSON:
    r = asprintf (&name, "layer/%zu.map.json", v->layer + 1);
    break;
  case VIEW_SNAPSHOT:
    r = v->by_id ? asprintf (&name, "snapshot-id/%s", sn->id)
                 : asprintf (&name, "snapshot/%s", sn->name);
    break;
  case VIEW_BITMAP:
    r = asprintf (&name, "bitmap/%s", vs->bitmaps->entries[v->index].name);
    break;
  case VIEW_BITMAP_JSON:
    r = asprintf (&name, "bitmap/%s.json", vs->bitmaps->entries[v->index].name);
    break;
  }
  return r == -1 ? NULL : name;
}

static const char *
format_name (const struct layer *l)
{
  return l->format == LAYER_RAW ? "raw" : "qcow2";
}

/* A snapshot's name or id in a description (NBD descriptions are
 * UTF-8): as it is (quoted if QUOTED), or, if it is not UTF-8, as
 * qemu-img info's JSON writes it (invalid bytes as U+FFFD).
 */
static void
describe_string (FILE *fp, const char *s, bool quoted)
{
  if (!json_utf8_valid (s))
    json_string (fp, s);
  else
    fprintf (fp, quoted ? "'%s'" : "%s", s);
}

static void
describe_snapshot (FILE *fp, const struct layer *l, const struct qcow2_snapshot *sn)
{
  fprintf (fp, "guest disk as of internal snapshot id ");
  describe_string (fp, sn->id, false);
  fprintf (fp, ", name ");
  describe_string (fp, sn->name, true);
  fprintf (fp, " of %s (snapshot disk size %" PRIu64 "; served at the "
           "current size, as qemu does)", l->file.path, sn->disk_size);
}

static void
describe_bitmap (FILE *fp, const struct layer *l, const struct qcow2_bitmap *b,
                 bool json)
{
  fprintf (fp, json ? "dirty map (JSON, as nbdinfo --map=qemu:dirty-bitmap:"
                      "%s prints it) of persistent bitmap '%s'"
                    : "guest disk where persistent bitmap '%s' is dirty, "
                      "holes elsewhere%s",
           b->name, json ? b->name : "");
  fprintf (fp, " (granularity %" PRIu64 ", %s) of %s",
           UINT64_C (1) << b->granularity_bits,
           b->flags & QCOW2_BITMAP_AUTO ? "enabled" : "disabled",
           l->file.path);
}

char *
view_describe (const struct view_sources *vs, const struct view *v)
{
  const struct chain *c = vs->chain;
  const struct layer *l = c->layers[v->layer];
  char *s = NULL;
  size_t len, i;
  FILE *fp = open_memstream (&s, &len);

  if (fp == NULL)
    return NULL;
  switch (v->kind) {
  case VIEW_GUEST:
    fprintf (fp, "guest disk: %s", l->file.path);
    for (i = 1; i < c->n; i++)
      fprintf (fp, "%s%s (%s)", i == 1 ? ", backing chain: " : " <- ",
               c->layers[i]->file.path, format_name (c->layers[i]));
    break;
  case VIEW_LAYER:
    fprintf (fp, "layer %zu alone: %s (%s)", v->layer + 1, l->file.path,
             format_name (l));
    break;
  case VIEW_FILE:
    fprintf (fp, "qcow2 file of layer %zu, unused clusters as holes: %s",
             v->layer + 1, l->file.path);
    break;
  case VIEW_FILE_JSON:
    fprintf (fp, "allocation statistics and metadata map (JSON) of %s",
             l->file.path);
    break;
  case VIEW_MAP_JSON:
    fprintf (fp, "guest map of the whole chain as qemu-img map "
             "--output=json prints it: %s", l->file.path);
    break;
  case VIEW_LAYER_MAP_JSON:
    fprintf (fp, "map of layer %zu alone as qemu-img map --output=json "
             "prints it with \"backing\": null: %s", v->layer + 1,
             l->file.path);
    break;
  case VIEW_SNAPSHOT:
    describe_snapshot (fp, l, &vs->snapshots->entries[v->index]);
    break;
  case VIEW_BITMAP:
  case VIEW_BITMAP_JSON:
    describe_bitmap (fp, l, &vs->bitmaps->entries[v->index],
                     v->kind == VIEW_BITMAP_JSON);
    break;
  }
  if (fclose (fp) == EOF) {
    free (s);
    return NULL;
  }
  return s;
}

/* Which name lists snapshot I: its name if it is the first snapshot
 * with that (non-empty) name, else its id if it is the first with that
 * id; neither (not listed) if both are taken.  A name or id is what
 * qemu compares: the bytes before any NUL (qemu reads them into a C
 * string), so its length is the string's, not the entry's name_size or
 * id_size field (found by difftest: a name_size of 0xf002 in front of
 * "s1" and a NUL).  NBD export names are UTF-8 of at most 4096 bytes:
 * a name that is not, or is longer, is reached by id.  Snapshots qemu
 * cannot load are not listed (opening them says why).
 */
#define NBD_MAX_NAME 4096

static bool
nameable (const char *prefix, const char *s)
{
  return s[0] && strlen (prefix) + strlen (s) <= NBD_MAX_NAME &&
    json_utf8_valid (s);
}

static int
snapshot_listing (const struct view_sources *vs, size_t i, bool *by_id)
{
  const struct qcow2_snapshot_table *t = vs->snapshots;
  const struct qcow2_snapshot *sn = &t->entries[i];

  if (snapshot_check_l1 (vs->chain->layers[0], sn) == -1)
    return -1;
  if (nameable ("snapshot/", sn->name) &&
      (size_t) snapshot_find (t, NULL, sn->name) == i) {
    *by_id = false;
    return 0;
  }
  if (nameable ("snapshot-id/", sn->id) &&
      (size_t) snapshot_find (t, sn->id, NULL) == i) {
    *by_id = true;
    return 0;
  }
  return -1;
}

/* Bitmaps that qemu would not serve (in use: inconsistent) are not
 * listed; opening them says why.  Nor are a second bitmap of the same
 * name (qemu's, as for snapshots: the bytes before any NUL) or a name
 * that is not UTF-8 (NBD export names are).
 */
static bool
bitmap_listed (const struct qcow2_bitmap_directory *d, size_t i)
{
  const struct qcow2_bitmap *b = &d->entries[i];

  return !(b->flags & QCOW2_BITMAP_IN_USE) && b->name[0] &&
    json_utf8_valid (b->name) && (size_t) bitmap_find (d, b->name) == i;
}

/* bitmap/NAME.json, unless a bitmap is called NAME.json. */
static bool
bitmap_json_listed (const struct qcow2_bitmap_directory *d, size_t i)
{
  char *json;
  bool r;

  if (asprintf (&json, "%s.json", d->entries[i].name) == -1)
    return false;
  r = bitmap_find (d, json) < 0;
  free (json);
  return r;
}

int
view_for_each (const struct view_sources *vs,
               int (*f) (void *opaque, const struct view *v), void *opaque)
{
  const struct chain *c = vs->chain;
  struct view v = { .kind = VIEW_GUEST };
  size_t i;

  if (f (opaque, &v) == -1)
    return -1;
  v.kind = VIEW_MAP_JSON;
  if (f (opaque, &v) == -1)
    return -1;
  for (i = 0; i < c->n; i++) {
    v = (struct view) { .kind = VIEW_LAYER, .layer = i };
    if (f (opaque, &v) == -1)
      return -1;
    v.kind = VIEW_LAYER_MAP_JSON;
    if (f (opaque, &v) == -1)
      return -1;
  }
  for (i = 0; i < c->n; i++) {
    if (c->layers[i]->format != LAYER_QCOW2)
      continue;
    v = (struct view) { .kind = VIEW_FILE, .layer = i };
    if (f (opaque, &v) == -1)
      return -1;
    v.kind = VIEW_FILE_JSON;
    if (f (opaque, &v) == -1)
      return -1;
  }
  for (i = 0; i < vs->snapshots->count; i++) {
    v = (struct view) { .kind = VIEW_SNAPSHOT, .index = i };
    if (snapshot_listing (vs, i, &v.by_id) == 0 &&
        f (opaque, &v) == -1)
      return -1;
  }
  for (i = 0; i < vs->bitmaps->count; i++) {
    if (!bitmap_listed (vs->bitmaps, i))
      continue;
    v = (struct view) { .kind = VIEW_BITMAP, .index = i };
    if (f (opaque, &v) == -1)
      return -1;
    v.kind = VIEW_BITMAP_JSON;
    if (bitmap_json_listed (vs->bitmaps, i) && f (opaque, &v) == -1)
      return -1;
  }
  return 0;
}
