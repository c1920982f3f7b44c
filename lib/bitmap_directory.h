/* SPDX-License-Identifier: BSD-3-Clause */
/* The bitmap directory (qcow2 spec, "Bitmaps extension" and "Bitmap
 * directory"): the persistent dirty bitmaps of an image.  qemu 7.2
 * loads them whenever it opens an image (qcow2_load_dirty_bitmaps in
 * block/qcow2-bitmap.c) and refuses the image if one is malformed; we
 * check them with the same rules so that we open what qemu opens.  We
 * do not read the bitmaps' data: it cannot make qemu's open fail.
 */
#ifndef Q2_BITMAP_DIRECTORY_H
#define Q2_BITMAP_DIRECTORY_H

#include <stdint.h>

#include "hostfile.h"
#include "qcow2_header.h"

#define QCOW2_BITMAP_IN_USE (1U << 0)
#define QCOW2_BITMAP_AUTO   (1U << 1)

/* Check the bitmap directory of image file F, whose validated header is
 * H, as qemu does when it opens the image: the directory entries, the
 * names (qemu refuses two bitmaps of one name unless the second is in
 * use), and the bitmap table of every bitmap not in use.  Nothing to do
 * when the image has no valid bitmaps extension.  Reads the directory
 * entry by entry and the tables a cluster at a time: memory does not
 * depend on the header.  Returns 0, or -1 with q2_error set to
 * "PATH: <field>: <cause>".
 */
int qcow2_bitmap_directory_check (const struct hostfile *f,
                                  const struct qcow2_header *h);

#endif
