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

/* Read exactly COUNT bytes at OFFSET.  Bytes past the end of the file
 * read as zeros (the last cluster of an image is often only partly
 * written, and qemu reads the rest as zeros).
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
