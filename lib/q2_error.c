#include <config.h>

#include <stdarg.h>
#include <stdio.h>

#include "q2_error.h"

/* Thread-local so that parallel requests never see each other's
 * messages and no lock is needed.
 */
static __thread char last_error[512];

int
q2_error (const char *fmt, ...)
{
  int saved_errno = errno ? errno : EIO;
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (last_error, sizeof last_error, fmt, ap);
  va_end (ap);
  errno = saved_errno;
  return -1;
}

const char *
q2_last_error (void)
{
  return last_error;
}
