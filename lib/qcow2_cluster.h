/* SPDX-License-Identifier: BSD-3-Clause */
/* Cluster descriptors: decoding of L1 and L2 entries (qcow2 spec,
 * "Cluster mapping"), including compressed cluster descriptors and the
 * subcluster allocation bitmap of extended L2 entries.
 *
 * Pure functions on integers: no I/O, so they are unit-tested directly.
 */
#ifndef Q2_QCOW2_CLUSTER_H
#define Q2_QCOW2_CLUSTER_H

#include <stdint.h>
#include <stdbool.h>

/* Reserved bits of L1 and L2 entries are ignored, as qemu ignores
 * them when it reads: the offset masks and flags below are all that a
 * read uses.  qemu-img check counts entries with reserved bits set as
 * corruptions (the RESERVED masks, from qemu's qcow2.h).
 */
#define L1E_OFFSET_MASK   0x00fffffffffffe00ULL
#define L2E_OFFSET_MASK   0x00fffffffffffe00ULL
#define L1E_RESERVED_MASK     0x7f000000000001ffULL
#define L2E_STD_RESERVED_MASK 0x3f000000000001feULL
#define QCOW_L2_BITMAP_ALL_ALLOC 0xffffffffULL
#define QCOW_OFLAG_COPIED     (1ULL << 63)
#define QCOW_OFLAG_COMPRESSED (1ULL << 62)
#define QCOW_OFLAG_ZERO       (1ULL << 0)

/* What one (sub)cluster of a layer is.  Numbering mirrors qemu's
 * QCow2SubclusterType so the mapping to qemu's answers is easy to check.
 */
enum subcluster_type {
  SC_UNALLOCATED,      /* not here: read from the backing file */
  SC_UNALLOCATED_ALLOC,/* extended L2: host cluster allocated, subcluster not */
  SC_ZERO,             /* reads as zeros, no host data used */
  SC_NORMAL,           /* data at host_offset */
  SC_COMPRESSED,       /* compressed data, whole cluster */
  SC_INVALID,          /* descriptor breaks the spec: read error */
};

/* Geometry needed to decode descriptors. */
struct cluster_geometry {
  unsigned cluster_bits;
  bool extended_l2;
  bool external_data_file;   /* host offset 0 is valid with COPIED set */
};

/* A decoded L2 entry (one cluster). */
struct cluster_desc {
  enum subcluster_type type;   /* for non-extended L2; for extended L2:
                                  SC_NORMAL, SC_UNALLOCATED or
                                  SC_COMPRESSED (per cluster)         */
  uint64_t host_offset;        /* normal: cluster start; compressed: byte
                                  offset of the compressed data        */
  uint64_t compressed_size;    /* compressed: bytes to read            */
  uint32_t alloc_bitmap;       /* extended L2 only */
  uint32_t zero_bitmap;        /* extended L2 only */
  const char *invalid_reason;  /* for SC_INVALID */
};

/* Decode an L2 entry (ENTRY = first 64 bits, BITMAP = second 64 bits or
 * 0 for standard L2 entries), as qemu 7.2 classifies it
 * (qcow2_get_cluster_type, qcow2_get_subcluster_type): reserved bits are
 * ignored, and so is the "all zeros" bit (bit 0) of an extended L2
 * entry.  SC_INVALID: qemu fails the read (unaligned host offset; with
 * extended L2, a subcluster both allocated and zero, or allocated in a
 * cluster without host offset; a compressed cluster with an external
 * data file).
 */
void cluster_decode (const struct cluster_geometry *g, uint64_t entry,
                     uint64_t bitmap, struct cluster_desc *d);

/* The type of subcluster SC (0..31) of a decoded extended-L2 cluster;
 * for standard L2 entries returns d->type.
 */
enum subcluster_type cluster_subcluster_type (const struct cluster_geometry *g,
                                              const struct cluster_desc *d,
                                              unsigned sc);

/* Decode an L1 entry: the L2 table offset (0 = no L2 table).  Reserved
 * bits are ignored, as qemu does.
 */
uint64_t l1_entry_l2_offset (uint64_t entry);

#endif
