/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <endian.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "metadata_walk.h"
#include "l1_sweep.h"
#include "qcow2_cluster.h"
#include "qcow2_geometry.h"
#include "refcount.h"
#include "be.h"
#include "bitmap_directory.h"
#include "q2_error.h"
#include "sort_u64.h"

struct walk {
  struct layer *l;
  meta_cb cb;
  meta_l2_cb l2_cb;             /* or NULL */
  void *opaque;
  uint8_t *buf;                 /* one cluster */
  uint64_t count;               /* references each emitted one stands for */
};


const char *
meta_kind_name (enum meta_kind kind)
{
  static const char *names[] = {
    "header", "header-extension", "backing-file-name", "l1-table",
    "l2-table", "data", "zero-preallocated", "compressed",
    "refcount-table", "refcount-block", "snapshot-table",
    "bitmap-directory", "bitmap-table", "bitmap-data",
    "encryption-header", "corrupt", "external-data",
  };
  return names[kind];
}

static int
emit (struct walk *w, enum meta_kind kind, uint64_t offset, uint64_t length,
      int snapshot)
{
  struct meta_ref r = { kind, offset, length, snapshot, 0, w->count };
  return w->cb (w->opaque, &r);
}

/* ---- tables that may run past the end of the file ---- */

/* How many of the N entries of ESIZE bytes of a table at OFFSET start
 * inside the file.  The rest read as zeros, as they do in qemu (its block
 * layer reads zeros past the end of a file), and a zero entry points
 * nowhere: they need neither memory nor work.  This keeps allocations
 * and work bounded by the file, whatever size the metadata claims.
 */
static uint64_t
entries_in_file (const struct walk *w, uint64_t offset, uint64_t n,
                 unsigned esize)
{
  uint64_t size = w->l->file.size, in;

  if (offset >= size)
    return 0;
  in = (size - offset + esize - 1) / esize;
  return n < in ? n : in;
}

/* Read N big-endian entries at OFFSET into a new host-endian table. */
static uint64_t *
read_table (struct walk *w, uint64_t offset, uint64_t n)
{
  uint64_t *t = malloc (n ? n * 8 : 1), i;

  if (t == NULL) {
    q2_error ("malloc: %m");
    return NULL;
  }
  if (hostfile_pread (&w->l->file, t, n * 8, offset) == -1) {
    free (t);
    return NULL;
  }
  for (i = 0; i < n; i++)
    t[i] = be64toh (t[i]);
  return t;
}

/* ---- header ---- */

static int
walk_header (struct walk *w)
{
  const struct qcow2_header *h = &w->l->header;
  size_t i;

  if (emit (w, META_HEADER, 0, h->header_length, -1) == -1)
    return -1;
  /* Extensions were read and validated at open.  An end mark past the
   * end of the file (read as zeros) is not in the file: not listed.
   */
  for (i = 0; i < h->nb_extensions; i++) {
    const struct qcow2_header_extension *e = &h->extensions[i];
    struct meta_ref r = { META_HEADER_EXTENSION, e->offset, 8, -1, e->type, 1 };

    if (e->offset + 8 > w->l->file.size)
      break;
    if (e->type != QCOW2_EXT_END)
      r.length = 8 + ((e->length + UINT64_C (7)) & ~UINT64_C (7));
    if (w->cb (w->opaque, &r) == -1)
      return -1;
  }
  if (h->backing_file_offset && h->backing_file_size &&
      emit (w, META_BACKING_NAME, h->backing_file_offset,
            h->backing_file_size, -1) == -1)
    return -1;
  return 0;
}

/* ---- L1 / L2 ---- */

/* One L2 entry (ENTRY, and BITMAP with extended L2 entries; stored at
 * WHERE) as qemu-img check sees it (check_refcounts_l2 in qemu 7.2),
 * which is not how a read sees it (cluster_decode): the check counts one
 * corruption for each defect it finds (reserved bits, COPIED on a
 * compressed cluster, a compressed cluster with a data file or a
 * subcluster bitmap, an inconsistent bitmap, an unaligned host offset)
 * and still counts the references of most (an unaligned cluster covers
 * the two host clusters it straddles), where a read fails.
 */
