/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <endian.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"
#include "qcow2_geometry.h"
#include "be.h"
#include "bitmap_directory.h"
#include "compress.h"
#include "luks.h"
#include "filename.h"
#include "foreign_format.h"
#include "refcount.h"
#include "q2_error.h"


/* ---- opening ---- */

int
layer_probe_file (const struct hostfile *f, enum layer_format *format)
{
  uint8_t magic[FOREIGN_FORMAT_PROBE_BYTES];
  size_t len = f->size < sizeof magic ? f->size : sizeof magic;
  const char *foreign;

  if (hostfile_pread (f, magic, len, 0) == -1)
    return -1;
  *format = qcow2_is_qcow2 (magic, len) ? LAYER_QCOW2 : LAYER_RAW;
  foreign = foreign_format_probe (magic, len);
  if (foreign)
    return q2_error ("%s: magic: this is a %s image, not qcow2", f->path,
                     foreign);
  return 0;
}

int
layer_probe_format (const char *path, enum layer_format *format)
{
  struct hostfile f;
  int r;

  if (hostfile_open (&f, path) == -1)
    return -1;
  r = layer_probe_file (&f, format);
  hostfile_close (&f);
  return r;
}

int
layer_format_by_name (const char *name, enum layer_format *format)
{
  if (strcmp (name, "qcow2") == 0)
    *format = LAYER_QCOW2;
  else if (strcmp (name, "raw") == 0 || strcmp (name, "file") == 0)
    *format = LAYER_RAW;
  else
    return -1;
  return 0;
}

/* Read a table of N big-endian u64 at OFFSET into host endian.  The
 * header validation bounded N (by qemu's limits); as in qemu, the part
 * of a table past the end of the file reads as zeros.  That part is
 * left untouched in calloc's zeroed memory, so a table claimed by a
 * tiny file costs address space, not memory.
 */
static uint64_t *
read_table (struct layer *l, uint64_t offset, uint64_t n)
{
  uint64_t *t = calloc (n ? n : 1, 8), bytes = 0, i;

  if (t == NULL) {
    q2_error ("calloc: %m");
    return NULL;
  }
  if (offset < l->file.size)
    bytes = l->file.size - offset < n * 8 ? l->file.size - offset : n * 8;
  if (bytes > 0 && hostfile_pread (&l->file, t, bytes, offset) == -1) {
    free (t);
    return NULL;
  }
  for (i = 0; i < (bytes + 7) / 8; i++)
    t[i] = be64toh (t[i]);
  return t;
}

/* Keep the refcount table up to its last non-zero entry: the table
 * is at least a cluster (2 MiB with 2 MiB clusters) and mostly zeros,
 * while every user skips zero entries.  Read in chunks, so that only
 * the entries kept enter memory (and a table past the end of the file
 * costs nothing: it reads as zeros, as in qemu).
 */
#define REFTABLE_CHUNK 512      /* entries read at once: 4 KiB */

static int
read_reftable (struct layer *l)
{
  const struct qcow2_header *h = &l->header;
  uint64_t n = (uint64_t) h->refcount_table_clusters * h->cluster_size / 8;
  uint64_t offset = h->refcount_table_offset;
  uint64_t chunk[REFTABLE_CHUNK], i, j, k, kept = 0, cap = 0, *t;

  /* Past the end of the file every entry is zero: stop there. */
  for (i = 0; i < n && offset + i * 8 < l->file.size; i += k) {
    k = n - i < REFTABLE_CHUNK ? n - i : REFTABLE_CHUNK;
    if (hostfile_pread (&l->file, chunk, k * 8, offset + i * 8) == -1)
      return -1;
    for (j = k; j > 0 && chunk[j - 1] == 0; j--)
      ;
    if (j == 0)
      continue;
    if (i + j > cap) {          /* grow geometrically: few copies */
      uint64_t ncap = i + j > 2 * cap ? i + j : 2 * cap;
      if ((t = realloc (l->reftable, ncap * 8)) == NULL)
        return q2_error ("realloc: %m");
      l->reftable = t;
      cap = ncap;
    }
    memset (l->reftable + kept, 0, (i - kept) * 8);     /* zero chunks */
    kept = i;
    while (kept < i + j) {
      l->reftable[kept] = be64toh (chunk[kept - i]);
      kept++;
    }
  }
  if (kept < cap && (t = realloc (l->reftable, kept * 8)) != NULL)
    l->reftable = t;            /* (a failed shrink keeps the larger one) */
  l->reftable_entries = kept;
  return 0;
}

