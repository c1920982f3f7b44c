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

bool
qcow2_is_qcow2 (const uint8_t *buf, size_t len)
{
  return len >= 4 && get_be32 (buf) == QCOW2_MAGIC;
}

const char *
qcow2_incompat_name (unsigned bit)
{
  static const char *names[] = {
    "dirty", "corrupt", "external data file", "compression type",
    "extended L2 entries",
  };
  return bit < sizeof names / sizeof names[0] ? names[bit] : "unknown";
}

/* A table (L1, refcount table, …) must start on a cluster boundary and
 * lie entirely inside the file.
 */
static int
check_table (const struct qcow2_header *h, const char *name,
             const char *field, uint64_t offset, uint64_t bytes,
             uint64_t file_size)
{
  if (offset & (h->cluster_size - 1))
    return q2_error ("%s: %s %#" PRIx64 " is not aligned to a cluster",
                     name, field, offset);
  if (offset > file_size || bytes > file_size - offset)
    return q2_error ("%s: %s %#" PRIx64 " (+%" PRIu64 " bytes) "
                     "does not fit in the file (%" PRIu64 " bytes)",
                     name, field, offset, bytes, file_size);
  return 0;
}

static char *
dup_string (const uint8_t *p, size_t len)
{
  char *s = malloc (len + 1);
  if (s) {
    memcpy (s, p, len);
    s[len] = '\0';
  }
  return s;
}

/* LEN >= V2_HEADER_LENGTH.  The version 3 fields are read only when LEN
 * covers them: a shorter version 3 file is refused afterwards by
 * check_version_and_features.
 */
