/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <pthread.h>
#include <stdlib.h>
#include <zlib.h>
#ifdef HAVE_ZSTD
#include <zstd.h>
#endif
#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "compress.h"
#include "qcow2_header.h"
#include "q2_error.h"

/* qemu writes raw deflate with a 4 KiB window (windowBits -12).  Like
 * qemu, accept the stream if it fills the output, even when the input
 * (known only to sector precision) is not completely consumed.
 */
static int
inflate_zlib (const void *in, size_t in_len, void *out, size_t out_len)
{
  z_stream s = { 0 };
  int r;

  if (inflateInit2 (&s, -12) != Z_OK)
    return q2_error ("zlib: inflateInit2 failed");
  s.next_in = (Bytef *) in;
  s.avail_in = in_len;
  s.next_out = out;
  s.avail_out = out_len;
  r = inflate (&s, Z_FINISH);
  inflateEnd (&s);
  if ((r == Z_STREAM_END || r == Z_BUF_ERROR) && s.avail_out == 0)
    return 0;
  return q2_error ("corrupt deflate data (zlib: %s)",
                   r == Z_STREAM_END ? "stream ends before the cluster does"
                   : s.msg ? s.msg : zError (r));
}

#ifdef HAVE_LIBDEFLATE
/* One decompressor per thread: creating one costs an allocation of
 * ~30 KiB, too much per cluster.
 */
static pthread_key_t deflate_key;
static pthread_once_t deflate_once = PTHREAD_ONCE_INIT;

static void
free_deflate (void *p)
{
  libdeflate_free_decompressor (p);
}

static void
make_deflate_key (void)
{
  pthread_key_create (&deflate_key, free_deflate);
}

static struct libdeflate_decompressor *
thread_deflate (void)
{
  struct libdeflate_decompressor *d;

  pthread_once (&deflate_once, make_deflate_key);
  d = pthread_getspecific (deflate_key);
  if (d == NULL) {
    d = libdeflate_alloc_decompressor ();
    if (d)
      pthread_setspecific (deflate_key, d);
  }
  return d;
}
#endif

static int
inflate_deflate (const void *in, size_t in_len, void *out, size_t out_len)
{
#ifdef HAVE_LIBDEFLATE
  struct libdeflate_decompressor *d = thread_deflate ();
  size_t in_used, out_done;

  /* Fast path; anything unusual (a stream longer than the cluster, which
   * qemu tolerates) falls back to zlib for qemu's exact semantics.
   */
  if (d &&
      libdeflate_deflate_decompress_ex (d, in, in_len, out, out_len,
                                        &in_used, &out_done)
      == LIBDEFLATE_SUCCESS &&
      out_done == out_len)
    return 0;
#endif
  return inflate_zlib (in, in_len, out, out_len);
}

#ifdef HAVE_ZSTD
static pthread_key_t zstd_key;
static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;

static void
free_zstd (void *p)
{
  ZSTD_freeDCtx (p);
}

static void
make_zstd_key (void)
{
  pthread_key_create (&zstd_key, free_zstd);
}

static ZSTD_DCtx *
thread_zstd (void)
{
  ZSTD_DCtx *d;

  pthread_once (&zstd_once, make_zstd_key);
  d = pthread_getspecific (zstd_key);
  if (d == NULL) {
    d = ZSTD_createDCtx ();
    if (d)
      pthread_setspecific (zstd_key, d);
  }
  return d;
}

/* As qemu: stream until the output is full; the frame may be followed
 * by padding, but must be complete when the cluster is.
 */
static int
inflate_zstd (const void *in, size_t in_len, void *out, size_t out_len)
{
  ZSTD_DCtx *d = thread_zstd ();
  ZSTD_inBuffer input = { in, in_len, 0 };
  ZSTD_outBuffer output = { out, out_len, 0 };
  size_t r = 0;

  if (d == NULL)
    return q2_error ("zstd: cannot create a decompression context");
  ZSTD_DCtx_reset (d, ZSTD_reset_session_only);
  while (output.pos < output.size) {
    size_t in_pos = input.pos, out_pos = output.pos;

    r = ZSTD_decompressStream (d, &output, &input);
    if (ZSTD_isError (r))
      return q2_error ("corrupt zstd data (%s)", ZSTD_getErrorName (r));
    if (input.pos == in_pos && output.pos == out_pos)
      return q2_error ("corrupt zstd data (truncated frame)");
  }
  if (r > 0)
    return q2_error ("corrupt zstd data (frame larger than a cluster)");
  return 0;
}
#endif

int
decompress_cluster (int type, const void *in, size_t in_len,
                    void *out, size_t out_len)
{
  switch (type) {
  case QCOW2_COMPRESSION_ZLIB:
    return inflate_deflate (in, in_len, out, out_len);
#ifdef HAVE_ZSTD
  case QCOW2_COMPRESSION_ZSTD:
    return inflate_zstd (in, in_len, out, out_len);
#endif
  default:
    return q2_error ("compression type %d is not supported by this build",
                     type);
  }
}

bool
compress_have_zstd (void)
{
#ifdef HAVE_ZSTD
  return true;
#else
  return false;
#endif
}

const char *
compress_deflate_impl (void)
{
#ifdef HAVE_LIBDEFLATE
  return "libdeflate";
#else
  return "zlib";
#endif
}