static int
open_data_file (struct layer *l)
{
  char *path;
  int r;

  l->data = &l->file;
  if (l->header.data_file == NULL)
    return 0;
  if (!hostfile_is_local (&l->file))
    return q2_error ("%s: data file '%s': an external data file cannot be "
                     "read through the qcow2map filter (serve the image "
                     "with the qcow2map plugin)", l->file.path,
                     l->header.data_file);
  /* The name is a plain file name, never a protocol or json: name:
   * qemu >= 9.1 (and 7.2.13, 8.2.6, 9.0.2) opens it so (commit
   * 7ead94699861, CVE-2024-4467); older qemu parsed it.
   */
  path = filename_resolve (l->file.path, l->header.data_file);
  if (path == NULL)
    return -1;
  r = hostfile_open (&l->data_file, path);
  if (r == -1)
    q2_error ("%s: external data file: %s", l->file.path, q2_last_error ());
  free (path);
  l->data = &l->data_file;
  return r;
}

/* qemu reports data clusters of a metadata-preallocated image by
 * asking the host file whether the range is a hole (and then reports
 * it as zero).  It decides that an image is metadata-preallocated when
 * clearly more clusters are in use (refcount > 0) than the file really
 * allocates: at least max(allocated * 10/9, allocated + 2) of them
 * (qcow2_detect_metadata_preallocation).  We use the same rule so our
 * extents match qemu's.  Errors mean "not preallocated", as in qemu.
 */
static void
detect_metadata_preallocation (struct layer *l)
{
  uint64_t cs = l->header.cluster_size;
  uint64_t real_clusters = l->file.allocated / cs;
  uint64_t threshold = real_clusters * 10 / 9;
  uint64_t end = size_to_clusters (&l->header, l->file.size);
  uint64_t i, count = 0, rc;

  if (threshold < real_clusters + 2)
    threshold = real_clusters + 2;
  for (i = 0; i < end && count < threshold; i++) {
    if (refcount_get (l, i, &rc) == -1)
      return;
    count += rc != 0;
  }
  l->metadata_preallocated = count >= threshold;
}

static int
open_qcow2 (struct layer *l)
{
  struct qcow2_header *h = &l->header;

  /* Only what qemu reads at open: the header and its extensions, the
   * tables, the snapshot table.  Reading more could bring unwritten
   * (preallocated) extents into the page cache, which changes what
   * SEEK_DATA says about them on ext4, and so our map.
   */
  if (qcow2_header_read (h, &l->file) == -1)
    return -1;
  if (h->compression_type == QCOW2_COMPRESSION_ZSTD && !compress_have_zstd ())
    return q2_error ("%s: compression_type: zstd is not supported by this "
                     "build", l->file.path);
  l->size = qcow2_guest_size (h);
  l->geom.cluster_bits = h->cluster_bits;
  l->geom.extended_l2 = h->extended_l2;
  l->geom.external_data_file = h->data_file != NULL;

  l->l1 = read_table (l, h->l1_table_offset, h->l1_size);
  if (l->l1 == NULL)
    return -1;
  if (read_reftable (l) == -1)
    return -1;
  l->refblock_memo = malloc (REFBLOCK_SLICE_BYTES);
  if (l->refblock_memo == NULL)
    return q2_error ("malloc: %m");
  l->refblock_memo_offset = UINT64_MAX;
  if (open_data_file (l) == -1)
    return -1;
  if (qcow2_snapshot_table_read (&l->snapshots, &l->file, h) == -1 ||
      qcow2_bitmap_directory_read (&l->bitmaps, &l->file, h) == -1)
    return -1;
  /* qemu never asks the host file about an encrypted image's data. */
  if (h->crypt_method == QCOW2_CRYPT_NONE)
    detect_metadata_preallocation (l);
  return 0;
}

