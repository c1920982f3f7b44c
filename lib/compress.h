/* SPDX-License-Identifier: BSD-3-Clause */
/* Decompression of compressed clusters: raw deflate (zlib's inflate with
 * a 4 KiB window, or libdeflate when built with it) and zstd.  Runs in
 * the calling thread.
 */
#ifndef Q2_COMPRESS_H
#define Q2_COMPRESS_H

#include <stddef.h>
#include <stdbool.h>

/* Decompress IN (IN_LEN bytes, possibly followed by padding up to the
 * next sector) into exactly OUT_LEN bytes.  TYPE is the header's
 * compression_type.  Returns 0, or -1 with q2_error set to the cause
 * (no file/offset: the caller adds those).
 */
int decompress_cluster (int type, const void *in, size_t in_len,
                        void *out, size_t out_len);

/* Whether zstd support is compiled in. */
bool compress_have_zstd (void);
/* "libdeflate" or "zlib". */
const char *compress_deflate_impl (void);

#endif
