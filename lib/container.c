#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "qcow2_geometry.h"
#include "backing_chain.h"
#include "json.h"
#include "metadata_walk.h"
#include "refcount.h"
#include "q2_error.h"
#include "sort_u64.h"


/* ---- in-use runs ---- */

/* Length of the run of clusters with the same in-use state as the one
 * at OFFSET, from OFFSET, clipped to MAX.
 */
static uint64_t
in_use_run (const struct container *c, uint64_t offset, uint64_t max,
            bool *in_use)
{
  unsigned bits = c->l->header.cluster_bits;
  uint64_t k = offset >> bits, end = offset + max;
  uint64_t next;

  *in_use = refcount_report_in_use (&c->check, k);
  for (next = (k + 1) << bits; next < end; next += UINT64_C (1) << bits)
    if (refcount_report_in_use (&c->check, next >> bits) != *in_use)
      break;
  return (next < end ? next : end) - offset;
}

int
container_pread (struct container *c, void *buf, uint64_t count,
                 uint64_t offset)
{
  uint8_t *p = buf;

  while (count > 0) {
    bool in_use;
    uint64_t n = in_use_run (c, offset, count, &in_use);

    if (!in_use)
      memset (p, 0, n);
    else if (hostfile_pread (&c->l->file, p, n, offset) == -1)
      return q2_error ("%s: container offset %" PRIu64 ": %s",
                       c->l->file.path, offset, q2_last_error ());
    p += n;
    offset += n;
    count -= n;
  }
  return 0;
}

int
container_block_status (struct container *c, uint64_t offset,
                        uint64_t count, uint64_t *length,
                        struct allocation *a)
{
  bool in_use, is_data;

  *length = in_use_run (c, offset, count, &in_use);
  if (!in_use) {
    *a = ALLOCATION_HOLE;
    return 0;
  }
  if (hostfile_allocation (&c->l->file, offset, *length, &is_data,
                           length) == -1)
    return -1;
  *a = (struct allocation) { .allocated = true, .reads_zero = !is_data };
  return 0;
}

/* ---- allocation statistics ---- */

/* Add [OFFSET, OFFSET+LEN) of the file, used or not, split into host
 * data and holes.  (A local file has no "discarded" state: a hole reads
 * as zero, as qemu's file driver reports it.)
 */
static int
add_host_range (struct container *c, uint64_t offset, uint64_t len,
                bool used)
{
  struct container_stats *s = &c->stats;

  while (len > 0) {
    bool is_data;
    uint64_t n;

    if (hostfile_allocation (&c->l->file, offset, len, &is_data, &n) == -1)
      return -1;
    if (used) *(is_data ? &s->used_data : &s->used_zero) += n;
    else      *(is_data ? &s->unused_data : &s->unused_zero) += n;
    offset += n;
    len -= n;
  }
  return 0;
}

/* Nonzero entries [FROM, TO) of the refcount block at OFFSET (BUF: one
 * cluster).
 */
static int
refblock_nonzero (struct layer *l, uint64_t offset, uint64_t from,
                  uint64_t to, uint8_t *buf, uint64_t *n)
{
  uint64_t k;

  if (hostfile_pread (&l->file, buf, l->header.cluster_size, offset) == -1)
    return -1;
  *n = 0;
  for (k = from; k < to; k++)
    *n += refcount_block_entry (buf, l->header.refcount_order, k) != 0;
  return 0;
}

/* Clusters past the end of the file with a refcount, from FIRST_CLUSTER
 * on: walk only the refcount blocks that exist, each distinct block
 * once however many refcount table entries point at it, so that the
 * work is bounded by the file (its blocks) and not by the table.
 */