struct layer *
layer_open_file (struct hostfile *f, enum layer_format format,
                 struct l2_cache *cache,
                 const struct image_lock_options *locking)
{
  struct layer *l = calloc (1, sizeof *l);

  if (l == NULL) {
    q2_error ("calloc: %m");
    hostfile_close (f);
    return NULL;
  }
  l->file = *f;
  l->data_file.fd = -1;
  l->format = format;
  l->cache = cache;
  l->data = &l->file;
  /* Lock before reading anything, as qemu does. */
  if (image_lock (&l->file, locking) == -1)
    goto fail;
  if (format == LAYER_RAW)
    /* qemu sees a raw file in whole 512-byte sectors. */
    l->size = (l->file.size + 511) & ~UINT64_C (511);
  else {
    /* No readahead while opening: the kernel would read past the
     * tables we read in small pieces (the refcount table, refcount
     * block slices) into data clusters, see open_qcow2.  Serving reads
     * with the usual readahead.
     */
    int r;

    if (hostfile_is_local (&l->file))
      (void) posix_fadvise (l->file.fd, 0, 0, POSIX_FADV_RANDOM);
    r = open_qcow2 (l);
    if (hostfile_is_local (&l->file))
      (void) posix_fadvise (l->file.fd, 0, 0, POSIX_FADV_NORMAL);
    if (r == -1 ||
        /* (nothing has read the data file yet) */
        image_lock (&l->data_file, locking) == -1)
      goto fail;
  }
  return l;
 fail:
  layer_close (l);
  return NULL;
}

struct layer *
layer_open (const char *path, enum layer_format format,
            struct l2_cache *cache, const struct image_lock_options *locking)
{
  struct hostfile f;

  if (hostfile_open (&f, path) == -1)
    return NULL;
  return layer_open_file (&f, format, cache, locking);
}

struct layer *
layer_reopen (const struct layer *l, struct l2_cache *cache,
              const struct image_lock_options *locking)
{
  struct hostfile f;

  if (hostfile_reopen (&l->file, &f) == -1)
    return NULL;
  return layer_open_file (&f, l->format, cache, locking);
}

int
layer_unlock (struct layer *l, const char *passphrase)
{
  l->crypto = luks_open (&l->file, l->header.crypto_offset,
                         l->header.crypto_length, passphrase);
  return l->crypto ? 0 : -1;
}

void
layer_close (struct layer *l)
{
  if (l == NULL)
    return;
  luks_close (l->crypto);
  hostfile_close (&l->file);
  hostfile_close (&l->data_file);
  qcow2_header_free (&l->header);
  qcow2_snapshot_table_free (&l->snapshots);
  qcow2_bitmap_directory_free (&l->bitmaps);
  free (l->l1);
  free (l->reftable);
  free (l->refblock_memo);
  free (l);
}

int
layer_load_l1 (struct layer *l, uint64_t l1_offset, uint32_t l1_size)
{
  uint64_t *t = read_table (l, l1_offset, l1_size);

  if (t == NULL)
    return -1;
  free (l->l1);
  l->l1 = t;
  l->header.l1_table_offset = l1_offset;
  l->header.l1_size = l1_size;
  return 0;
}

/* ---- mapping ----
 *
 * What qemu 7.2 does with each L1 and L2 entry when it reads or maps
 * (block/qcow2-cluster.c qcow2_get_host_offset and
 * count_contiguous_subclusters, block/qcow2.c qcow2_co_preadv_part and
 * qcow2_co_block_status), and so what we do:
 *  - reserved bits of L1 and L2 entries, and bit 0 of an extended L2
 *    entry, are ignored (see qcow2_cluster.h);
 *  - an L2 table or a data cluster past the end of the file reads as
 *    zeros, like any read past the end of a file: an L2 table there maps
 *    nothing (the backing file shows through), a data cluster there
 *    reads as zeros;
 *  - the request fails (EIO; qemu also flags the image corrupt, which a
 *    read-only opener does not write) for: an unaligned L2 table offset
 *    (the whole range that table maps); an unaligned host cluster offset;
 *    a zero flag in a version 2 image; an external data file cluster
 *    whose host offset is not its guest offset; a compressed cluster in
 *    an image with an external data file; an invalid subcluster bitmap.
 * qemu's messages name the L2 table offset and index; so do ours.
 */

