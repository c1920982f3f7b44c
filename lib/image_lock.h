/* SPDX-License-Identifier: BSD-3-Clause */
/* Image locking compatible with qemu: take on a host file the
 * byte-range locks that qemu's file driver (block/file-posix.c) takes,
 * so that qemu and we see each other.
 *
 * qemu describes what each opener of a file does with "permissions"
 * (consistent read, write, write unchanged, resize).  An opener holds
 * an open file description (OFD) read lock on byte 100 + p for every
 * permission p it uses, and on byte 200 + p for every permission it
 * refuses to share.  Before using p it checks that nobody holds byte
 * 200 + p, and before refusing to share p that nobody holds byte
 * 100 + p.  Read locks never conflict with each other: the bytes are
 * only ever tested, so any number of readers coexist.
 *
 * We open as a reader that needs a consistent read and shares neither
 * write nor resize: what qemu-nbd -r and qemu-img convert hold on a
 * qcow2 file.  A running VM holds "write", so we refuse to start, and
 * a qemu that wants to write later fails with its own lock error.
 */
#ifndef Q2_IMAGE_LOCK_H
#define Q2_IMAGE_LOCK_H

#include <stdbool.h>

#include "hostfile.h"

/* qemu's file.locking option. */
enum image_locking {
  IMAGE_LOCKING_AUTO,   /* lock if the kernel has OFD locks (default) */
  IMAGE_LOCKING_ON,     /* lock, and fail if the kernel cannot */
  IMAGE_LOCKING_OFF,    /* take no locks, check nothing */
};

struct image_lock_options {
  enum image_locking locking;
  bool force_share;     /* qemu's force-share=on: share every permission */
};

/* The user parameters "locking=on|off|auto" and "force-share=BOOL"
 * (shared by the plugin and the depth filter).  Returns 1 if KEY is one
 * of them and VALUE was stored in *O, 0 if KEY is not ours, -1 with
 * q2_error set if VALUE is invalid.
 */
int image_lock_config (struct image_lock_options *o,
                       const char *key, const char *value);

/* Take the locks on F (an open host file of the chain) as O says.
 * They last as long as F's file descriptor.  Returns 0, or -1 with
 * q2_error set to one line naming F and the cause: another process
 * holds the image for writing (qemu's 'Failed to get shared "write"
 * lock'), or the filesystem cannot lock.  O == NULL: no locks.
 */
int image_lock (const struct hostfile *f, const struct image_lock_options *o);

#endif
