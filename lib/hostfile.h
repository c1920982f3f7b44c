/* SPDX-License-Identifier: BSD-3-Clause */
/* A host file: the qcow2 image itself, an external data file, or a raw
 * backing file.  Always opened read-only; never written.
 */
#ifndef Q2_HOSTFILE_H
#define Q2_HOSTFILE_H

#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

struct hostfile {
  int fd;
  char *path;            /* absolute path, for messages */
  uint64_t size;         /* st_size at open time */
  uint64_t allocated;    /* st_blocks * 512, as qemu's file driver reports */
};

/* Open PATH with O_RDONLY.  Returns 0, or -1 with q2_error set. */
int hostfile_open (struct hostfile *f, const char *path);
void hostfile_close (struct hostfile *f);

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
