/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for lib/q2_error.c: messages are kept whole up to the
 * bound (a message naming several long paths does not fit in a few
 * hundred bytes), cut visibly beyond it, may wrap the previous message,
 * are per thread, and carry errno so that an allocation failure reaches
 * the client as ENOMEM, not EIO.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q2_error.h"

static int failures;

static void
check (int cond, const char *what)
{
  printf ("%s %s\n", cond ? "ok  " : "FAIL", what);
  if (!cond)
    failures++;
}

static void *
other_thread (void *arg)
{
  q2_error ("message of another thread");
  return NULL;
}

int
main (void)
{
  static char path[3000];
  pthread_t t;
  size_t len;

  check (strcmp (q2_last_error (), "") == 0, "no message yet: \"\"");

  /* Whole: three paths of 1000 bytes. */
  memset (path, 'p', 1000);
  q2_error ("%s: backing file '%s' makes a loop (it is %s)", path, path, path);
  len = strlen (q2_last_error ());
  check (len == 3000 + strlen (": backing file '' makes a loop (it is )"),
         "a 3000+ byte message is kept whole");

  /* Cut at the bound, visibly. */
  memset (path, 'q', sizeof path - 1);
  q2_error ("%s%s%s%s%s%s", path, path, path, path, path, path);
  len = strlen (q2_last_error ());
  check (len == Q2_ERROR_MAX - 1, "an 18 KB message is cut at the bound");
  check (strcmp (q2_last_error () + len - 3, "...") == 0,
         "a cut message ends in ...");

  /* Wrapping the previous message with context. */
  q2_error ("inner cause");
  q2_error ("outer: %s", q2_last_error ());
  check (strcmp (q2_last_error (), "outer: inner cause") == 0,
         "a message can wrap the previous one");

  /* errno: ENOMEM passes to the client, anything else is EIO. */
  errno = ENOMEM;
  q2_error ("malloc: %m");
  check (strcmp (q2_last_error (), "malloc: Cannot allocate memory") == 0,
         "%m formats the caller's errno");
  check (errno == ENOMEM, "errno preserved");
  errno = 0;
  check (q2_last_errno () == ENOMEM, "q2_last_errno is ENOMEM");
  check (q2_request_errno () == ENOMEM, "a request fails with ENOMEM");
  errno = EISDIR;
  q2_error ("is a directory");
  check (q2_last_errno () == EISDIR && q2_request_errno () == EIO,
         "other errors: the request fails with EIO");
  errno = 0;
  q2_error ("corrupt");
  check (q2_last_errno () == EIO, "errno 0 is recorded as EIO");

  /* Per thread. */
  q2_error ("message of this thread");
  if (pthread_create (&t, NULL, other_thread, NULL) != 0 ||
      pthread_join (t, NULL) != 0) {
    perror ("pthread");
    return 1;
  }
  check (strcmp (q2_last_error (), "message of this thread") == 0,
         "another thread's message does not replace ours");

  return failures ? 1 : 0;
}
