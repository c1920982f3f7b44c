/* SPDX-License-Identifier: BSD-3-Clause */
/* The qcow2 header, its extensions and the backing file name: read
 * and validated with qemu 7.2's rules (block/qcow2.c, qcow2_do_open and
 * qcow2_read_extensions), so that we open exactly the images qemu
 * opens.  See qcow2_header.h.
 */
#include <config.h>

#include <endian.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_header.h"
#include "be.h"
#include "q2_error.h"


#define V2_HEADER_LENGTH 72
#define V3_MIN_HEADER_LENGTH 104
#define FIXED_HEADER_READ 112   /* qemu's QCowHeader, compression type incl. */
#define BITMAPS_EXT_LENGTH 24
#define CRYPTO_EXT_LENGTH 16
#define BACKING_FORMAT_MAX 16   /* qemu's bs->backing_format[16] */

bool
qcow2_is_qcow2 (const uint8_t *buf, size_t len)
{
  return len >= 4 && get_be32 (buf) == QCOW2_MAGIC;
}

/* One row per feature bit the spec defines, in bit order. */
static const char *const incompat_names[] = {
  "dirty", "corrupt", "external-data-file", "compression-type",
  "extended-l2",
};
static const char *const compat_names[] = { "lazy-refcounts" };
static const char *const autoclear_names[] = { "bitmaps", "data-file-raw" };

#define N_ELEMS(a) (sizeof (a) / sizeof (a)[0])

const char *
qcow2_feature_name (enum qcow2_feature_type type, unsigned bit)
{
  switch (type) {
  case QCOW2_FEAT_INCOMPATIBLE:
    return bit < N_ELEMS (incompat_names) ? incompat_names[bit] : NULL;
  case QCOW2_FEAT_COMPATIBLE:
    return bit < N_ELEMS (compat_names) ? compat_names[bit] : NULL;
  case QCOW2_FEAT_AUTOCLEAR:
    return bit < N_ELEMS (autoclear_names) ? autoclear_names[bit] : NULL;
  }
  return NULL;
}

/* qemu's qcow2_validate_table: a table of ENTRIES entries of
 * ENTRY_LEN bytes is at most MAX_BYTES long, starts on a cluster
 * boundary, and ends below 2^63.  Whether it lies inside the file is
 * not checked: past the end of the file it reads as zeros.
 */
static int
check_table (const struct qcow2_header *h, const char *name,
             const char *count_field, const char *offset_field,
             uint64_t offset, uint64_t entries, uint64_t entry_len,
             uint64_t max_bytes)
{
  if (entries > max_bytes / entry_len)
    return q2_error ("%s: %s: %" PRIu64 " is too large (the table may "
                     "not exceed %" PRIu64 " bytes)",
                     name, count_field, entries, max_bytes);
  if (offset & (h->cluster_size - 1))
    return q2_error ("%s: %s: %#" PRIx64 " is not aligned to a cluster",
                     name, offset_field, offset);
  if (INT64_MAX - entries * entry_len < offset)
    return q2_error ("%s: %s: %#" PRIx64 " is too large",
                     name, offset_field, offset);
  return 0;
}

/* qemu then reads the table (if not empty): past HOSTFILE_MAX_OFFSET
 * that fails.  (The snapshot table's entries are checked as they are
 * read.)
 */
static int
check_table_readable (const char *name, const char *offset_field,
                      uint64_t offset, uint64_t bytes)
{
  if (bytes > 0 && !hostfile_offset_ok (offset, bytes))
    return q2_error ("%s: %s: %#" PRIx64 " (+%" PRIu64 " bytes) is past "
                     "the largest offset qemu reads (%#" PRIx64 ")", name,
                     offset_field, offset, bytes, HOSTFILE_MAX_OFFSET);
  return 0;
}

/* Read LEN bytes at OFFSET into a new NUL-terminated string (the file
 * may hold NULs: the string then ends at the first, as in qemu).
 */
static int
read_string (const struct hostfile *f, uint64_t offset, size_t len,
             char **out)
{
  char *s = malloc (len + 1);

  if (s == NULL)
    return q2_error ("malloc: %m");
  if (hostfile_pread (f, s, len, offset) == -1) {
    free (s);
    return -1;
  }
  s[len] = '\0';
  free (*out);
  *out = s;
  return 0;
}

