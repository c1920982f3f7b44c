/* SPDX-License-Identifier: BSD-3-Clause */
/* Image locking compatible with qemu (see image_lock.h): the lock
 * layout of qemu's block/file-posix.c (raw_apply_lock_bytes,
 * raw_check_lock_bytes) and util/osdep.c (qemu_lock_fd,
 * qemu_lock_fd_test), for a reader.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "image_lock.h"
#include "q2_error.h"

/* qemu's RAW_LOCK_PERM_BASE and RAW_LOCK_SHARED_BASE.  (libvirt's
 * virtlockd uses byte 0; qemu leaves the bytes below 100 to it.)
 */
#define PERM_BASE   100
#define SHARED_BASE 200

/* qemu's BLK_PERM_* bits, in qemu's order: permission P is locked at
 * PERM_BASE + P and SHARED_BASE + P.
 */
enum perm {
  PERM_CONSISTENT_READ,
  PERM_WRITE,
  PERM_WRITE_UNCHANGED,
  PERM_RESIZE,
  PERM_COUNT
};

/* qemu's names (bdrv_perm_names), which its messages quote. */
static const char *const perm_name[PERM_COUNT] = {
  "consistent read", "write", "write unchanged", "resize",
};

/* What it means for us that another process holds PERM_BASE + P:
 * it uses permission P, which we do not share.
 */
static const char *const perm_holder[PERM_COUNT] = {
  [PERM_WRITE] = "another process has the image open for writing",
  [PERM_RESIZE] = "another process may resize the image",
};

#define BIT(p) (1u << (p))

static int
lock_byte (int fd, int off)
{
  struct flock fl = {
    .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 1,
  };
  int r;

  do
    r = fcntl (fd, F_OFD_SETLK, &fl);
  while (r == -1 && errno == EINTR);
  return r;
}

/* Does another open file description hold byte OFF?  (Our own lock
 * on the same description does not count, as in qemu.)  Returns 1, 0,
 * or -1 with errno set.
 */
static int
byte_is_locked (int fd, int off)
{
  struct flock fl = {
    .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 1,
  };

  if (fcntl (fd, F_OFD_GETLK, &fl) == -1)
    return -1;
  return fl.l_type != F_UNLCK;
}

/* qemu_probe_lock_ops: a kernel older than Linux 3.15 has no OFD
 * locks and says EINVAL.
 */
static bool
have_ofd_locks (int fd)
{
  return byte_is_locked (fd, PERM_BASE) != -1 || errno != EINVAL;
}

/* raw_apply_lock_bytes: our own locks. */
static int
apply (const struct hostfile *f, unsigned held, unsigned unshared)
{
  int p, off;

  for (p = 0; p < 2 * PERM_COUNT; p++) {
    bool ours = p < PERM_COUNT ? held & BIT (p)
                               : unshared & BIT (p - PERM_COUNT);
    if (!ours)
      continue;
    off = p < PERM_COUNT ? PERM_BASE + p : SHARED_BASE + p - PERM_COUNT;
    if (lock_byte (f->fd, off) == -1) {
      /* qemu never takes a write lock: whoever did is not qemu. */
      if (errno == EAGAIN || errno == EACCES)
        return q2_error ("%s: Failed to lock byte %d: another process "
                         "holds a write lock on it", f->path, off);
      return q2_error ("%s: Failed to lock byte %d: %m (the filesystem "
                       "cannot lock; locking=off serves without locks)",
                       f->path, off);
    }
  }
  return 0;
}

/* raw_check_lock_bytes: in qemu's order, first that nobody refuses to
 * share what we use, then that nobody uses what we do not share.
 */
static int
check (const struct hostfile *f, unsigned held, unsigned unshared)
{
  int p, r;

  for (p = 0; p < PERM_COUNT; p++) {
    if (!(held & BIT (p)))
      continue;
    r = byte_is_locked (f->fd, SHARED_BASE + p);
    if (r == -1)
      return q2_error ("%s: test lock byte %d: %m", f->path, SHARED_BASE + p);
    if (r == 1)
      return q2_error ("%s: Failed to get \"%s\" lock: another process "
                       "forbids reading the image while it changes it "
                       "(locking=off overrides)", f->path, perm_name[p]);
  }
  for (p = 0; p < PERM_COUNT; p++) {
    if (!(unshared & BIT (p)))
      continue;
    r = byte_is_locked (f->fd, PERM_BASE + p);
    if (r == -1)
      return q2_error ("%s: test lock byte %d: %m", f->path, PERM_BASE + p);
    if (r == 1)
      return q2_error ("%s: Failed to get shared \"%s\" lock: %s; serving "
                       "it could give stale or torn data (force-share=on "
                       "serves it anyway)", f->path, perm_name[p],
                       perm_holder[p]);
  }
  return 0;
}

int
image_lock (const struct hostfile *f, const struct image_lock_options *o)
{
  const unsigned held = BIT (PERM_CONSISTENT_READ);
  unsigned unshared = BIT (PERM_WRITE) | BIT (PERM_RESIZE);

  if (f->fd == -1 || o == NULL || o->locking == IMAGE_LOCKING_OFF)
    return 0;
  if (!have_ofd_locks (f->fd)) {
    /* qemu's locking=auto then takes no locks; locking=on falls back
     * to POSIX locks, which we cannot keep: nbdkit's fork into the
     * background and any close of another descriptor of the file
     * would drop them.
     */
    if (o->locking == IMAGE_LOCKING_AUTO)
      return 0;
    return q2_error ("%s: locking=on: this kernel has no OFD locks",
                     f->path);
  }
  if (o->force_share)
    unshared = 0;
  if (apply (f, held, unshared) == -1 || check (f, held, unshared) == -1)
    return -1;
  return 0;
}

/* ---- parameters ---- */

static int
parse_bool (const char *v)
{
  static const char *const yes[] = { "on", "yes", "true", "1" };
  static const char *const no[] = { "off", "no", "false", "0" };
  size_t i;

  for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    if (strcasecmp (v, yes[i]) == 0)
      return 1;
    if (strcasecmp (v, no[i]) == 0)
      return 0;
  }
  return -1;
}

int
image_lock_config (struct image_lock_options *o,
                   const char *key, const char *value)
{
  int b = parse_bool (value);

  if (strcmp (key, "locking") == 0) {
    if (strcasecmp (value, "auto") == 0)
      o->locking = IMAGE_LOCKING_AUTO;
    else if (b == -1)
      return q2_error ("locking=%s: expected on, off or auto", value);
    else
      o->locking = b ? IMAGE_LOCKING_ON : IMAGE_LOCKING_OFF;
    return 1;
  }
  if (strcmp (key, "force-share") == 0) {
    if (b == -1)
      return q2_error ("force-share=%s: expected on or off", value);
    o->force_share = b;
    return 1;
  }
  return 0;
}