static int
walk_l2_entry (struct walk *w, uint64_t where, uint64_t entry,
               uint64_t bitmap, int snapshot)
{
  const struct qcow2_header *h = &w->l->header;
  bool data_file = w->l->data != &w->l->file;
  uint64_t host = entry & L2E_OFFSET_MASK;
  enum meta_kind kind;
  unsigned defects = 0, i;

  if (entry & QCOW_OFLAG_COMPRESSED) {
    struct cluster_desc d;

    defects += (entry & QCOW_OFLAG_COPIED) != 0;
    if (data_file || bitmap)
      defects++;                /* and the cluster is not counted */
    else {
      cluster_decode (&w->l->geom, entry, 0, &d);
      if (emit (w, META_COMPRESSED, d.host_offset, d.compressed_size,
                snapshot) == -1)
        return -1;
    }
  }
  else {
    /* qemu's qcow2_get_cluster_type: the zero flag first (not with
     * extended L2 entries), then offset 0 is unallocated unless an
     * external data file's entry has COPIED set.
     */
    bool zero = !h->extended_l2 && (entry & QCOW_OFLAG_ZERO);

    defects += (entry & L2E_STD_RESERVED_MASK) != 0;
    if (host == 0 && (zero || !(data_file && (entry & QCOW_OFLAG_COPIED)))) {
      if (!zero)                /* unallocated */
        defects += (bitmap & QCOW_L2_BITMAP_ALL_ALLOC) != 0;
    }
    else {                      /* normal, or zero with a host cluster */
      defects += ((bitmap >> 32) & bitmap) != 0;
      defects += offset_into_cluster (h, host) != 0;
      kind = data_file ? META_EXTERNAL_DATA
             : zero ? META_ZERO_ALLOC : META_DATA;
      if (emit (w, kind, data_file ? where : host, h->cluster_size,
                snapshot) == -1)
        return -1;
    }
  }
  for (i = 0; i < defects; i++)
    if (emit (w, META_CORRUPT, where, 0, snapshot) == -1)
      return -1;
  return 0;
}

static int
walk_l2 (struct walk *w, uint64_t l2_offset, int snapshot)
{
  const struct qcow2_header *h = &w->l->header;
  uint64_t n = h->cluster_size / h->l2_entry_size, i;

  if (emit (w, META_L2, l2_offset, h->cluster_size, snapshot) == -1)
    return -1;
  /* Entries past the end of the file are zeros: unallocated. */
  n = entries_in_file (w, l2_offset, n, h->l2_entry_size);
  if (hostfile_pread (&w->l->file, w->buf, n * h->l2_entry_size, l2_offset)
      == -1)
    return -1;
  if (w->l2_cb &&
      w->l2_cb (w->opaque, l2_offset, w->buf, n, snapshot, w->count) == -1)
    return -1;
  for (i = 0; i < n; i++) {
    const uint8_t *e = w->buf + i * h->l2_entry_size;

    if (walk_l2_entry (w, l2_offset + i * h->l2_entry_size, get_be64 (e),
                       h->extended_l2 ? get_be64 (e + 8) : 0,
                       snapshot) == -1)
      return -1;
  }
  return 0;
}

/* The corruptions qemu-img check counts for a non-zero L1 ENTRY at
 * WHERE, seen COUNT times: reserved bits set, an unaligned L2 offset.
 */
static int
l1_entry_defects (struct walk *w, uint64_t where, uint64_t entry,
                  uint64_t count, int snapshot)
{
  unsigned defects = ((entry & L1E_RESERVED_MASK) != 0) +
    (offset_into_cluster (&w->l->header, entry & L1E_OFFSET_MASK) != 0);
  int r = 0;

  w->count = count;
  while (defects-- > 0 && r == 0)
    r = emit (w, META_CORRUPT, where, 0, snapshot);
  w->count = 1;
  return r;
}

/* The active L1 table (loaded at open: l->l1, host endian).  Snapshot
 * L1 tables go through walk_snapshot_l1s.
 *
 * Each distinct L2 table is walked once, its references standing for
 * as many as there are L1 entries pointing at it (w->count): the counts
 * are qemu-img check's, which walks the table once per entry, but the
 * work is bounded by the tables in the file, not by the L1 entries
 * (131072 entries pointing at one full L2 table would otherwise be a
 * billion references from a 1 MiB file).
 */