/* BUF holds the fixed header as qcow2_header_read reads it: bytes past
 * the end of the file read as zeros, so a short file never makes us
 * read past BUF.
 */
static void
parse_fixed_fields (struct qcow2_header *h, const uint8_t *buf)
{
  h->version = get_be32 (buf + 4);
  h->backing_file_offset = get_be64 (buf + 8);
  h->backing_file_size = get_be32 (buf + 16);
  h->cluster_bits = get_be32 (buf + 20);
  h->size = get_be64 (buf + 24);
  h->crypt_method = get_be32 (buf + 32);
  h->l1_size = get_be32 (buf + 36);
  h->l1_table_offset = get_be64 (buf + 40);
  h->refcount_table_offset = get_be64 (buf + 48);
  h->refcount_table_clusters = get_be32 (buf + 56);
  h->nb_snapshots = get_be32 (buf + 60);
  h->snapshots_offset = get_be64 (buf + 64);
  if (h->version >= 3) {
    h->incompatible_features = get_be64 (buf + 72);
    h->compatible_features = get_be64 (buf + 80);
    h->autoclear_features = get_be64 (buf + 88);
    h->refcount_order = get_be32 (buf + 96);
    h->header_length = get_be32 (buf + 100);
  }
  else {
    h->refcount_order = 4;
    h->header_length = V2_HEADER_LENGTH;
  }
}

static int
check_version (struct qcow2_header *h, const char *name)
{
  if (h->version == 1)
    return q2_error ("%s: version: qcow version 1 is not supported", name);
  if (h->version != 2 && h->version != 3)
    return q2_error ("%s: version: unsupported qcow2 version %" PRIu32,
                     name, h->version);
  return 0;
}

/* cluster_bits, header_length and where the extension area ends. */
static int
check_layout (struct qcow2_header *h, const char *name)
{
  if (h->cluster_bits < 9 || h->cluster_bits > 21)
    return q2_error ("%s: cluster_bits: %" PRIu32 " is outside 9..21",
                     name, h->cluster_bits);
  h->cluster_size = UINT64_C (1) << h->cluster_bits;

  if (h->version == 3 && h->header_length < V3_MIN_HEADER_LENGTH)
    return q2_error ("%s: header_length: %" PRIu32 " is less than %d",
                     name, h->header_length, V3_MIN_HEADER_LENGTH);
  if (h->header_length > h->cluster_size)
    return q2_error ("%s: header_length: %" PRIu32 " exceeds the cluster "
                     "size", name, h->header_length);
  if (h->backing_file_offset > h->cluster_size)
    return q2_error ("%s: backing_file_offset: %#" PRIx64 " is past the "
                     "first cluster", name, h->backing_file_offset);
  return 0;
}

static int
check_compression (struct qcow2_header *h, const uint8_t *buf,
                   const char *name)
{
  bool flag = (h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION) != 0;

  h->compression_type = QCOW2_COMPRESSION_ZLIB;
  if (h->header_length > V3_MIN_HEADER_LENGTH)
    h->compression_type = buf[104];

  if (h->compression_type > QCOW2_COMPRESSION_ZSTD)
    return q2_error ("%s: compression_type: unknown compression type %u",
                     name, h->compression_type);
  if (h->compression_type == QCOW2_COMPRESSION_ZLIB && flag)
    return q2_error ("%s: compression_type: the compression type feature "
                     "bit is set for zlib", name);
  if (h->compression_type != QCOW2_COMPRESSION_ZLIB && !flag)
    return q2_error ("%s: compression_type: the compression type feature "
                     "bit is not set", name);
  return 0;
}

