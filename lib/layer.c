#include <config.h>

#include <endian.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"
#include "be.h"
#include "compress.h"
#include "luks.h"
#include "filename.h"
#include "refcount.h"
#include "q2_error.h"

#define MAX_HEADER_READ (2 * 1024 * 1024)  /* largest cluster */
#define MAX_ENTRIES_PER_MAP 512            /* bounds the stack buffer */

/* ---- opening ---- */

int
layer_probe_format (const char *path, enum layer_format *format)
{
  struct hostfile f;
  uint8_t magic[4];
  int r;

  if (hostfile_open (&f, path) == -1)
    return -1;
  r = hostfile_pread (&f, magic, sizeof magic, 0);
  if (r == 0)
    *format = qcow2_is_qcow2 (magic, f.size) ? LAYER_QCOW2 : LAYER_RAW;
  hostfile_close (&f);
  return r;
}

/* Read a table of N big-endian u64 at OFFSET (already checked to fit
 * in the file by the header validation) into host endian.
 */
static uint64_t *
read_table (struct layer *l, uint64_t offset, uint64_t n)
{
  uint64_t *t = malloc (n ? n * 8 : 1), i;

  if (t == NULL) {
    q2_error ("malloc: %m");
    return NULL;
  }
  if (hostfile_pread (&l->file, t, n * 8, offset) == -1) {
    free (t);
    return NULL;
  }
  for (i = 0; i < n; i++)
    t[i] = be64toh (t[i]);
  return t;
}

static int
read_header (struct layer *l)
{
  size_t len = l->file.size < MAX_HEADER_READ ? l->file.size : MAX_HEADER_READ;
  uint8_t *buf = malloc (len ? len : 1);
  int r;

  if (buf == NULL)
    return q2_error ("malloc: %m");
  r = hostfile_pread (&l->file, buf, len, 0);
  if (r == 0)
    r = qcow2_header_parse (&l->header, buf, len, l->file.size, l->file.path);
  free (buf);
  return r;
}

static int
open_data_file (struct layer *l)
{
  char *path;
  int r;

  l->data = &l->file;
  if (l->header.data_file == NULL)
    return 0;
  if (filename_has_protocol (l->header.data_file))
    return q2_error ("%s: data file '%s': only local files are supported",
                     l->file.path, l->header.data_file);
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
  uint64_t end = (l->file.size + cs - 1) / cs;
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

  if (read_header (l) == -1)
    return -1;
  if (h->compression_type == QCOW2_COMPRESSION_ZSTD && !compress_have_zstd ())
    return q2_error ("%s: compression_type: zstd is not supported by this "
                     "build", l->file.path);
  l->size = h->size;
  l->geom.cluster_bits = h->cluster_bits;
  l->geom.extended_l2 = h->extended_l2;
  l->geom.external_data_file = h->data_file != NULL;

  l->l1 = read_table (l, h->l1_table_offset, h->l1_size);
  if (l->l1 == NULL)
    return -1;
  l->reftable_entries = (uint64_t) h->refcount_table_clusters *
                        h->cluster_size / 8;
  l->reftable = read_table (l, h->refcount_table_offset, l->reftable_entries);
  if (l->reftable == NULL)
    return -1;
  l->refblock_memo = malloc (h->cluster_size);
  if (l->refblock_memo == NULL)
    return q2_error ("malloc: %m");
  l->refblock_memo_offset = UINT64_MAX;
  if (open_data_file (l) == -1)
    return -1;
  /* qemu never asks the host file about an encrypted image's data. */
  if (h->crypt_method == QCOW2_CRYPT_NONE)
    detect_metadata_preallocation (l);
  return 0;
}

struct layer *
layer_open (const char *path, enum layer_format format,
            struct l2_cache *cache)
{
  struct layer *l = calloc (1, sizeof *l);

  if (l == NULL) {
    q2_error ("calloc: %m");
    return NULL;
  }
  l->file.fd = l->data_file.fd = -1;
  l->format = format;
  l->cache = cache;
  if (hostfile_open (&l->file, path) == -1)
    goto fail;
  l->data = &l->file;
  if (format == LAYER_RAW)
    /* qemu sees a raw file in whole 512-byte sectors. */
    l->size = (l->file.size + 511) & ~UINT64_C (511);
  else if (open_qcow2 (l) == -1)
    goto fail;
  return l;
 fail:
  layer_close (l);
  return NULL;
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
  free (l->l1);
  free (l->reftable);
  free (l->refblock_memo);
  free (l);
}

