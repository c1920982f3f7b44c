/* SPDX-License-Identifier: BSD-3-Clause */
/* JSON documents served as exports (file/N.json, depth.json) are padded
 * with whitespace to a multiple of JSON_PAD_BLOCK bytes, so that
 * nbdkit's blocksize filter, which rounds the export size down to its
 * minblock, does not cut them (minblock=4096 made them 0 bytes).
 * Whitespace after the value is still the same JSON document.
 */
#ifndef Q2_JSON_PAD_H
#define Q2_JSON_PAD_H

#include <stddef.h>

#define JSON_PAD_BLOCK 4096

/* Pad the malloc'd document *DOC of *LEN bytes, which ends in a newline:
 * spaces go before that newline, so the padding is invisible on a
 * terminal and the document still ends in a newline.  Returns 0, or -1
 * with q2_error set (then *DOC is unchanged).
 */
int json_pad (char **doc, size_t *len);

#endif