static int
check_features (struct qcow2_header *h, const char *name)
{
  uint64_t unknown = h->incompatible_features & ~QCOW2_INCOMPAT_KNOWN;

  if (unknown)
    return q2_error ("%s: incompatible_features: unsupported incompatible "
                     "feature bit(s) %#" PRIx64, name, unknown);
  h->extended_l2 = (h->incompatible_features & QCOW2_INCOMPAT_EXTL2) != 0;
  if (h->extended_l2 && h->cluster_bits < 14)
    return q2_error ("%s: incompatible_features: extended L2 entries need "
                     "a cluster size of at least 16384 bytes (subclusters "
                     "of 512)", name);
  h->l2_entry_size = h->extended_l2 ? 16 : 8;
  h->l2_bits = h->cluster_bits - (h->extended_l2 ? 4 : 3);

  if (h->refcount_order > 6)
    return q2_error ("%s: refcount_order: %" PRIu32 " is greater than 6",
                     name, h->refcount_order);
  if (h->crypt_method > QCOW2_CRYPT_LUKS)
    return q2_error ("%s: crypt_method: unknown encryption method %" PRIu32,
                     name, h->crypt_method);
  if (h->crypt_method == QCOW2_CRYPT_AES)
    return q2_error ("%s: crypt_method: images encrypted with the legacy "
                     "AES method (encrypt.format=aes) are not supported "
                     "(LUKS is)", name);
  return 0;
}

/* The refcount table, the snapshot table and the active L1 table, in
 * qemu's order.  The L1 table must also cover the virtual size.
 */
static int
check_tables (struct qcow2_header *h, const char *name)
{
  uint64_t l2_coverage_bits, l1_needed;

  if (h->refcount_table_clusters == 0)
    return q2_error ("%s: refcount_table_clusters: 0 (the image has no "
                     "refcount table)", name);
  if (check_table (h, name, "refcount_table_clusters",
                   "refcount_table_offset", h->refcount_table_offset,
                   h->refcount_table_clusters, h->cluster_size,
                   QCOW2_MAX_REFTABLE_BYTES) == -1)
    return -1;
  /* Checked whatever nb_snapshots is, as qemu does. */
  if (check_table (h, name, "nb_snapshots", "snapshots_offset",
                   h->snapshots_offset, h->nb_snapshots,
                   QCOW2_SNAPSHOT_HEADER_LENGTH,
                   QCOW2_SNAPSHOT_HEADER_LENGTH * QCOW2_MAX_SNAPSHOTS) == -1)
    return -1;
  if (check_table (h, name, "l1_size", "l1_table_offset",
                   h->l1_table_offset, h->l1_size, 8,
                   QCOW2_MAX_L1_BYTES) == -1)
    return -1;

  l2_coverage_bits = h->cluster_bits + h->l2_bits;
  l1_needed = (h->size >> l2_coverage_bits) +
    ((h->size & ((UINT64_C (1) << l2_coverage_bits) - 1)) != 0);
  if (h->l1_size < l1_needed)
    return q2_error ("%s: l1_size: %" PRIu32 " entries cannot cover the "
                     "virtual size %" PRIu64, name, h->l1_size, h->size);
  /* qemu reads the L1 table, then the refcount table. */
  if (check_table_readable (name, "l1_table_offset", h->l1_table_offset,
                            (uint64_t) h->l1_size * 8) == -1 ||
      check_table_readable (name, "refcount_table_offset",
                            h->refcount_table_offset,
                            (uint64_t) h->refcount_table_clusters *
                            h->cluster_size) == -1)
    return -1;
  return 0;
}

static int
parse_bitmaps_extension (struct qcow2_header *h, const struct hostfile *f,
                         uint64_t off, uint32_t elen)
{
  uint8_t e[BITMAPS_EXT_LENGTH];
  const char *name = f->path;

  if (elen != BITMAPS_EXT_LENGTH)
    return q2_error ("%s: bitmaps extension: length %" PRIu32 " is not %d",
                     name, elen, BITMAPS_EXT_LENGTH);
  /* Without the autoclear bit, a program unaware of bitmaps changed the
   * image: qemu ignores the extension, and so do we.
   */
  if (!(h->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS))
    return 0;
  if (hostfile_pread (f, e, sizeof e, off) == -1)
    return -1;
  h->nb_bitmaps = get_be32 (e);
  h->bitmap_directory_size = get_be64 (e + 8);
  h->bitmap_directory_offset = get_be64 (e + 16);
  if (get_be32 (e + 4) != 0)
    return q2_error ("%s: bitmaps extension: the reserved field is not "
                     "zero", name);
  if (h->nb_bitmaps > QCOW2_MAX_BITMAPS)
    return q2_error ("%s: bitmaps extension: nb_bitmaps: %" PRIu32 " is "
                     "more than %d", name, h->nb_bitmaps, QCOW2_MAX_BITMAPS);
  if (h->nb_bitmaps == 0)
    return q2_error ("%s: bitmaps extension: nb_bitmaps: 0", name);
  if (h->bitmap_directory_offset & (h->cluster_size - 1))
    return q2_error ("%s: bitmaps extension: bitmap_directory_offset: %#"
                     PRIx64 " is not aligned to a cluster", name,
                     h->bitmap_directory_offset);
  if (h->bitmap_directory_size > QCOW2_MAX_BITMAP_DIRECTORY_SIZE)
    return q2_error ("%s: bitmaps extension: bitmap_directory_size: %"
                     PRIu64 " is more than %d", name,
                     h->bitmap_directory_size,
                     QCOW2_MAX_BITMAP_DIRECTORY_SIZE);
  h->has_bitmaps_ext = true;
  return 0;
}

