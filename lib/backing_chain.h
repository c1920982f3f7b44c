/* SPDX-License-Identifier: BSD-3-Clause */
/* The backing chain: the image named by the user (layer 0 here, "layer
 * 1" to users) and its backing files, down to the base.  This file
 * also answers the guest-level questions that need the whole chain:
 * the bytes, base:allocation, and allocation depth.
 *
 * A "view" is a sub-chain [first, last] of layers: the full guest disk
 * is [0, n-1]; one layer alone is [i, i].
 */
#ifndef Q2_BACKING_CHAIN_H
#define Q2_BACKING_CHAIN_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#include "allocation.h"
#include "layer.h"
#include "image_lock.h"
#include "chain_params.h"

#define CHAIN_MAX_LAYERS 1000

struct chain {
  size_t n;
  struct layer **layers;   /* [0] is the top */
  struct l2_cache *cache;
  struct image_lock_options locking;   /* applied to every file */
  struct cluster_cache *clusters;   /* NULL until enabled */
};

/* Open PATH (which must be a qcow2 image) and every backing file, as
 * P says (L2 cache bound, qemu's image locks to take on every file of
 * the chain, backing overrides, passphrases).  Refuses loops, missing
 * files, unsupported formats, files that a writer holds, parameters
 * naming a layer the chain does not have.  Returns NULL with q2_error
 * set.
 */
struct chain *chain_open (const char *path, const struct chain_params *p);
/* The same for the top image opened already as host file TOP (any
 * source, see hostfile.h), which the chain takes over.  Backing files
 * named by a top image that is not a local file are refused unless
 * backing= replaces them.
 */
struct chain *chain_open_file (struct hostfile *top,
                               const struct chain_params *p);
void chain_close (struct chain *c);

/* Give the chain a decompressed-cluster cache of at most MAX_BYTES
 * (cluster_cache.h; 0: none), shared by its layers.  Call once, before
 * serving.  Returns 0 or -1 with q2_error set.
 */
int chain_enable_cluster_cache (struct chain *c, uint64_t max_bytes);

/* Read COUNT guest bytes at OFFSET of the view [FIRST, LAST].  The
 * range must lie inside layer FIRST's size.
 */
int chain_pread (struct chain *c, size_t first, size_t last,
                 void *buf, uint64_t count, uint64_t offset);

/* Where the guest data at an offset comes from: the first layer of the
 * view that allocates it, and that layer's run.  PAST_END: the offset
 * is past the end of that (backing) layer, which qemu counts as
 * allocated there, reading zeros.  !FOUND: no layer allocates it.
 */
struct origin {
  bool found;
  bool past_end;
  size_t layer;
  struct run run;
  uint64_t length;              /* of the answer, 1..count */
};

int chain_origin (struct chain *c, size_t first, size_t last,
                  uint64_t offset, uint64_t count, struct origin *o);

/* The allocation status of origin O at OFFSET: sets *A and *LENGTH
 * (1..O->length).  ZERO_IS_HOLE: zero clusters (and raw holes, and
 * zeros past a short layer) are unallocated zeros as in qemu's guest
 * view; otherwise they are allocated zeros.
 */
int chain_run_allocation (struct chain *c, const struct origin *o,
                          uint64_t offset, bool zero_is_hole,
                          uint64_t *length, struct allocation *a);

/* The allocation status of the view [FIRST, LAST] at OFFSET.  With
 * ZERO_IS_HOLE, exactly what qemu reports for the guest disk (its
 * base:allocation); without, unallocated means "allocated in no layer
 * of the view" (the layer views).
 */
int chain_block_status (struct chain *c, size_t first, size_t last,
                        uint64_t offset, uint64_t count, bool zero_is_hole,
                        uint64_t *length, struct allocation *a);

/* The allocation depth of origin O (from chain_origin on the view
 * starting at layer FIRST) in qemu's qemu:allocation-depth numbering:
 * 0 = no layer of the view, 1 = layer FIRST, 2 = the next, ...
 */
unsigned chain_origin_depth (const struct origin *o, size_t first);

/* Allocation depth at OFFSET in qemu's numbering (0 = nowhere, 1 =
 * layer FIRST, ...) for the view [FIRST, LAST]: sets *DEPTH and
 * *LENGTH (1..COUNT).
 */
int chain_depth (struct chain *c, size_t first, size_t last,
                 uint64_t offset, uint64_t count,
                 uint64_t *length, unsigned *depth);

#endif