static int
count_overrun (struct container *c, uint64_t first_cluster)
{
  struct layer *l = c->l;
  unsigned block_bits = l->header.cluster_bits + 3 - l->header.refcount_order;
  uint64_t per_block = UINT64_C (1) << block_bits, i, j, n = 0, nonzero = 0;
  uint64_t first = first_cluster >> block_bits;
  uint64_t *blocks = malloc ((l->reftable_entries + 1) * sizeof *blocks);
  uint8_t *buf = malloc (l->header.cluster_size);
  int r = -1;

  if (blocks == NULL || buf == NULL) {
    q2_error ("malloc: %m");
    goto out;
  }
  for (i = first; i < l->reftable_entries; i++) {
    uint64_t off = l->reftable[i] & REFT_OFFSET_MASK;

    if (off == 0 || off >= l->file.size)
      continue;
    if (offset_into_cluster (&l->header, off)) {
      q2_error ("%s: refcount block offset %#" PRIx64 " is not aligned "
                "(refcount table index %" PRIu64 ")", l->file.path, off, i);
      goto out;
    }
    if (i == first) {           /* the block holding FIRST_CLUSTER: part */
      if (refblock_nonzero (l, off, first_cluster & (per_block - 1),
                            per_block, buf, &nonzero) == -1)
        goto out;
      c->stats.used_overrun += nonzero * l->header.cluster_size;
    }
    else
      blocks[n++] = off;
  }
  sort_u64 (blocks, n);
  for (i = 0; i < n; i = j) {
    for (j = i + 1; j < n && blocks[j] == blocks[i]; j++)
      ;
    if (refblock_nonzero (l, blocks[i], 0, per_block, buf, &nonzero) == -1)
      goto out;
    c->stats.used_overrun += (j - i) * nonzero * l->header.cluster_size;
  }
  r = 0;
 out:
  free (blocks);
  free (buf);
  return r;
}

/* Stored refcounts of the clusters inside the file come from the
 * check; only those past the end are read here.
 */
static int
measure (struct container *c)
{
  struct layer *l = c->l;
  uint64_t cs = l->header.cluster_size, size = l->file.size;
  uint64_t nclusters = (size + cs - 1) / cs, k, start = 0;
  bool run_used = false;

  for (k = 0; k <= nclusters; k++) {
    bool used = k < nclusters && refcount_report_refcounted (&c->check, k);

    if (k == nclusters || (k > 0 && used != run_used)) {
      uint64_t end = k * cs < size ? k * cs : size;
      if (end > start && add_host_range (c, start, end - start, run_used) == -1)
        return -1;
      start = end;
    }
    run_used = used;
  }
  /* The used last cluster may extend past the end of the file. */
  if (nclusters > 0 && nclusters * cs > size &&
      refcount_report_refcounted (&c->check, nclusters - 1))
    c->stats.used_overrun += nclusters * cs - size;
  return count_overrun (c, nclusters);
}

/* ---- JSON ---- */

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
           h->version, h->cluster_size, h->size, 1U << h->refcount_order,
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

/* The metadata map: every structure once, sorted by offset; data
 * clusters merged into runs (a cluster shared by snapshots once).
 */
/* The references of the metadata walk, for the metadata map: one entry
 * per (kind, offset), which is all the map lists (a structure shared by
 * several L1 tables is listed once, with the longest length and the
 * lowest snapshot index).  A hash of (kind, offset) finds the entry
 * already kept, so that memory is bounded by the distinct structures
 * the file holds, not by the references to them: L1 entries that all
 * point at one L2 table full of entries make millions of references
 * from a file of a few hundred KiB.
 */
struct meta_list {
  struct meta_ref *v;
  size_t n, cap;
  size_t *slots;                /* index + 1 into v, 0: empty */
  size_t nslots;                /* a power of 2, > 2 * n */
};

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

static int
collect (void *opaque, const struct meta_ref *ref)
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

static void
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

static void
json_metadata (FILE *fp, struct meta_list *m)
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
  }
  fprintf (fp, "\n  ]\n");
}

static int
build_json (struct container *c, struct meta_list *m)
{
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
  json_metadata (fp, m);
  fprintf (fp, "}\n");
  r = fclose (fp);
  return r == 0 ? 0 : q2_error ("open_memstream: %m");
}

struct container *
container_open (struct layer *l)
{
  struct container *c = calloc (1, sizeof *c);
  struct meta_list m = { 0 };

  if (c == NULL) {
    q2_error ("calloc: %m");
    return NULL;
  }
  c->l = l;
  if (l->format != LAYER_QCOW2) {
    q2_error ("%s: a raw layer has no container view", l->file.path);
    goto fail;
  }
  /* One metadata walk: the check counts the references and hands them
   * on to collect () for the metadata map.
   */
  if (refcount_check (l, &c->check, collect, &m) == -1 || measure (c) == -1 ||
      build_json (c, &m) == -1)
    goto fail;
  meta_list_free (&m);
  return c;
 fail:
  meta_list_free (&m);
  container_close (c);
  return NULL;
}

void
container_close (struct container *c)
{
  if (c == NULL)
    return;
  refcount_report_free (&c->check);
  free (c->json);
  free (c);
}