/* One extension of type TYPE whose ELEN bytes of data are at OFF
 * (ELEN is known to fit in the extension area).
 */
static int
parse_one_extension (struct qcow2_header *h, const struct hostfile *f,
                     uint32_t type, uint64_t off, uint32_t elen)
{
  const char *name = f->path;
  uint8_t e[CRYPTO_EXT_LENGTH];

  switch (type) {
  case QCOW2_EXT_BACKING_FORMAT:
    if (elen >= BACKING_FORMAT_MAX)
      return q2_error ("%s: backing format extension: length %" PRIu32
                       " is too long (at most %d)", name, elen,
                       BACKING_FORMAT_MAX - 1);
    if (read_string (f, off, elen, &h->backing_format) == -1)
      return -1;
    /* Empty (length 0, or a NUL first): qemu records no format and
     * probes the backing file.
     */
    if (h->backing_format[0] == '\0') {
      free (h->backing_format);
      h->backing_format = NULL;
    }
    return 0;
  case QCOW2_EXT_DATA_FILE:     /* no limit but the extension area's */
    return read_string (f, off, elen, &h->data_file);
  case QCOW2_EXT_CRYPTO:
    /* qemu accepts it only with LUKS, which we refuse earlier. */
    if (h->crypt_method != 2)
      return q2_error ("%s: encryption header extension: the image is not "
                       "LUKS encrypted", name);
    if (elen != CRYPTO_EXT_LENGTH)
      return q2_error ("%s: encryption header extension: length %" PRIu32
                       " is not %d", name, elen, CRYPTO_EXT_LENGTH);
    if (hostfile_pread (f, e, sizeof e, off) == -1)
      return -1;
    h->has_crypto_ext = true;
    h->crypto_offset = get_be64 (e);
    h->crypto_length = get_be64 (e + 8);
    return 0;
  case QCOW2_EXT_BITMAPS:
    return parse_bitmaps_extension (h, f, off, elen);
  default:                      /* feature name table and unknown: ignored */
    return 0;
  }
}

/* Keep the place of an extension for the metadata map.  The area is
 * at most a cluster and each extension takes 8 bytes or more, so the
 * list is bounded by the cluster size.
 */
static int
record_extension (struct qcow2_header *h, uint32_t type, uint64_t offset,
                  uint32_t length)
{
  size_t n = h->nb_extensions;

  if ((n & (n - 1)) == 0) {     /* 0, 1, 2, 4, ...: grow to double */
    struct qcow2_header_extension *v =
      realloc (h->extensions, (n ? 2 * n : 1) * sizeof *v);
    if (v == NULL)
      return q2_error ("realloc: %m");
    h->extensions = v;
  }
  h->extensions[n] = (struct qcow2_header_extension) {
    .offset = offset, .type = type, .length = length };
  h->nb_extensions = n + 1;
  return 0;
}

/* Header extensions follow the header; they end at the backing file
 * name if there is one, otherwise at the end of the first cluster.
 * As in qemu, every extension (the end mark included) must fit in
 * that area, and only the 8-byte heads and the data of the
 * extensions we use are read.
 */