/* Entries per slice of this layer's L2 tables: a table smaller than a
 * cache slice is one slice.
 */
static uint64_t
slice_entries (const struct layer *l)
{
  uint64_t bytes = l->header.cluster_size < L2_SLICE_BYTES ?
                   l->header.cluster_size : L2_SLICE_BYTES;

  return bytes / l->header.l2_entry_size;
}

/* Fetch the L2 entries [FIRST, FIRST+N) of the table at L2_OFFSET,
 * which lie in one slice, through the cache: a miss reads that slice
 * only, with one pread (bytes past the end of the file read as zeros,
 * as in qemu).
 */
static int
fetch_l2_entries (struct layer *l, uint64_t l2_offset, uint64_t first,
                  uint64_t n, uint8_t *out)
{
  size_t esz = l->header.l2_entry_size;
  uint64_t per_slice = slice_entries (l);
  size_t slice_bytes = per_slice * esz;
  uint64_t slice_offset = l2_offset + first / per_slice * slice_bytes;
  size_t start = first % per_slice * esz;
  uint8_t slice[L2_SLICE_BYTES];

  if (l2_cache_get (l->cache, l, slice_offset, start, n * esz, out))
    return 0;
  if (hostfile_pread (&l->file, slice, slice_bytes, slice_offset) == -1)
    return -1;
  l2_cache_put (l->cache, l, slice_offset, slice, slice_bytes);
  memcpy (out, slice + start, n * esz);
  return 0;
}

/* Find the L2 table covering OFFSET: *L2_OFFSET = 0 if none. */
static int
lookup_l1 (struct layer *l, uint64_t offset, uint64_t *l2_offset)
{
  const struct qcow2_header *h = &l->header;
  uint64_t l1_index = offset_to_l1_index (h, offset);

  *l2_offset = 0;
  if (l1_index >= h->l1_size)
    return 0;
  *l2_offset = l1_entry_l2_offset (l->l1[l1_index]);
  if (offset_into_cluster (h, *l2_offset))
    return q2_error ("%s: guest offset %" PRIu64 ": L1 index %" PRIu64
                     ": L2 table offset %#" PRIx64 " is not aligned to a "
                     "cluster", l->file.path, offset, l1_index, *l2_offset);
  return 0;
}

/* Why qemu would fail a read of the cluster at guest offset
 * CLUSTER_GUEST described by D, or NULL if it would not.
 */
static const char *
cluster_problem (const struct layer *l, const struct cluster_desc *d,
                 uint64_t cluster_guest)
{
  if (d->type == SC_INVALID)
    return d->invalid_reason;
  if (d->type == SC_ZERO && l->header.version < 3)
    return "zero flag set in a version 2 image";
  /* An external data file maps guest offsets 1:1: qemu checks it for
   * every cluster that has a host offset, zero clusters included.
   */
  if (l->data == &l->data_file && d->host_offset != cluster_guest &&
      (d->type == SC_NORMAL || (d->type == SC_ZERO && d->host_offset != 0)))
    return "external data file host offset differs from the guest offset";
  return NULL;
}

/* The run kind (and host offset of its first byte) of the unit (a
 * subcluster with extended L2, else a cluster) at GUEST, whose cluster
 * is described by D (which has no problem).
 */
static void
unit_kind (struct layer *l, const struct cluster_desc *d, uint64_t guest,
           enum run_kind *kind, uint64_t *host, bool *has_host)
{
  uint64_t in_cluster = offset_into_cluster (&l->header, guest);
  unsigned sc = offset_to_sc_index (&l->header, guest);

  enum subcluster_type type = cluster_subcluster_type (&l->geom, d, sc);

  *has_host = false;
  *host = 0;
  switch (type) {
  case SC_COMPRESSED:
    *kind = RUN_COMPRESSED;
    *host = d->host_offset;
    *has_host = true;
    return;
  case SC_NORMAL:
    *kind = RUN_DATA;
    *host = d->host_offset + in_cluster;
    *has_host = true;
    return;
  default:
    *kind = type == SC_ZERO ? RUN_ZERO : RUN_UNALLOCATED;
    /* A host cluster may still be allocated (preallocated zero
     * clusters, unallocated subclusters of an allocated cluster, which
     * may be at host offset 0 in an external data file): qemu reports
     * its offset in qemu-img map.
     */
    *has_host = d->type == SC_NORMAL || (d->type == SC_ZERO &&
                                         d->host_offset != 0);
    if (*has_host)
      *host = d->host_offset + in_cluster;
    return;
  }
}

