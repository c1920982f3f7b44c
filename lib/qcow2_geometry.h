/* SPDX-License-Identifier: BSD-3-Clause */
/* Index arithmetic of an image's geometry, under the names qemu gives
 * it (block/qcow2.h): where a guest or host offset falls in a cluster,
 * in the L1 table, in an L2 table, in a cluster's subclusters.
 * Everything follows from cluster_bits and l2_bits of the header.
 */
#ifndef Q2_QCOW2_GEOMETRY_H
#define Q2_QCOW2_GEOMETRY_H

#include <stdint.h>

#include "qcow2_header.h"

/* Subclusters per cluster with extended L2 entries. */
#define QCOW2_SUBCLUSTERS 32

/* Byte offset of OFFSET within its cluster (0: OFFSET is aligned). */
static inline uint64_t
offset_into_cluster (const struct qcow2_header *h, uint64_t offset)
{
  return offset & (h->cluster_size - 1);
}

/* OFFSET rounded down to its cluster. */
static inline uint64_t
start_of_cluster (const struct qcow2_header *h, uint64_t offset)
{
  return offset & ~(h->cluster_size - 1);
}

/* Number of clusters that hold SIZE bytes. */
static inline uint64_t
size_to_clusters (const struct qcow2_header *h, uint64_t size)
{
  return (size + h->cluster_size - 1) >> h->cluster_bits;
}

/* The virtual size qemu serves: the header's size in whole 512-byte
 * sectors, the rest dropped (qcow2_do_open keeps size / 512 sectors),
 * so a size of 1 is an empty disk.  qemu-img info reports this size,
 * and qemu-img check counts its clusters.
 */
static inline uint64_t
qcow2_guest_size (const struct qcow2_header *h)
{
  return h->size & ~UINT64_C (511);
}

/* Guest bytes mapped by one L2 table. */
static inline uint64_t
l2_table_span (const struct qcow2_header *h)
{
  return UINT64_C (1) << (h->cluster_bits + h->l2_bits);
}

/* Index in the L1 table of the L2 table mapping guest OFFSET. */
static inline uint64_t
offset_to_l1_index (const struct qcow2_header *h, uint64_t offset)
{
  return offset >> (h->cluster_bits + h->l2_bits);
}

/* Index in its L2 table of the entry mapping guest OFFSET. */
static inline uint64_t
offset_to_l2_index (const struct qcow2_header *h, uint64_t offset)
{
  return (offset >> h->cluster_bits) & ((UINT64_C (1) << h->l2_bits) - 1);
}

/* Bytes per subcluster: cluster_size / 32 with extended L2 entries,
 * else a subcluster is the whole cluster.
 */
static inline uint64_t
subcluster_size (const struct qcow2_header *h)
{
  return h->extended_l2 ? h->cluster_size / QCOW2_SUBCLUSTERS
                        : h->cluster_size;
}

/* Byte offset of OFFSET within its subcluster. */
static inline uint64_t
offset_into_subcluster (const struct qcow2_header *h, uint64_t offset)
{
  return offset & (subcluster_size (h) - 1);
}

/* Index (0..31) of the subcluster holding OFFSET in its cluster. */
static inline unsigned
offset_to_sc_index (const struct qcow2_header *h, uint64_t offset)
{
  return offset_into_cluster (h, offset) / subcluster_size (h);
}

#endif
