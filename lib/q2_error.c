/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q2_error.h"

/* One record per thread, so that parallel requests never see each
 * other's messages and no lock is needed.  The message buffer grows
 * with the message (a message naming three long paths does not fit in
 * a fixed few hundred bytes) up to Q2_ERROR_MAX; the thread's record is
 * freed when the thread exits.
 */
struct q2_error_record {
  char *msg;
  size_t cap;
  int errnum;
};

static pthread_key_t record_key;
static pthread_once_t record_once = PTHREAD_ONCE_INIT;

static void
record_free (void *p)
{
  struct q2_error_record *r = p;

  free (r->msg);
  free (r);
}

static void
record_key_create (void)
{
  pthread_key_create (&record_key, record_free);
}

static struct q2_error_record *
record_get (void)
{
  struct q2_error_record *r;

  pthread_once (&record_once, record_key_create);
  r = pthread_getspecific (record_key);
  if (r == NULL) {
    r = calloc (1, sizeof *r);
    if (r != NULL && pthread_setspecific (record_key, r) != 0) {
      free (r);
      r = NULL;
    }
  }
  return r;
}

/* Make room for LEN bytes + NUL (bounded).  Returns the capacity. */
static size_t
record_reserve (struct q2_error_record *r, size_t len)
{
  size_t want = len + 1 < Q2_ERROR_MAX ? len + 1 : Q2_ERROR_MAX;
  char *p;

  if (want <= r->cap)
    return r->cap;
  p = realloc (r->msg, want);
  if (p == NULL)
    return r->cap;
  r->msg = p;
  r->cap = want;
  return r->cap;
}

int
q2_error (const char *fmt, ...)
{
  int saved_errno = errno ? errno : EIO;
  struct q2_error_record *r = record_get ();
  char *msg;
  va_list ap;
  int len;

  if (r == NULL) {
    errno = saved_errno;
    return -1;
  }
  /* Format into a new string: callers may pass q2_last_error () as an
   * argument to wrap the previous message with more context.
   */
  va_start (ap, fmt);
  errno = saved_errno;          /* for %m */
  len = vasprintf (&msg, fmt, ap);
  va_end (ap);
  if (len >= 0 && record_reserve (r, len) > 0) {
    size_t n = (size_t) len < r->cap ? (size_t) len : r->cap - 1;
    memcpy (r->msg, msg, n);
    r->msg[n] = '\0';
    if (n < (size_t) len && n >= 3)   /* cut at the bound: say so */
      memcpy (r->msg + n - 3, "...", 3);
  }
  if (len >= 0)
    free (msg);
  r->errnum = saved_errno;
  errno = saved_errno;
  return -1;
}

const char *
q2_last_error (void)
{
  struct q2_error_record *r = record_get ();

  return r && r->msg ? r->msg : "";
}

int
q2_last_errno (void)
{
  struct q2_error_record *r = record_get ();

  return r && r->errnum ? r->errnum : EIO;
}