/* ---- mapping ---- */

/* Fetch the L2 entries [FIRST, FIRST+N) of the table at L2_OFFSET
 * through the cache.
 */
static int
fetch_l2_entries (struct layer *l, uint64_t l2_offset, uint64_t first,
                  uint64_t n, uint8_t *out)
{
  size_t esz = l->header.l2_entry_size;
  size_t table_bytes = l->header.cluster_size;
  uint8_t *table;

  if (l2_cache_get (l->cache, l, l2_offset, first * esz, n * esz, out))
    return 0;
  table = malloc (table_bytes);
  if (table == NULL)
    return q2_error ("malloc: %m");
  if (hostfile_pread (&l->file, table, table_bytes, l2_offset) == -1) {
    free (table);
    return -1;
  }
  l2_cache_put (l->cache, l, l2_offset, table, table_bytes);
  memcpy (out, table + first * esz, n * esz);
  free (table);
  return 0;
}

/* Find the L2 table covering OFFSET: *L2_OFFSET = 0 if none. */
static int
lookup_l1 (struct layer *l, uint64_t offset, uint64_t *l2_offset)
{
  const struct qcow2_header *h = &l->header;
  uint64_t l1_index = offset >> (h->cluster_bits + h->l2_bits);

  *l2_offset = 0;
  if (l1_index >= h->l1_size)
    return 0;
  if (!l1_entry_decode (l->l1[l1_index], l2_offset))
    return q2_error ("%s: guest offset %" PRIu64 ": reserved bits set in "
                     "L1 entry %" PRIu64, l->file.path, offset, l1_index);
  if (*l2_offset & (h->cluster_size - 1))
    return q2_error ("%s: guest offset %" PRIu64 ": L2 table offset %#"
                     PRIx64 " is not aligned to a cluster",
                     l->file.path, offset, *l2_offset);
  if (*l2_offset != 0 && *l2_offset >= l->file.size)
    return q2_error ("%s: guest offset %" PRIu64 ": L2 table offset %#"
                     PRIx64 " is past the end of the file",
                     l->file.path, offset, *l2_offset);
  return 0;
}

/* The run kind (and host offset of its first byte) of the unit (a
 * subcluster with extended L2, else a cluster) at GUEST, whose cluster
 * is described by D.
 */
static int
unit_kind (struct layer *l, const struct cluster_desc *d, uint64_t guest,
           enum run_kind *kind, uint64_t *host)
{
  uint64_t cs = l->header.cluster_size;
  uint64_t in_cluster = guest & (cs - 1);
  unsigned sc = in_cluster / (cs / 32);

  switch (cluster_subcluster_type (&l->geom, d, sc)) {
  case SC_UNALLOCATED:
  case SC_UNALLOCATED_ALLOC: *kind = RUN_UNALLOCATED; return 0;
  case SC_ZERO:              *kind = RUN_ZERO; return 0;
  case SC_COMPRESSED:        *kind = RUN_COMPRESSED; *host = d->host_offset;
                             return 0;
  case SC_NORMAL:            *kind = RUN_DATA;
                             *host = d->host_offset + in_cluster;
                             return 0;
  case SC_INVALID:
  default:
    return q2_error ("%s: guest offset %" PRIu64 ": %s", l->file.path,
                     guest, d->invalid_reason);
  }
}

/* An external data file maps guest offsets 1:1 (qemu refuses anything
 * else).
 */
static int
check_identity (struct layer *l, const struct cluster_desc *d,
                uint64_t cluster_guest)
{
  if (l->data == &l->data_file && d->type == SC_NORMAL &&
      d->host_offset != cluster_guest)
    return q2_error ("%s: guest offset %" PRIu64 ": external data file "
                     "host offset %#" PRIx64 " differs from the guest offset",
                     l->file.path, cluster_guest, d->host_offset);
  return 0;
}