static void
parse_fixed_fields (struct qcow2_header *h, const uint8_t *buf, size_t len)
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
  if (h->version >= 3 && len >= V3_MIN_HEADER_LENGTH) {
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
check_version_and_features (struct qcow2_header *h, size_t len,
                            const char *name)
{
  uint64_t unknown;

  if (h->version == 1)
    return q2_error ("%s: version: qcow version 1 is not supported", name);
  if (h->version != 2 && h->version != 3)
    return q2_error ("%s: version: unsupported qcow2 version %" PRIu32,
                     name, h->version);
  if (h->version == 3 && len < V3_MIN_HEADER_LENGTH)
    return q2_error ("%s: header_length: file too short for a version 3 "
                     "header", name);
  if (h->crypt_method != 0)
    return q2_error ("%s: crypt_method: encrypted images (%s) are not "
                     "supported", name,
                     h->crypt_method == 1 ? "AES" :
                     h->crypt_method == 2 ? "LUKS" : "unknown method");
  unknown = h->incompatible_features & ~QCOW2_INCOMPAT_KNOWN;
  if (unknown)
    return q2_error ("%s: incompatible_features: unsupported incompatible "
                     "feature bit(s) %#" PRIx64, name, unknown);
  return 0;
}

static int
check_geometry (struct qcow2_header *h, size_t len, const char *name)
{
  uint64_t l2_coverage_bits, l1_needed;

  if (h->cluster_bits < 9 || h->cluster_bits > 21)
    return q2_error ("%s: cluster_bits: %" PRIu32 " is outside 9..21",
                     name, h->cluster_bits);
  h->cluster_size = UINT64_C (1) << h->cluster_bits;

  if (h->version == 3) {
    if (h->header_length < V3_MIN_HEADER_LENGTH)
      return q2_error ("%s: header_length: %" PRIu32 " is less than %d",
                       name, h->header_length, V3_MIN_HEADER_LENGTH);
    if (h->header_length > h->cluster_size || h->header_length > len)
      return q2_error ("%s: header_length: %" PRIu32 " exceeds the cluster "
                       "or the file", name, h->header_length);
  }
  if (h->refcount_order > 6)
    return q2_error ("%s: refcount_order: %" PRIu32 " is greater than 6",
                     name, h->refcount_order);

  h->extended_l2 = (h->incompatible_features & QCOW2_INCOMPAT_EXTL2) != 0;
  if (h->extended_l2 && h->cluster_bits < 14)
    return q2_error ("%s: incompatible_features: extended L2 entries need "
                     "a cluster size of at least 16384 bytes", name);
  h->l2_entry_size = h->extended_l2 ? 16 : 8;
  h->l2_bits = h->cluster_bits - (h->extended_l2 ? 4 : 3);

  /* The L1 table must cover the whole virtual disk. */
  l2_coverage_bits = h->cluster_bits + h->l2_bits;
  l1_needed = (h->size >> l2_coverage_bits) +
    ((h->size & ((UINT64_C (1) << l2_coverage_bits) - 1)) != 0);
  if (l1_needed > QCOW2_MAX_L1_BYTES / 8)
    return q2_error ("%s: size: virtual size %" PRIu64 " is too large for "
                     "cluster size %" PRIu64, name, h->size, h->cluster_size);
  if ((uint64_t) h->l1_size * 8 > QCOW2_MAX_L1_BYTES)
    return q2_error ("%s: l1_size: %" PRIu32 " entries is too large",
                     name, h->l1_size);
  if (h->l1_size < l1_needed)
    return q2_error ("%s: l1_size: %" PRIu32 " entries cannot cover the "
                     "virtual size %" PRIu64, name, h->l1_size, h->size);
  return 0;
}

static int
check_tables (struct qcow2_header *h, uint64_t file_size, const char *name)
{
  uint64_t reftable_bytes;

  if (h->l1_size > 0 &&
      check_table (h, name, "l1_table_offset", h->l1_table_offset,
                   (uint64_t) h->l1_size * 8, file_size) == -1)
    return -1;

  reftable_bytes = (uint64_t) h->refcount_table_clusters * h->cluster_size;
  if (reftable_bytes > QCOW2_MAX_REFTABLE_BYTES)
    return q2_error ("%s: refcount_table_clusters: %" PRIu32 " is too large",
                     name, h->refcount_table_clusters);
  if (check_table (h, name, "refcount_table_offset",
                   h->refcount_table_offset, reftable_bytes, file_size) == -1)
    return -1;

  if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
    return q2_error ("%s: nb_snapshots: %" PRIu32 " is too many",
                     name, h->nb_snapshots);
  if (h->nb_snapshots > 0 &&
      check_table (h, name, "snapshots_offset", h->snapshots_offset,
                   40 * (uint64_t) h->nb_snapshots, file_size) == -1)
    return -1;
  return 0;
}

static int
check_compression (struct qcow2_header *h, const uint8_t *buf,
                   const char *name)
{
  bool flag = (h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION) != 0;

  h->compression_type = QCOW2_COMPRESSION_ZLIB;
  if (h->version == 3 && h->header_length > V3_MIN_HEADER_LENGTH)
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
read_backing_name (struct qcow2_header *h, const uint8_t *buf, size_t len,
                   const char *name)
{
  if (h->backing_file_offset == 0)
    return 0;
  if (h->backing_file_size > QCOW2_MAX_NAME)
    return q2_error ("%s: backing_file_size: %" PRIu32 " is too long",
                     name, h->backing_file_size);
  if (h->backing_file_offset > h->cluster_size ||
      h->backing_file_offset + h->backing_file_size > h->cluster_size ||
      h->backing_file_offset + h->backing_file_size > len)
    return q2_error ("%s: backing_file_offset: %#" PRIx64 " does not fit "
                     "in the first cluster", name, h->backing_file_offset);
  if (h->backing_file_size == 0)
    return 0;
  h->backing_file = dup_string (buf + h->backing_file_offset,
                                h->backing_file_size);
  if (h->backing_file == NULL)
    return q2_error ("malloc: %m");
  return 0;
}

static int
parse_one_extension (struct qcow2_header *h, uint32_t type,
                     const uint8_t *data, uint32_t elen, const char *name)
{
  switch (type) {
  case QCOW2_EXT_BACKING_FORMAT:
    if (elen >= 16)
      return q2_error ("%s: backing format extension: length %" PRIu32
                       " is too long", name, elen);
    free (h->backing_format);
    h->backing_format = dup_string (data, elen);
    if (!h->backing_format) return q2_error ("malloc: %m");
    break;
  case QCOW2_EXT_DATA_FILE:
    if (elen > QCOW2_MAX_NAME)
      return q2_error ("%s: data file extension: name too long", name);
    free (h->data_file);
    h->data_file = dup_string (data, elen);
    if (!h->data_file) return q2_error ("malloc: %m");
    break;
  case QCOW2_EXT_CRYPTO:
    if (elen != 16)
      return q2_error ("%s: encryption header extension: bad length", name);
    h->has_crypto_ext = true;
    h->crypto_offset = get_be64 (data);
    h->crypto_length = get_be64 (data + 8);
    break;
  case QCOW2_EXT_BITMAPS:
    if (elen < 24)
      return q2_error ("%s: bitmaps extension: bad length", name);
    h->has_bitmaps_ext = true;
    h->nb_bitmaps = get_be32 (data);
    h->bitmap_directory_size = get_be64 (data + 8);
    h->bitmap_directory_offset = get_be64 (data + 16);
    break;
  default:                      /* feature name table and unknown: ignored */
    break;
  }
  return 0;
}

/* Header extensions follow the header; they end at the backing file
 * name if there is one, otherwise at the end of the first cluster.
 */
static int
read_extensions (struct qcow2_header *h, const uint8_t *buf, size_t len,
                 const char *name)
{
  uint64_t off = h->header_length;
  uint64_t end = h->backing_file_offset ? h->backing_file_offset
                                        : h->cluster_size;

  if (end > len)
    end = len;
  while (off + 8 <= end) {
    uint32_t type = get_be32 (buf + off);
    uint32_t elen = get_be32 (buf + off + 4);

    off += 8;
    if (type == QCOW2_EXT_END)
      break;
    if (elen > end - off)
      return q2_error ("%s: header extension %#" PRIx32 ": length %" PRIu32
                       " does not fit in the first cluster",
                       name, type, elen);
    if (parse_one_extension (h, type, buf + off, elen, name) == -1)
      return -1;
    off += (elen + 7) & ~UINT64_C (7);
  }
  h->extensions_end = off;
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

int
qcow2_header_parse (struct qcow2_header *h, const uint8_t *buf, size_t len,
                    uint64_t file_size, const char *name)
{
  memset (h, 0, sizeof *h);
  if (len < V2_HEADER_LENGTH)
    return q2_error ("%s: header: file too short (%zu bytes) for a qcow2 "
                     "header", name, len);
  if (!qcow2_is_qcow2 (buf, len))
    return q2_error ("%s: magic: not a qcow2 image", name);

  parse_fixed_fields (h, buf, len);
  if (check_version_and_features (h, len, name) == -1 ||
      check_geometry (h, len, name) == -1 ||
      check_compression (h, buf, name) == -1 ||
      check_tables (h, file_size, name) == -1 ||
      read_backing_name (h, buf, len, name) == -1 ||
      read_extensions (h, buf, len, name) == -1 ||
      check_data_file (h, name) == -1) {
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
  h->backing_file = h->backing_format = h->data_file = NULL;
}
