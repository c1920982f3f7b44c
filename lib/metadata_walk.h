/* SPDX-License-Identifier: BSD-3-Clause */
/* A walk over every structure of a qcow2 file that references host
 * clusters (qcow2 spec: header, header extensions, L1/L2 tables of the
 * active state and of every internal snapshot, the clusters they map,
 * refcount table and blocks, snapshot table, bitmap directory, bitmap
 * tables and bitmap data).  It is the one place that knows what is in
 * use by metadata; the refcount check and the container view build on
 * it.
 */
#ifndef Q2_METADATA_WALK_H
#define Q2_METADATA_WALK_H

#include <stdint.h>

#include "layer.h"

enum meta_kind {
  META_HEADER,            /* the header itself (header_length bytes) */
  META_HEADER_EXTENSION,  /* one header extension, with its 8-byte head */
  META_BACKING_NAME,      /* the backing file name */
  META_L1,                /* an L1 table (active, or a snapshot's) */
  META_L2,                /* an L2 table */
  META_DATA,              /* a data cluster */
  META_ZERO_ALLOC,        /* a zero cluster's preallocated host cluster */
  META_COMPRESSED,        /* compressed data (byte range) */
  META_REFCOUNT_TABLE,
  META_REFCOUNT_BLOCK,
  META_SNAPSHOT_TABLE,
  META_BITMAP_DIRECTORY,
  META_BITMAP_TABLE,
  META_BITMAP_DATA,
  META_ENCRYPTION_HEADER, /* the LUKS header and key material */
  META_CORRUPT,           /* a defect qemu-img check counts as one
                             corruption per reference (COUNT) and does
                             not use further (offset: where it is
                             described); nothing is in use because of it */
  META_EXTERNAL_DATA,     /* a data cluster in the external data file:
                             allocated for qemu-img check, but no cluster
                             of this file (offset: the L2 entry's) */
};

struct meta_ref {
  enum meta_kind kind;
  uint64_t offset;
  uint64_t length;
  int snapshot;           /* -1: active state; else snapshot index */
  uint32_t type;          /* META_HEADER_EXTENSION: extension type */
  uint64_t count;         /* how many references this one stands for */
};

/* Called for every reference (an L2 table shared by two L1 tables is
 * reported twice, as qemu-img check counts it; but several entries of
 * one L1 table pointing at the same L2 table give one call for the L2
 * table and one per reference in it, with COUNT set to the number of
 * entries).  Return -1 to stop.
 */
typedef int (*meta_cb) (void *opaque, const struct meta_ref *ref);

/* Walk the metadata of qcow2 layer L.  Reads the file (not thread-safe
 * with respect to refcount_get; call it from one thread).  Returns 0,
 * or -1 with q2_error set if a structure cannot be read at all.
 */
int metadata_walk (struct layer *l, meta_cb cb, void *opaque);

/* Called with the raw entries of each L2 table the walk reads (N
 * entries of l2_entry_size bytes: those inside the file), for the L1
 * table of SNAPSHOT (-1: the active one), COUNT entries of which point
 * at it.  For checks on the entries as stored (the COPIED flags), so
 * that no L2 table is read twice.  Return -1 to stop.
 */
typedef int (*meta_l2_cb) (void *opaque, uint64_t l2_offset,
                           const uint8_t *entries, uint64_t n, int snapshot,
                           uint64_t count);

/* metadata_walk, also calling L2_CB (if not NULL) for each L2 table. */
int metadata_walk_l2 (struct layer *l, meta_cb cb, meta_l2_cb l2_cb,
                      void *opaque);

/* Name of a kind, as used in the JSON metadata map. */
const char *meta_kind_name (enum meta_kind kind);

#endif
