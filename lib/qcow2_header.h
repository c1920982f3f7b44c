/* SPDX-License-Identifier: BSD-3-Clause */
/* The qcow2 header and its header extensions (qcow2 spec, "Header"
 * and "Header extensions").  Parsing only looks at bytes; validating
 * checks every field against the file size, so that nothing read later
 * can point outside the file or ask for an unbounded allocation.
 */
#ifndef Q2_QCOW2_HEADER_H
#define Q2_QCOW2_HEADER_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#include "hostfile.h"

#define QCOW2_MAGIC 0x514649fbU          /* "QFI\xfb" */

/* Incompatible feature bits. */
#define QCOW2_INCOMPAT_DIRTY        (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT      (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE    (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION  (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2        (1ULL << 4)
#define QCOW2_INCOMPAT_KNOWN        0x1fULL

/* Compatible and autoclear feature bits. */
#define QCOW2_COMPAT_LAZY_REFCOUNTS   (1ULL << 0)
#define QCOW2_AUTOCLEAR_BITMAPS       (1ULL << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ULL << 1)

/* Header extension types. */
#define QCOW2_EXT_END            0x00000000U
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acaU
#define QCOW2_EXT_FEATURE_TABLE  0x6803f857U
#define QCOW2_EXT_BITMAPS        0x23852875U
#define QCOW2_EXT_CRYPTO         0x0537be77U
#define QCOW2_EXT_DATA_FILE      0x44415441U

#define QCOW2_CRYPT_NONE 0
#define QCOW2_CRYPT_AES  1
#define QCOW2_CRYPT_LUKS 2

#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* Limits qemu 7.2 enforces (block/qcow2.h); we enforce the same so
 * that we accept what qemu accepts and a header can never make us
 * allocate more than qemu would.
 */
#define QCOW2_MAX_L1_BYTES       (32 * 1024 * 1024)
#define QCOW2_MAX_REFTABLE_BYTES (8 * 1024 * 1024)
#define QCOW2_MAX_SNAPSHOTS      65536
#define QCOW2_SNAPSHOT_HEADER_LENGTH 40  /* fixed part of a snapshot entry */
#define QCOW2_MAX_NAME           1023
#define QCOW2_MAX_BITMAPS        65535
#define QCOW2_MAX_BITMAP_DIRECTORY_SIZE (1024 * QCOW2_MAX_BITMAPS)

/* A header extension: its 8-byte head is at OFFSET, its LENGTH bytes
 * of data follow, padded to a multiple of 8.
 */
struct qcow2_header_extension {
  uint64_t offset;
  uint32_t type;
  uint32_t length;
};

struct qcow2_header {
  uint32_t version;
  uint64_t backing_file_offset;
  uint32_t backing_file_size;
  uint32_t cluster_bits;
  uint64_t size;                 /* virtual disk size */
  uint32_t crypt_method;
  uint32_t l1_size;
  uint64_t l1_table_offset;
  uint64_t refcount_table_offset;
  uint32_t refcount_table_clusters;
  uint32_t nb_snapshots;
  uint64_t snapshots_offset;
  uint64_t incompatible_features;
  uint64_t compatible_features;
  uint64_t autoclear_features;
  uint32_t refcount_order;
  uint32_t header_length;
  uint8_t compression_type;

  /* Derived. */
  uint64_t cluster_size;
  bool extended_l2;
  unsigned l2_entry_size;        /* 8, or 16 with extended L2 entries */
  unsigned l2_bits;              /* log2 (entries per L2 table) */

  /* From header extensions and the backing file name (NUL-terminated,
   * or NULL when absent).
   */
  char *backing_file;
  char *backing_format;
  char *data_file;
  bool has_crypto_ext;
  uint64_t crypto_offset, crypto_length;
  bool has_bitmaps_ext;          /* valid and in effect: qemu ignores the
                                    extension without the autoclear bit */
  uint32_t nb_bitmaps;
  uint64_t bitmap_directory_size, bitmap_directory_offset;
  uint64_t extensions_end;       /* offset after the end-of-extensions mark */

  /* Every header extension read, in file order, the end mark included
   * when there is one: the place of each for the metadata map.  At
   * most one per 8 bytes of the first cluster.
   */
  struct qcow2_header_extension *extensions;
  size_t nb_extensions;
};

/* Read and validate the header of image file F, accepting exactly what
 * qemu 7.2 accepts (qcow2_do_open, qcow2_read_extensions): reads the
 * fixed header, then each header extension, then the backing file
 * name, nothing else.  As in qemu, bytes past the end of the file read
 * as zeros, and the tables the header points to (L1, refcount table,
 * snapshot table) need only be cluster aligned and below 2^63: they
 * may lie past the end of the file, where they read as zeros.
 * Returns 0, or -1 with q2_error set to "PATH: <field>: <cause>".
 */
int qcow2_header_read (struct qcow2_header *h, const struct hostfile *f);
void qcow2_header_free (struct qcow2_header *h);

/* The three feature bit fields of the header. */
enum qcow2_feature_type {
  QCOW2_FEAT_INCOMPATIBLE, QCOW2_FEAT_COMPATIBLE, QCOW2_FEAT_AUTOCLEAR,
};

/* The name of feature bit BIT of field TYPE, or NULL if the bit has
 * none.  Spelled as qemu spells these features in its JSON output
 * (qemu-img info's format-specific keys: "lazy-refcounts", "corrupt",
 * "extended-l2", "compression-type", "data-file-raw", ...; "dirty"
 * for the dirty bit, which qemu-img info does not show).  The one
 * table of feature names: file/N.json lists features with it.
 */
const char *qcow2_feature_name (enum qcow2_feature_type type, unsigned bit);

/* True if BUF starts with the qcow2 magic. */
bool qcow2_is_qcow2 (const uint8_t *buf, size_t len);

#endif