/* A zero or unallocated run keeps one kind of host backing: none, or
 * allocated host clusters contiguous with the run's start (qemu
 * reports their offset).
 */
static bool
host_backing_continues (const struct run *r, bool has_host, uint64_t host,
                        uint64_t delta)
{
  if (!has_host || !r->has_host)
    return has_host == r->has_host;
  return host == r->host_offset + delta;
}

static int
map_qcow2 (struct layer *l, uint64_t offset, uint64_t len, struct run *r)
{
  const struct qcow2_header *h = &l->header;
  uint64_t cs = h->cluster_size;
  uint64_t unit = subcluster_size (h);
  uint64_t per_slice = slice_entries (l);
  uint64_t slice_span = per_slice << h->cluster_bits;
  uint64_t end = offset + len, l2_offset, first, n, i, pos;
  uint8_t entries[L2_SLICE_BYTES];
  size_t esz = h->l2_entry_size;

  /* Stay within one L2 table. */
  if (lookup_l1 (l, offset, &l2_offset) == -1)
    return -1;
  if (l2_offset == 0) {
    uint64_t table_span = l2_table_span (h);

    if ((offset | (table_span - 1)) + 1 < end)
      end = (offset | (table_span - 1)) + 1;
    *r = (struct run) { .kind = RUN_UNALLOCATED, .length = end - offset };
    return 0;
  }
  /* ... and within one slice of it, as qemu does. */
  if ((offset | (slice_span - 1)) + 1 < end)
    end = (offset | (slice_span - 1)) + 1;
  first = offset_to_l2_index (h, offset);
  n = ((end - 1) >> h->cluster_bits) - (offset >> h->cluster_bits) + 1;
  if (fetch_l2_entries (l, l2_offset, first, n, entries) == -1)
    return -1;

  pos = offset;
  for (i = 0; i < n && pos < end; i++) {
    const uint8_t *e = entries + i * esz;
    uint64_t cluster_guest = start_of_cluster (h, pos);
    struct cluster_desc d;
    const char *why;

    cluster_decode (&l->geom, get_be64 (e), esz == 16 ? get_be64 (e + 8) : 0,
                    &d);
    why = cluster_problem (l, &d, cluster_guest);
    if (why) {
      if (pos == offset)
        return q2_error ("%s: guest offset %" PRIu64 ": L2 table at %#"
                         PRIx64 ", index %" PRIu64 " (entry %#" PRIx64 "): %s",
                         l->file.path, offset, l2_offset, first + i,
                         get_be64 (e), why);
      break;                /* reported when the caller gets there */
    }
    while (pos < end && pos < cluster_guest + cs) {
      uint64_t unit_end = (pos | (unit - 1)) + 1, host = 0;
      enum run_kind kind = RUN_UNALLOCATED;
      bool has_host = false;

      if (d.type == SC_COMPRESSED)
        unit_end = cluster_guest + cs;
      if (unit_end > end)
        unit_end = end;
      unit_kind (l, &d, pos, &kind, &host, &has_host);
      if (pos == offset) {
        *r = (struct run) { .kind = kind, .host_offset = host,
                            .has_host = has_host,
                            .compressed_size = d.compressed_size };
      }
      else if (kind != r->kind || kind == RUN_COMPRESSED ||
               (kind == RUN_DATA && host != r->host_offset + (pos - offset)) ||
               ((kind == RUN_ZERO || kind == RUN_UNALLOCATED) &&
                !host_backing_continues (r, has_host, host, pos - offset)))
        goto done;
      pos = unit_end;
    }
  }
 done:
  r->length = pos - offset;
  return 0;
}

int
layer_map (struct layer *l, uint64_t offset, uint64_t len, struct run *r)
{
  if (l->format == LAYER_RAW) {
    *r = (struct run) { .kind = RUN_DATA, .length = len, .has_host = true,
                        .host_offset = offset };
    return 0;
  }
  return map_qcow2 (l, offset, len, r);
}

