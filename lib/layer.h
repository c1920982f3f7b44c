/* SPDX-License-Identifier: BSD-3-Clause */
/* A layer: one image of a backing chain, qcow2 or raw, opened
 * read-only, and the translation of its guest offsets into runs
 * (qcow2 spec, "Cluster mapping": L1 table -> L2 tables -> clusters).
 */
#ifndef Q2_LAYER_H
#define Q2_LAYER_H

#include <stdint.h>
#include <stdbool.h>

#include "hostfile.h"
#include "qcow2_header.h"
#include "snapshot_table.h"
#include "bitmap_directory.h"
#include "qcow2_cluster.h"
#include "l2_cache.h"
#include "image_lock.h"
#include "cluster_cache.h"

enum layer_format { LAYER_QCOW2, LAYER_RAW };

struct layer {
  enum layer_format format;
  struct hostfile file;          /* the image file itself */
  uint64_t size;                 /* virtual size of this layer */

  /* qcow2 only. */
  struct qcow2_header header;
  struct cluster_geometry geom;
  struct hostfile data_file;     /* external data file (fd -1 if none) */
  struct hostfile *data;         /* where data clusters live */
  uint64_t *l1;                  /* active L1 table, host endian */
  uint64_t *reftable;            /* refcount table, host endian, up to
                                    its last non-zero entry (all later
                                    entries are zero: see layer.c) */
  uint64_t reftable_entries;     /* entries kept in REFTABLE */
  struct qcow2_snapshot_table snapshots;
  struct qcow2_bitmap_directory bitmaps;
  uint8_t *refblock_memo;        /* one slice of a refcount block, */
  uint64_t refblock_memo_offset; /* at this host offset: see refcount.c */
  bool metadata_preallocated;    /* qemu's heuristic, see layer.c */
  struct l2_cache *cache;        /* shared by the chain, not owned */
  struct luks *crypto;           /* LUKS key of the data clusters, once
                                    unlocked (header.crypt_method 2) */
  struct cluster_cache *clusters;  /* decompressed clusters: shared by
                                      the chain, not owned; may be NULL */
};

/* Open PATH as FORMAT (LAYER_QCOW2 or LAYER_RAW), with qemu's image
 * locks as LOCKING says on the file and its external data file.
 * Returns NULL with q2_error set ("PATH: field: cause").
 */
struct layer *layer_open (const char *path, enum layer_format format,
                          struct l2_cache *cache,
                          const struct image_lock_options *locking);
/* The same for a host file F opened already (any source, see
 * hostfile.h); the layer takes F over (it is closed on failure too).
 */
struct layer *layer_open_file (struct hostfile *f, enum layer_format format,
                               struct l2_cache *cache,
                               const struct image_lock_options *locking);
void layer_close (struct layer *l);

/* Open the image of layer L again, as a layer of its own (for an
 * internal snapshot's L1 table).  Returns NULL with q2_error set.
 */
struct layer *layer_reopen (const struct layer *l, struct l2_cache *cache,
                            const struct image_lock_options *locking);

/* Map guest offsets of qcow2 layer L through the L1 table of L1_SIZE
 * entries at L1_OFFSET (an internal snapshot's, already checked to lie
 * in the file) instead of the active one, as qemu's
 * qcow2_snapshot_load_tmp does; the virtual size stays.  Returns 0 or
 * -1 with q2_error set.
 */
int layer_load_l1 (struct layer *l, uint64_t l1_offset, uint32_t l1_size);

/* Unlock the LUKS encryption of L (header.crypt_method 2) with
 * PASSPHRASE.  Until then its metadata can be mapped but its data
 * clusters cannot be read.  Returns 0 or -1 with q2_error set.
 */
int layer_unlock (struct layer *l, const char *passphrase);

/* A run: the longest stretch starting at a guest offset over which a
 * layer answers the same way (within one L2 table).
 */
enum run_kind {
  RUN_UNALLOCATED,   /* not in this layer */
  RUN_ZERO,          /* zero (sub)clusters */
  RUN_DATA,          /* contiguous host data at host_offset */
  RUN_COMPRESSED,    /* part of one compressed cluster */
};

struct run {
  enum run_kind kind;
  uint64_t length;
  bool has_host;               /* host_offset is valid: always for DATA
                                  and COMPRESSED; for ZERO and
                                  UNALLOCATED when a host cluster is
                                  allocated there all the same */
  uint64_t host_offset;        /* DATA, ZERO, UNALLOCATED: host offset
                                  of the first byte; COMPRESSED: offset
                                  of the compressed data */
  uint64_t compressed_size;    /* COMPRESSED */
};

/* Map [OFFSET, OFFSET+LEN) of layer L, which must lie inside the
 * layer's virtual size, to the run at OFFSET (length in 1..LEN).
 * Returns 0, or -1 with q2_error set naming file, guest offset and
 * cause (corrupt metadata).  Safe to call from many threads.
 */
int layer_map (struct layer *l, uint64_t offset, uint64_t len,
               struct run *r);

/* Read the bytes of run R (as returned by layer_map for OFFSET) into
 * BUF.  Returns 0 or -1 with q2_error set.
 */
int layer_read_run (struct layer *l, const struct run *r, uint64_t offset,
                    void *buf);

/* Prefetch run R (as returned by layer_map for OFFSET): data runs are
 * announced to the kernel (posix_fadvise WILLNEED); a compressed run's
 * cluster is inflated into the cluster cache if INFLATE (and the layer
 * has a cache), else its compressed bytes are announced.  Returns 0 or
 * -1 with q2_error set (a compressed cluster that does not inflate).
 */
int layer_prefetch_run (struct layer *l, const struct run *r,
                        uint64_t offset, bool inflate);

/* Probe: is the file at PATH a qcow2 image?  Another image format that
 * qemu would recognise (VMDK, VDI, ...) is an error naming the format;
 * anything else is raw, as qemu's probing treats a file it does not
 * recognise.
 */
int layer_probe_format (const char *path, enum layer_format *format);
int layer_probe_file (const struct hostfile *f, enum layer_format *format);

/* The layer format for the format NAME of a backing file (the
 * backing-format extension, backing-format=): "qcow2"; "raw", or
 * "file" (qemu then opens the file with its file protocol driver, with
 * no format driver on top: the same bytes and map as raw).  -1 (no
 * error set) for any other name.
 */
int layer_format_by_name (const char *name, enum layer_format *format);

#endif