static int
walk_active_l1 (struct walk *w)
{
  const struct qcow2_header *h = &w->l->header;
  uint64_t *l2s, i, j, n = h->l1_size, k = 0;
  int r = 0;

  if (n == 0)
    return 0;
  if (emit (w, META_L1, h->l1_table_offset, n * 8, -1) == -1)
    return -1;
  l2s = malloc (n * 8);
  if (l2s == NULL)
    return q2_error ("malloc: %m");
  /* qemu-img check (check_refcounts_l1) skips only zero entries: an
   * entry with reserved bits set or an unaligned offset is a corruption,
   * and its L2 table is still counted and checked where the offset
   * bits say, even at offset 0 (the header, then read as L2 entries).
   */
  for (i = 0; i < n; i++) {
    if (w->l->l1[i] == 0)
      continue;
    if (l1_entry_defects (w, h->l1_table_offset + i * 8, w->l->l1[i], 1,
                          -1) == -1) {
      free (l2s);
      return -1;
    }
    l2s[k++] = w->l->l1[i] & L1E_OFFSET_MASK;
  }
  sort_u64 (l2s, k);
  for (i = 0; i < k && r == 0; i = j) {
    for (j = i + 1; j < k && l2s[j] == l2s[i]; j++)
      ;
    w->count = j - i;
    r = walk_l2 (w, l2s[i], -1);
    w->count = 1;
  }
  free (l2s);
  return r;
}

/* ---- refcounts ---- */

static int
walk_refcounts (struct walk *w)
{
  const struct qcow2_header *h = &w->l->header;
  uint64_t i;

  if (emit (w, META_REFCOUNT_TABLE, h->refcount_table_offset,
            (uint64_t) h->refcount_table_clusters * h->cluster_size, -1) == -1)
    return -1;
  for (i = 0; i < w->l->reftable_entries; i++) {
    uint64_t off = w->l->reftable[i] & REFT_OFFSET_MASK;
    if (off && emit (w, META_REFCOUNT_BLOCK, off, h->cluster_size, -1) == -1)
      return -1;
  }
  return 0;
}

/* ---- snapshots ---- */

/* The L2 tables the snapshots' L1 tables point at, with how often. */
struct l2_uses {
  struct walk *w;
  struct l2_use { uint64_t offset, count; int snapshot; } *v;
  size_t n, cap;
};

/* One word of snapshot L1 tables (l1_sweep.h): what walk_active_l1
 * does with an entry, COVERAGE times.
 */
static int
snapshot_l1_word (void *opaque, uint64_t position, uint64_t value,
                  uint64_t coverage, int snapshot)
{
  struct l2_uses *u = opaque;
  uint64_t l2 = value & L1E_OFFSET_MASK;

  if (u->n == u->cap) {
    size_t cap = u->cap ? 2 * u->cap : 1024;
    struct l2_use *v = realloc (u->v, cap * sizeof *v);

    if (v == NULL)
      return q2_error ("realloc: %m");
    u->v = v;
    u->cap = cap;
  }
  u->v[u->n++] = (struct l2_use) { l2, coverage, snapshot };
  return l1_entry_defects (u->w, position, value, coverage, snapshot);
}

