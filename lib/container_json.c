/* SPDX-License-Identifier: BSD-3-Clause */
/* The container report (file/N.json): header facts, allocation
 * statistics, the refcount check and the metadata map, as JSON.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container_json.h"
#include "json.h"
#include "json_budget.h"
#include "q2_error.h"
#include "qcow2_geometry.h"

static void
json_features (FILE *fp, uint64_t bits, enum qcow2_feature_type type)
{
  unsigned i;
  int first = 1;

  fputc ('[', fp);
  for (i = 0; i < 64; i++) {
    if (!(bits & (UINT64_C (1) << i)))
      continue;
    fprintf (fp, "%s", first ? "" : ", ");
    if (qcow2_feature_name (type, i))
      json_string (fp, qcow2_feature_name (type, i));
    else
      fprintf (fp, "\"bit %u\"", i);
    first = 0;
  }
  fputc (']', fp);
}

static void
json_header (FILE *fp, const struct layer *l)
{
  const struct qcow2_header *h = &l->header;

  fprintf (fp, "  \"header\": {\n"
           "    \"version\": %" PRIu32 ",\n"
           "    \"cluster-size\": %" PRIu64 ",\n"
           "    \"virtual-size\": %" PRIu64 ",\n"
           "    \"refcount-bits\": %u,\n"
           "    \"compression-type\": \"%s\",\n"
           "    \"extended-l2\": %s,\n"
           "    \"snapshots\": %" PRIu32 ",\n"
           "    \"bitmaps\": %" PRIu32 ",\n",
           h->version, h->cluster_size, qcow2_guest_size (h),
           1U << h->refcount_order,
           h->compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib",
           h->extended_l2 ? "true" : "false", h->nb_snapshots,
           h->has_bitmaps_ext ? h->nb_bitmaps : 0);
  fprintf (fp, "    \"incompatible-features\": ");
  json_features (fp, h->incompatible_features, QCOW2_FEAT_INCOMPATIBLE);
  fprintf (fp, ",\n    \"compatible-features\": ");
  json_features (fp, h->compatible_features, QCOW2_FEAT_COMPATIBLE);
  fprintf (fp, ",\n    \"autoclear-features\": ");
  json_features (fp, h->autoclear_features, QCOW2_FEAT_AUTOCLEAR);
  fprintf (fp, ",\n    \"backing-file\": ");
  json_string (fp, h->backing_file);
  fprintf (fp, ",\n    \"backing-format\": ");
  json_string (fp, h->backing_format);
  fprintf (fp, ",\n    \"data-file\": ");
  json_string (fp, h->data_file);
  fprintf (fp, "\n  },\n");
}

static void
json_stats (FILE *fp, const struct container *c)
{
  const struct container_stats *s = &c->stats;

  fprintf (fp, "  \"allocation\": {\n"
           "    \"used-data\": %" PRIu64 ",\n"
           "    \"used-zero\": %" PRIu64 ",\n"
           "    \"used-discarded\": %" PRIu64 ",\n"
           "    \"used-overrun\": %" PRIu64 ",\n"
           "    \"unused-data\": %" PRIu64 ",\n"
           "    \"unused-zero\": %" PRIu64 ",\n"
           "    \"unused-discarded\": %" PRIu64 "\n  },\n",
           s->used_data, s->used_zero, s->used_discarded, s->used_overrun,
           s->unused_data, s->unused_zero, s->unused_discarded);
}

static void
json_check (FILE *fp, const struct refcount_report *r)
{
  fprintf (fp, "  \"check\": {\n"
           "    \"leaks\": %" PRIu64 ",\n"
           "    \"corruptions\": %" PRIu64 ",\n"
           "    \"allocated-clusters\": %" PRIu64 ",\n"
           "    \"compressed-clusters\": %" PRIu64 ",\n"
           "    \"total-clusters\": %" PRIu64 ",\n"
           "    \"referenced-clusters\": %" PRIu64 ",\n"
           "    \"image-end-offset\": %" PRIu64 "\n  },\n",
           r->leaks, r->corruptions, r->allocated_clusters,
           r->compressed_clusters, r->total_clusters,
           r->referenced_clusters, r->image_end_offset);
}

/* ---- the metadata map: every structure once, sorted by offset; data
 * clusters merged into runs (a cluster shared by snapshots once) ---- */

/* The references of the metadata walk, for the metadata map: one entry
 * per (kind, offset), which is all the map lists (a structure shared by
 * several L1 tables is listed once, with the longest length and the
 * lowest snapshot index).  A hash of (kind, offset) finds the entry
 * already kept, so that memory is bounded by the distinct structures
 * the file holds, not by the references to them: L1 entries that all
 * point at one L2 table full of entries make millions of references
 * from a file of a few hundred KiB.
 */

static size_t
slot_of (const struct meta_list *m, enum meta_kind kind, uint64_t offset)
{
  size_t i = ((offset ^ ((uint64_t) kind << 56)) * 0x9e3779b97f4a7c15ULL) >> 7;

  for (i &= m->nslots - 1; m->slots[i]; i = (i + 1) & (m->nslots - 1)) {
    const struct meta_ref *r = &m->v[m->slots[i] - 1];
    if (r->kind == kind && r->offset == offset)
      break;
  }
  return i;
}

