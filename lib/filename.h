/* SPDX-License-Identifier: BSD-3-Clause */
/* File names stored inside images (backing file, external data file):
 * qemu resolves a relative name against the directory of the image
 * that names it, and treats "proto:..." names as protocols.
 */
#ifndef Q2_FILENAME_H
#define Q2_FILENAME_H

#include <stdbool.h>

/* NAME as seen from the image IMAGE_PATH: NAME if absolute, otherwise
 * dirname(IMAGE_PATH)/NAME.  Returns a malloc'd string or NULL (q2_error).
 */
char *filename_resolve (const char *image_path, const char *name);

/* True if NAME is a protocol name in qemu's sense ("nbd:...",
 * "json:{...}", "http://..."): a ':' before the first '/'.
 */
bool filename_has_protocol (const char *name);

#endif