/* ---- reading ---- */

/* Data clusters as stored; decrypted if the layer is encrypted (the
 * IV of each sector comes from its host offset).
 */
static int
read_host_data (struct layer *l, void *buf, size_t count, uint64_t host)
{
  if (l->format == LAYER_RAW || l->header.crypt_method == QCOW2_CRYPT_NONE)
    return hostfile_pread (l->data, buf, count, host);
  if (l->crypto == NULL)
    return q2_error ("the image is encrypted and was opened without its "
                     "passphrase");
  return luks_pread (l->crypto, l->data, buf, count, host);
}

static int
read_data (struct layer *l, const struct run *r, uint64_t offset, void *buf)
{
  /* Past the end of the file, zeros: a partly written last cluster,
   * a raw file shorter than its rounded size, and also a data cluster
   * wholly past the end, which qemu reads as zeros too.
   */
  if (read_host_data (l, buf, r->length, r->host_offset) == -1)
    return q2_error ("%s: guest offset %" PRIu64 ": %s",
                     l->file.path, offset, q2_last_error ());
  return 0;
}

struct inflate_job {
  struct layer *l;
  const struct run *r;
  uint64_t offset;
};

/* Read and decompress the compressed cluster of a run (for the cluster
 * cache, which calls this on a miss only).
 */
static int
inflate_run (void *opaque, void *out)
{
  struct inflate_job *j = opaque;
  struct layer *l = j->l;
  const struct run *r = j->r;
  uint8_t *in;
  int ret = -1;

  /* qemu reads zeros there, which never decompress: it fails too. */
  if (r->host_offset >= l->file.size)
    return q2_error ("%s: guest offset %" PRIu64 ": compressed cluster at "
                     "host offset %#" PRIx64 " is past the end of the file",
                     l->file.path, j->offset, r->host_offset);
  in = malloc (r->compressed_size);
  if (in == NULL)
    return q2_error ("malloc: %m");
  if (hostfile_pread (&l->file, in, r->compressed_size, r->host_offset) == -1)
    q2_error ("%s: guest offset %" PRIu64 ": compressed cluster: %s",
              l->file.path, j->offset, q2_last_error ());
  else {
    ret = decompress_cluster (l->header.compression_type, in,
                              r->compressed_size, out,
                              l->header.cluster_size);
    if (ret == -1)
      q2_error ("%s: guest offset %" PRIu64 ": compressed cluster at host "
                "offset %#" PRIx64 ": %s", l->file.path, j->offset,
                r->host_offset, q2_last_error ());
  }
  free (in);
  return ret;
}

/* Through the decompressed-cluster cache: a compressed cluster is
 * inflated once for all the small reads that fall into it.  BUF NULL:
 * prefetch only.
 */
static int
read_compressed (struct layer *l, const struct run *r, uint64_t offset,
                 void *buf)
{
  uint64_t cs = l->header.cluster_size;
  struct inflate_job j = { l, r, offset };

  return cluster_cache_read (l->clusters, l, r->host_offset,
                             r->compressed_size, cs,
                             offset_into_cluster (&l->header, offset),
                             buf ? r->length : 0, buf, inflate_run, &j);
}

int
layer_read_run (struct layer *l, const struct run *r, uint64_t offset,
                void *buf)
{
  switch (r->kind) {
  case RUN_DATA:       return read_data (l, r, offset, buf);
  case RUN_COMPRESSED: return read_compressed (l, r, offset, buf);
  case RUN_ZERO:       memset (buf, 0, r->length); return 0;
  default:             return q2_error ("internal error: reading an "
                                        "unallocated run");
  }
}

/* ---- prefetching ---- */

int
layer_prefetch_run (struct layer *l, const struct run *r, uint64_t offset,
                    bool inflate)
{
  switch (r->kind) {
  case RUN_DATA:
    hostfile_prefetch (l->data, r->host_offset, r->length);
    return 0;
  case RUN_COMPRESSED:
    if (inflate && l->clusters)
      return read_compressed (l, r, offset, NULL);
    hostfile_prefetch (&l->file, r->host_offset, r->compressed_size);
    return 0;
  default:
    return 0;
  }
}
