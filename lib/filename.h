/* SPDX-License-Identifier: BSD-3-Clause */
/* File names stored inside images (backing file, external data file):
 * a relative name is resolved against the directory of the image that
 * names it.  qemu treats "proto:..." backing file names as protocols;
 * a data file name is a plain file name whatever it holds.
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

/* A backing file name with qemu's file protocol, "file:PATH": PATH as
 * qemu's file driver opens it (it strips the prefix), relative to the
 * directory the process started in (qemu: its working directory; nbdkit
 * moves to / when it forks into the background, so the directory is
 * remembered when this library is loaded).  Returns a malloc'd string;
 * NULL with q2_error set on failure, or NULL with *NOT_FILE = true if
 * NAME does not start with "file:".
 */
char *filename_file_protocol (const char *name, bool *not_file);

#endif