static int
compare_l2_uses (const void *a, const void *b)
{
  const struct l2_use *x = a, *y = b;

  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* All snapshots' L1 tables together: each L1 table is referenced once
 * per snapshot, as qemu-img check counts it; then every word of them is
 * read once (l1_sweep.h) and every distinct L2 table walked once, with
 * all its references.  The counts are those of walking each snapshot in
 * turn, the work is bounded by the file (not snapshots x tables).
 */
static int
walk_snapshot_l1s (struct walk *w)
{
  const struct qcow2_snapshot_table *t = &w->l->snapshots;
  struct l1_span *spans = malloc ((t->count ? t->count : 1) * sizeof *spans);
  struct l2_uses u = { w, NULL, 0, 0 };
  size_t n = 0, i, j;
  int r = 0;

  if (spans == NULL)
    return q2_error ("malloc: %m");
  /* The table was read and validated at open. */
  for (i = 0; i < t->count && r == 0; i++) {
    const struct qcow2_snapshot *s = &t->entries[i];

    /* qemu-img check: an L1 table "not cluster aligned" (found by
     * difftest), or whose "l1_size is too large": one corruption, and
     * the snapshot is skipped (calculate_refcounts).
     */
    if (offset_into_cluster (&w->l->header, s->l1_table_offset) ||
        (uint64_t) s->l1_size * 8 > QCOW2_MAX_L1_BYTES)
      r = emit (w, META_CORRUPT, s->entry_offset, 0, i);
    else if (s->l1_size > 0) {
      r = emit (w, META_L1, s->l1_table_offset, (uint64_t) s->l1_size * 8, i);
      spans[n].start = s->l1_table_offset;
      spans[n].end = s->l1_table_offset +
        8 * entries_in_file (w, s->l1_table_offset, s->l1_size, 8);
      spans[n++].snapshot = i;
    }
  }
  if (r == 0)
    r = l1_sweep (&w->l->file, spans, n, snapshot_l1_word, &u);
  free (spans);
  if (r == 0 && u.n > 0)
    qsort (u.v, u.n, sizeof *u.v, compare_l2_uses);
  for (i = 0; i < u.n && r == 0; i = j) {
    struct l2_use sum = u.v[i];

    for (j = i + 1; j < u.n && u.v[j].offset == sum.offset; j++) {
      sum.count += u.v[j].count;
      if (u.v[j].snapshot < sum.snapshot)
        sum.snapshot = u.v[j].snapshot;
    }
    w->count = sum.count;
    r = walk_l2 (w, sum.offset, sum.snapshot);
    w->count = 1;
  }
  free (u.v);
  return r;
}

static int
walk_snapshots (struct walk *w)
{
  const struct qcow2_snapshot_table *t = &w->l->snapshots;

  uint32_t i;

  if (walk_snapshot_l1s (w) == -1)
    return -1;
  if (t->count &&
      emit (w, META_SNAPSHOT_TABLE, t->offset, t->length, -1) == -1)
    return -1;
  /* qemu-img check (qcow2_check_read_snapshot_table): in a v3 image,
   * an entry whose extra data lacks the 64-bit VM state size and the
   * disk size is "incomplete", a corruption (found by difftest).
   */
  for (i = 0; w->l->header.version >= 3 && i < t->count; i++)
    if (t->entries[i].extra_data_size < 16 &&
        emit (w, META_CORRUPT, t->entries[i].entry_offset, 0, i) == -1)
      return -1;
  return 0;
}

/* ---- bitmaps ---- */

static int
walk_bitmap_table (struct walk *w, uint64_t offset, uint32_t size)
{
  uint64_t *t, i, n;
  int r = 0;

  /* SIZE was bounded at open (qcow2_bitmap_directory_read). */
  if (size == 0)
    return 0;
  if (emit (w, META_BITMAP_TABLE, offset, (uint64_t) size * 8, -1) == -1)
    return -1;
  n = entries_in_file (w, offset, size, 8);
  t = read_table (w, offset, n);
  if (t == NULL)
    return -1;
  for (i = 0; i < n && r == 0; i++) {
    uint64_t data = t[i] & QCOW2_BITMAP_TABLE_OFFSET_MASK;
    if (data)
      r = emit (w, META_BITMAP_DATA, data, w->l->header.cluster_size, -1);
  }
  free (t);
  return r;
}

/* The bitmap directory was read and checked at open (l->bitmaps):
 * empty unless the extension is in effect (its autoclear bit set),
 * which is when qemu, and qemu-img check, count the bitmaps.
 */
static int
walk_bitmaps (struct walk *w)
{
  const struct qcow2_header *h = &w->l->header;
  const struct qcow2_bitmap_directory *d = &w->l->bitmaps;
  uint32_t i;

  if (d->count == 0)
    return 0;
  if (emit (w, META_BITMAP_DIRECTORY, h->bitmap_directory_offset,
            h->bitmap_directory_size, -1) == -1)
    return -1;
  for (i = 0; i < d->count; i++)
    if (walk_bitmap_table (w, d->entries[i].table_offset,
                           d->entries[i].table_size) == -1)
      return -1;
  return 0;
}

int
metadata_walk (struct layer *l, meta_cb cb, void *opaque)
{
  return metadata_walk_l2 (l, cb, NULL, opaque);
}

int
metadata_walk_l2 (struct layer *l, meta_cb cb, meta_l2_cb l2_cb, void *opaque)
{
  struct walk w = { l, cb, l2_cb, opaque, malloc (l->header.cluster_size),
                    1 };
  int r;

  if (w.buf == NULL)
    return q2_error ("malloc: %m");
  r = walk_header (&w);
  if (r == 0)
    r = walk_active_l1 (&w);
  if (r == 0)
    r = walk_refcounts (&w);
  if (r == 0)
    r = walk_snapshots (&w);
  if (r == 0)
    r = walk_bitmaps (&w);
  /* The LUKS area (its place was checked against the file at open). */
  if (r == 0 && l->header.has_crypto_ext && l->header.crypto_length)
    r = emit (&w, META_ENCRYPTION_HEADER, l->header.crypto_offset,
              l->header.crypto_length, -1);
  free (w.buf);
  return r;
}
