/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "hostfile.h"
#include "q2_error.h"

int
hostfile_open (struct hostfile *f, const char *path)
{
  struct stat st;

  f->fd = open (path, O_RDONLY | O_CLOEXEC);
  if (f->fd == -1)
    return q2_error ("%s: open: %m", path);
  if (fstat (f->fd, &st) == -1) {
    q2_error ("%s: fstat: %m", path);
    close (f->fd);
    return -1;
  }
  if (S_ISDIR (st.st_mode)) {
    errno = EISDIR;
    q2_error ("%s: is a directory", path);
    close (f->fd);
    return -1;
  }
  f->path = strdup (path);
  if (f->path == NULL) {
    q2_error ("strdup: %m");
    close (f->fd);
    return -1;
  }
  f->size = st.st_size;
  f->allocated = (uint64_t) st.st_blocks * 512;
  return 0;
}

void
hostfile_close (struct hostfile *f)
{
  if (f->fd >= 0)
    close (f->fd);
  f->fd = -1;
  free (f->path);
  f->path = NULL;
}

int
hostfile_pread (const struct hostfile *f, void *buf, size_t count,
                uint64_t offset)
{
  char *p = buf;

  if (!hostfile_offset_ok (offset, count))
    return q2_error ("%s: read at host offset %#" PRIx64 " (%zu bytes): past "
                     "the largest offset qemu reads (%#" PRIx64 ")", f->path,
                     offset, count, HOSTFILE_MAX_OFFSET);
  while (count > 0) {
    ssize_t r;

    if (offset >= f->size) {
      memset (p, 0, count);
      return 0;
    }
    r = pread (f->fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return q2_error ("%s: read at host offset %" PRIu64 ": %m",
                       f->path, offset);
    }
    if (r == 0) {             /* file shrank since open: rest is zeros */
      memset (p, 0, count);
      return 0;
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

int
hostfile_allocation (const struct hostfile *f, uint64_t offset,
                     uint64_t max, bool *is_data, uint64_t *run)
{
  off_t data, hole;

  if (offset >= f->size) {
    *is_data = false;
    *run = max;
    return 0;
  }
  data = lseek (f->fd, offset, SEEK_DATA);
  if (data == -1) {
    if (errno == ENXIO) {       /* trailing hole */
      *is_data = false;
      *run = max;
      return 0;
    }
    *is_data = true;            /* no information: everything is data */
    *run = max;
    return 0;
  }
  if ((uint64_t) data > offset) {
    *is_data = false;
    *run = (uint64_t) data - offset;
  }
  else {
    hole = lseek (f->fd, offset, SEEK_HOLE);
    if (hole == -1 || (uint64_t) hole <= offset)
      hole = f->size;
    *is_data = true;
    *run = (uint64_t) hole - offset;
  }
  if (*run > max)
    *run = max;
  return 0;
}
