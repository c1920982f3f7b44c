/* SPDX-License-Identifier: BSD-3-Clause */
/* The host file interface (what every source shares: the bound of
 * qemu's block layer, zeros past the end) and its local-file
 * implementation.
 */
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

/* ---- the local file ---- */

static int
local_pread (const struct hostfile *f, void *buf, size_t count,
             uint64_t offset)
{
  char *p = buf;

  while (count > 0) {
    ssize_t r = pread (f->fd, p, count, offset);

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

static int
local_allocation (const struct hostfile *f, uint64_t offset,
                  uint64_t max, bool *is_data, uint64_t *run)
{
  off_t data, hole;

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
  return 0;
}

static void
local_prefetch (const struct hostfile *f, uint64_t offset, uint64_t count)
{
  /* Advice only: its failure changes nothing. */
  (void) posix_fadvise (f->fd, offset, count, POSIX_FADV_WILLNEED);
}

static void
local_close (struct hostfile *f)
{
  if (f->fd >= 0)
    close (f->fd);
  f->fd = -1;
}

static int
local_reopen (const struct hostfile *f, struct hostfile *out)
{
  return hostfile_open (out, f->path);
}

static const struct hostfile_ops local_ops = {
  .pread = local_pread,
  .allocation = local_allocation,
  .prefetch = local_prefetch,
  .reopen = local_reopen,
  .close = local_close,
};

int
hostfile_open (struct hostfile *f, const char *path)
{
  struct stat st;

  *f = (struct hostfile) { .ops = &local_ops };
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

/* ---- any source ---- */

int
hostfile_open_source (struct hostfile *f, const char *name, uint64_t size,
                      const struct hostfile_ops *ops, void *opaque)
{
  uint64_t offset = 0, run;
  bool is_data;

  *f = (struct hostfile) { .ops = ops, .opaque = opaque, .fd = -1,
                           .size = size };
  f->path = strdup (name);
  if (f->path == NULL) {
    q2_error ("strdup: %m");
    hostfile_close (f);
    return -1;
  }
  /* qemu's metadata preallocation heuristic compares the clusters in
   * use with the bytes the file allocates (layer.c).
   */
  while (ops->allocation && offset < size) {
    if (ops->allocation (f, offset, size - offset, &is_data, &run) == -1) {
      hostfile_close (f);
      return -1;
    }
    if (run == 0 || run > size - offset)
      run = size - offset;
    f->allocated += is_data ? run : 0;
    offset += run;
  }
  if (ops->allocation == NULL)
    f->allocated = size;
  return 0;
}

void
hostfile_close (struct hostfile *f)
{
  if (f->ops && f->ops->close)
    f->ops->close (f);
  f->ops = NULL;
  f->fd = -1;
  free (f->path);
  f->path = NULL;
}

int
hostfile_reopen (const struct hostfile *f, struct hostfile *out)
{
  return f->ops->reopen (f, out);
}

void
hostfile_prefetch (const struct hostfile *f, uint64_t offset, uint64_t count)
{
  if (f->ops->prefetch)
    f->ops->prefetch (f, offset, count);
}

int
hostfile_pread (const struct hostfile *f, void *buf, size_t count,
                uint64_t offset)
{
  if (!hostfile_offset_ok (offset, count))
    return q2_error ("%s: read at host offset %#" PRIx64 " (%zu bytes): past "
                     "the largest offset qemu reads (%#" PRIx64 ")", f->path,
                     offset, count, HOSTFILE_MAX_OFFSET);
  if (offset >= f->size) {
    memset (buf, 0, count);
    return 0;
  }
  return f->ops->pread (f, buf, count, offset);
}

int
hostfile_allocation (const struct hostfile *f, uint64_t offset,
                     uint64_t max, bool *is_data, uint64_t *run)
{
  if (offset >= f->size) {
    *is_data = false;
    *run = max;
    return 0;
  }
  if (f->ops->allocation == NULL) {
    *is_data = true;
    *run = max;
    return 0;
  }
  if (f->ops->allocation (f, offset, max, is_data, run) == -1)
    return -1;
  if (*run > max)
    *run = max;
  return 0;
}