static int
map_qcow2 (struct layer *l, uint64_t offset, uint64_t len, struct run *r)
{
  const struct qcow2_header *h = &l->header;
  uint64_t cs = h->cluster_size;
  uint64_t unit = h->extended_l2 ? cs / 32 : cs;
  uint64_t table_span = UINT64_C (1) << (h->cluster_bits + h->l2_bits);
  uint64_t end = offset + len, l2_offset, first, n, i, pos;
  uint8_t entries[MAX_ENTRIES_PER_MAP * 16];
  size_t esz = h->l2_entry_size;

  /* Stay within one L2 table and a bounded number of entries. */
  if ((offset | (table_span - 1)) + 1 < end)
    end = (offset | (table_span - 1)) + 1;
  if (lookup_l1 (l, offset, &l2_offset) == -1)
    return -1;
  if (l2_offset == 0) {
    *r = (struct run) { .kind = RUN_UNALLOCATED, .length = end - offset };
    return 0;
  }
  first = (offset >> h->cluster_bits) & ((UINT64_C (1) << h->l2_bits) - 1);
  n = ((end - 1) >> h->cluster_bits) - (offset >> h->cluster_bits) + 1;
  if (n > MAX_ENTRIES_PER_MAP) {
    n = MAX_ENTRIES_PER_MAP;
    end = ((offset >> h->cluster_bits) + n) << h->cluster_bits;
  }
  if (fetch_l2_entries (l, l2_offset, first, n, entries) == -1)
    return -1;

  pos = offset;
  for (i = 0; i < n && pos < end; i++) {
    const uint8_t *e = entries + i * esz;
    uint64_t cluster_guest = pos & ~(cs - 1);
    struct cluster_desc d;

    cluster_decode (&l->geom, get_be64 (e), esz == 16 ? get_be64 (e + 8) : 0,
                    &d);
    if (check_identity (l, &d, cluster_guest) == -1)
      return -1;
    while (pos < end && pos < cluster_guest + cs) {
      uint64_t unit_end = (pos | (unit - 1)) + 1, host = 0;
      enum run_kind kind = RUN_UNALLOCATED;

      if (d.type == SC_COMPRESSED)
        unit_end = cluster_guest + cs;
      if (unit_end > end)
        unit_end = end;
      if (unit_kind (l, &d, pos, &kind, &host) == -1) {
        if (pos == offset)
          return -1;
        goto done;          /* report the error when the caller gets here */
      }
      if (pos == offset) {
        *r = (struct run) { .kind = kind, .host_offset = host,
                            .compressed_size = d.compressed_size };
      }
      else if (kind != r->kind || kind == RUN_COMPRESSED ||
               (kind == RUN_DATA && host != r->host_offset + (pos - offset)))
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
    *r = (struct run) { .kind = RUN_DATA, .length = len,
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
  uint64_t cs = l->format == LAYER_QCOW2 ? l->header.cluster_size : 512;
  uint64_t last_cluster = (r->host_offset + r->length - 1) & ~(cs - 1);

  /* A partly written last cluster reads as zeros past EOF; a cluster
   * that starts past EOF means the metadata is wrong.  Raw files are
   * simply shorter than their rounded size.
   */
  if (l->format == LAYER_QCOW2 && last_cluster >= l->data->size)
    return q2_error ("%s: guest offset %" PRIu64 ": data cluster at host "
                     "offset %#" PRIx64 " is past the end of %s",
                     l->file.path, offset, last_cluster, l->data->path);
  if (read_host_data (l, buf, r->length, r->host_offset) == -1)
    return q2_error ("%s: guest offset %" PRIu64 ": %s",
                     l->file.path, offset, q2_last_error ());
  return 0;
}

static int
read_compressed (struct layer *l, const struct run *r, uint64_t offset,
                 void *buf)
{
  uint64_t cs = l->header.cluster_size;
  uint8_t *in = NULL, *out = NULL;
  int ret = -1;

  if (r->host_offset >= l->file.size) {
    q2_error ("%s: guest offset %" PRIu64 ": compressed cluster at host "
              "offset %#" PRIx64 " is past the end of the file",
              l->file.path, offset, r->host_offset);
    goto out;
  }
  in = malloc (r->compressed_size);
  out = malloc (cs);
  if (in == NULL || out == NULL) {
    q2_error ("malloc: %m");
    goto out;
  }
  if (hostfile_pread (&l->file, in, r->compressed_size, r->host_offset) == -1)
    goto out;
  if (decompress_cluster (l->header.compression_type, in, r->compressed_size,
                          out, cs) == -1) {
    q2_error ("%s: guest offset %" PRIu64 ": compressed cluster at host "
              "offset %#" PRIx64 ": %s", l->file.path, offset,
              r->host_offset, q2_last_error ());
    goto out;
  }
  memcpy (buf, out + (offset & (cs - 1)), r->length);
  ret = 0;
 out:
  free (in);
  free (out);
  return ret;
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
