/* SPDX-License-Identifier: BSD-3-Clause */
/* Reference counts (qcow2 spec, "Host cluster management"): the
 * refcount table points to refcount blocks, which hold one
 * 2^refcount_order-bit entry per host cluster.
 */
#ifndef Q2_REFCOUNT_H
#define Q2_REFCOUNT_H

#include <stdint.h>

struct layer;

/* Bits 9-63 of a refcount table entry: the host offset of a refcount
 * block (bits 0-8 are reserved).
 */
#define REFT_OFFSET_MASK 0xfffffffffffffe00ULL

/* refcount_get reads and keeps this much of a refcount block (or the
 * whole block if smaller), as the L2 cache keeps slices of L2 tables:
 * a 2 MiB cluster does not cost 2 MiB per layer.
 */
#define REFBLOCK_SLICE_BYTES 4096

/* Value of entry INDEX of a refcount block (BLOCK), for entries of
 * 2^ORDER bits.  Sub-byte entries are packed from the least significant
 * bit; 16/32/64-bit entries are big-endian.
 */
uint64_t refcount_block_entry (const uint8_t *block, unsigned order,
                               uint64_t index);

/* Refcount of host cluster CLUSTER_INDEX of the image file (0 if no
 * refcount block covers it).  Returns 0 or -1 with q2_error set.
 */
int refcount_get (struct layer *l, uint64_t cluster_index,
                  uint64_t *refcount);

#endif
