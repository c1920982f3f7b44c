/* SPDX-License-Identifier: BSD-3-Clause */
/* A host file: the qcow2 image itself, an external data file, or a raw
 * backing file.  Always opened read-only; never written.
 *
 * Everything above this file reads host bytes through one small
 * interface, struct hostfile_ops (as libnbd's nbdcopy reads through
 * struct rw_ops), with two implementations: a local file (here:
 * pread, SEEK_DATA, qemu's image locks) and the next context of the
 * qcow2map filter (filter-qcow2map/next_source.c: whatever nbdkit
 * plugin serves the image).
 */
#ifndef Q2_HOSTFILE_H
#define Q2_HOSTFILE_H

#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

struct hostfile;

struct hostfile_ops {
  /* Read exactly COUNT bytes at OFFSET (< size); bytes past the end
   * of the source read as zeros.  Returns 0, or -1 with q2_error set
   * naming the source.
   */
  int (*pread) (const struct hostfile *f, void *buf, size_t count,
                uint64_t offset);
  /* Host allocation at OFFSET (< size), see hostfile_allocation.  NULL:
   * the source cannot tell (everything is data).
   */
  int (*allocation) (const struct hostfile *f, uint64_t offset,
                     uint64_t max, bool *is_data, uint64_t *run);
  /* Advice that [OFFSET, OFFSET+COUNT) will be read soon.  May be NULL. */
  void (*prefetch) (const struct hostfile *f, uint64_t offset,
                    uint64_t count);
  /* Open the same source again as OUT (an internal snapshot's layer
   * reads the image through its own struct layer).  Returns 0, or -1
   * with q2_error set.
   */
  int (*reopen) (const struct hostfile *f, struct hostfile *out);
  /* Release the source's own state (not the struct hostfile). */
  void (*close) (struct hostfile *f);
};

struct hostfile {
  const struct hostfile_ops *ops;
  void *opaque;          /* the implementation's own state */
  int fd;                /* a local file's descriptor (its image locks,
                            loop detection); -1 for other sources */
  char *path;            /* absolute path or source name, for messages */
  uint64_t size;         /* size at open time */
  uint64_t allocated;    /* local: st_blocks * 512, as qemu's file driver
                            reports; other sources: bytes their
                            allocation answers call data */
};

/* Open the local file PATH with O_RDONLY.  Returns 0, or -1 with
 * q2_error set.
 */
int hostfile_open (struct hostfile *f, const char *path);

/* Make F a source read through OPS (with OPAQUE), called NAME in
 * messages, of SIZE bytes.  F->allocated is computed with
 * OPS->allocation (all of SIZE if NULL).  Returns 0, or -1 with
 * q2_error set (F is then closed).
 */
int hostfile_open_source (struct hostfile *f, const char *name,
                          uint64_t size, const struct hostfile_ops *ops,
                          void *opaque);

static inline bool
hostfile_is_local (const struct hostfile *f)
{
  return f->fd >= 0;
}

void hostfile_close (struct hostfile *f);

/* Open the source of F again as OUT.  Returns 0, or -1 with q2_error. */
int hostfile_reopen (const struct hostfile *f, struct hostfile *out);

/* Advice: [OFFSET, OFFSET+COUNT) will be read soon (posix_fadvise on a
 * local file).
 */
void hostfile_prefetch (const struct hostfile *f, uint64_t offset,
                        uint64_t count);

/* qemu's block layer fails every request (even of 0 bytes) that does
 * not end by this offset (BDRV_MAX_LENGTH: 2^63 - 2^30), though past
 * the end of the file it would read zeros.  A table a header places
 * there makes qemu's open fail.
 */
#define HOSTFILE_MAX_OFFSET (INT64_MAX & ~((UINT64_C (1) << 30) - 1))

static inline bool
hostfile_offset_ok (uint64_t offset, uint64_t count)
{
  return offset <= HOSTFILE_MAX_OFFSET && count <= HOSTFILE_MAX_OFFSET - offset;
}

/* Read exactly COUNT bytes at OFFSET.  Bytes past the end of the file
 * read as zeros (the last cluster of an image is often only partly
 * written, and qemu reads the rest as zeros).  A range not ending by
 * HOSTFILE_MAX_OFFSET is an error, as in qemu.
 */
int hostfile_pread (const struct hostfile *f, void *buf, size_t count,
                    uint64_t offset);

/* Host allocation at OFFSET, as qemu's file driver sees it with
 * SEEK_DATA/SEEK_HOLE: sets *is_data and returns (in *run) the length of
 * the run of the same kind starting at OFFSET, clipped to MAX.  Past EOF
 * is a hole.  If the filesystem cannot tell, everything is data.
 */
int hostfile_allocation (const struct hostfile *f, uint64_t offset,
                         uint64_t max, bool *is_data, uint64_t *run);

#endif
