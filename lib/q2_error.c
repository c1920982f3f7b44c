#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "q2_error.h"

/* Thread-local so that parallel requests never see each other's
 * messages and no lock is needed.
 */
static __thread char last_error[512];

int
q2_error (const char *fmt, ...)
{
  int saved_errno = errno ? errno : EIO;
  char msg[sizeof last_error];
  va_list ap;

  /* Format into a copy: callers may pass q2_last_error () as an
   * argument to wrap the previous message with more context.
   */
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  memcpy (last_error, msg, sizeof msg);
  errno = saved_errno;
  return -1;
}

const char *
q2_last_error (void)
{
  return last_error;
}