static int
grow (struct meta_list *m)
{
  size_t cap = m->cap ? m->cap * 2 : 256, i;
  struct meta_ref *v = realloc (m->v, cap * sizeof *v);

  if (v == NULL)
    return q2_error ("realloc: %m");
  m->v = v;
  m->cap = cap;
  free (m->slots);
  m->nslots = cap * 4;
  m->slots = calloc (m->nslots, sizeof *m->slots);
  if (m->slots == NULL)
    return q2_error ("calloc: %m");
  for (i = 0; i < m->n; i++)
    m->slots[slot_of (m, m->v[i].kind, m->v[i].offset)] = i + 1;
  return 0;
}

int
meta_list_collect (void *opaque, const struct meta_ref *ref)
{
  struct meta_list *m = opaque;
  size_t i;

  if (m->n == m->cap && grow (m) == -1)
    return -1;
  i = slot_of (m, ref->kind, ref->offset);
  if (m->slots[i]) {
    struct meta_ref *r = &m->v[m->slots[i] - 1];
    if (ref->length > r->length)
      r->length = ref->length;
    if (ref->snapshot < r->snapshot)
      r->snapshot = ref->snapshot;
    return 0;
  }
  m->v[m->n] = *ref;
  m->slots[i] = ++m->n;
  return 0;
}

void
meta_list_free (struct meta_list *m)
{
  free (m->v);
  free (m->slots);
}

static bool
is_data_kind (enum meta_kind k)
{
  return k == META_DATA || k == META_ZERO_ALLOC || k == META_COMPRESSED ||
         k == META_BITMAP_DATA;
}

static int
compare_refs (const void *a, const void *b)
{
  const struct meta_ref *x = a, *y = b;

  if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
  if (x->kind != y->kind) return (int) x->kind - (int) y->kind;
  return x->snapshot - y->snapshot;     /* active (-1) first */
}

/* A host cluster that is data for a snapshot and a preallocated zero
 * cluster for the active state is one cluster: keep it as data.  The
 * sort puts the data reference first among those at the same offset.
 */
static void
drop_zero_alloc_of_data (struct meta_list *m)
{
  size_t i, out = 0;
  bool data_here = false;

  for (i = 0; i < m->n; i++) {
    if (i == 0 || m->v[i].offset != m->v[i - 1].offset)
      data_here = false;
    if (m->v[i].kind == META_DATA)
      data_here = true;
    else if (m->v[i].kind == META_ZERO_ALLOC && data_here)
      continue;
    m->v[out++] = m->v[i];
  }
  m->n = out;
}

static int
json_metadata (FILE *fp, struct meta_list *m, struct json_charge *charge,
               const char *path)
{
  size_t i = 0, out = 0;

  qsort (m->v, m->n, sizeof *m->v, compare_refs);
  drop_zero_alloc_of_data (m);
  fprintf (fp, "  \"metadata\": [");
  while (i < m->n) {
    struct meta_ref r = m->v[i++];

    /* Same structure seen again (shared L2 table, shared cluster), or
     * the next piece of a data run: fold it in.
     */
    while (i < m->n && m->v[i].kind == r.kind &&
           (m->v[i].offset == r.offset ||
            (is_data_kind (r.kind) && m->v[i].offset <= r.offset + r.length))) {
      uint64_t end = m->v[i].offset + m->v[i].length;
      if (end > r.offset + r.length)
        r.length = end - r.offset;
      i++;
    }
    fprintf (fp, "%s\n    { \"type\": \"%s\", \"offset\": %" PRIu64
             ", \"length\": %" PRIu64, out++ ? "," : "",
             meta_kind_name (r.kind), r.offset, r.length);
    if (r.kind == META_HEADER_EXTENSION)
      fprintf (fp, ", \"extension\": \"0x%08" PRIx32 "\"", r.type);
    if ((r.kind == META_L1 || r.kind == META_L2) && r.snapshot >= 0)
      fprintf (fp, ", \"snapshot\": %d", r.snapshot);
    fprintf (fp, " }");
    if (json_budget_charge (charge, fp, path) == -1)
      return -1;
  }
  fprintf (fp, "\n  ]\n");
  return 0;
}

int
container_json_build (struct container *c, struct meta_list *m)
{
  struct json_charge charge = { 0 };
  FILE *fp;
  int r;

  fp = open_memstream (&c->json, &c->json_len);
  if (fp == NULL)
    return q2_error ("open_memstream: %m");
  fprintf (fp, "{\n  \"file\": ");
  json_string (fp, c->l->file.path);
  fprintf (fp, ",\n  \"file-length\": %" PRIu64 ",\n", c->l->file.size);
  json_header (fp, c->l);
  json_stats (fp, c);
  json_check (fp, &c->check);
  r = json_metadata (fp, m, &charge, c->l->file.path);
  if (r == 0)
    fprintf (fp, "}\n");
  r = json_budget_close (&charge, fp, &c->json, c->l->file.path, r);
  c->json_charged = charge.bytes;
  return r;
}