static int
read_extensions (struct qcow2_header *h, const struct hostfile *f)
{
  uint64_t off = h->header_length;
  uint64_t end = h->backing_file_offset ? h->backing_file_offset
                                        : h->cluster_size;
  uint8_t head[8];

  while (off < end) {
    uint32_t type, elen;

    if (hostfile_pread (f, head, sizeof head, off) == -1)
      return -1;
    type = get_be32 (head);
    elen = get_be32 (head + 4);
    off += 8;
    if (off > end || elen > end - off)
      return q2_error ("%s: header extension %#" PRIx32 " at %#" PRIx64
                       ": length %" PRIu32 " runs past the end of the "
                       "extension area (%#" PRIx64 ", %s)", f->path, type,
                       off - 8, elen, end,
                       h->backing_file_offset ? "the backing file name"
                                              : "the end of the cluster");
    if (record_extension (h, type, off - 8, elen) == -1)
      return -1;
    if (type == QCOW2_EXT_END)
      break;
    if (parse_one_extension (h, f, type, off, elen) == -1)
      return -1;
    off += (elen + UINT64_C (7)) & ~UINT64_C (7);
  }
  h->extensions_end = off;
  return 0;
}

/* LUKS needs the encryption header extension, and only LUKS has one;
 * its area starts on a cluster boundary (as qemu checks).  qemu does
 * not check its length or the end of the file: reads past the end
 * return zeros, and the LUKS code bounds what it reads.
 */
static int
check_crypto (struct qcow2_header *h, const char *name)
{
  if (h->crypt_method == QCOW2_CRYPT_LUKS && !h->has_crypto_ext)
    return q2_error ("%s: crypt_method: LUKS encryption without the "
                     "encryption header extension", name);
  if (h->has_crypto_ext && (h->crypto_offset & (h->cluster_size - 1)))
    return q2_error ("%s: encryption header extension: LUKS header offset %#"
                     PRIx64 " is not a multiple of the cluster size",
                     name, h->crypto_offset);
  return 0;
}

static int
check_data_file (struct qcow2_header *h, const char *name)
{
  bool has = (h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE) != 0;

  if (has && (h->data_file == NULL || h->data_file[0] == '\0'))
    return q2_error ("%s: incompatible_features: external data file bit "
                     "is set but the image names no data file", name);
  if (!has) {
    free (h->data_file);
    h->data_file = NULL;
    if (h->autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW)
      return q2_error ("%s: autoclear_features: data-file-raw is set "
                       "without an external data file", name);
  }
  return 0;
}

static int
read_backing_name (struct qcow2_header *h, const struct hostfile *f)
{
  if (h->backing_file_offset == 0)
    return 0;
  if (h->backing_file_size > QCOW2_MAX_NAME ||
      h->backing_file_size > h->cluster_size - h->backing_file_offset)
    return q2_error ("%s: backing_file_size: %" PRIu32 " is too long (at "
                     "most %d, and within the first cluster)", f->path,
                     h->backing_file_size, QCOW2_MAX_NAME);
  if (read_string (f, h->backing_file_offset, h->backing_file_size,
                   &h->backing_file) == -1)
    return -1;
  /* An empty name (NULs, or zeros past EOF) means no backing file. */
  if (h->backing_file[0] == '\0') {
    free (h->backing_file);
    h->backing_file = NULL;
  }
  return 0;
}

int
qcow2_header_read (struct qcow2_header *h, const struct hostfile *f)
{
  uint8_t buf[FIXED_HEADER_READ];
  const char *name = f->path;

  memset (h, 0, sizeof *h);
  /* A short file reads as zeros past its end, as in qemu. */
  if (hostfile_pread (f, buf, sizeof buf, 0) == -1)
    return -1;
  if (!qcow2_is_qcow2 (buf, sizeof buf))
    return q2_error ("%s: magic: not a qcow2 image", name);

  parse_fixed_fields (h, buf);
  if (check_version (h, name) == -1 ||
      check_layout (h, name) == -1 ||
      check_compression (h, buf, name) == -1 ||
      check_features (h, name) == -1 ||
      check_tables (h, name) == -1 ||
      read_extensions (h, f) == -1 ||
      check_crypto (h, name) == -1 ||
      check_data_file (h, name) == -1 ||
      read_backing_name (h, f) == -1) {
    qcow2_header_free (h);
    return -1;
  }
  return 0;
}

void
qcow2_header_free (struct qcow2_header *h)
{
  free (h->backing_file);
  free (h->backing_format);
  free (h->data_file);
  free (h->extensions);
  h->backing_file = h->backing_format = h->data_file = NULL;
  h->extensions = NULL;
  h->nb_extensions = 0;
}
