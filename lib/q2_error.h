/* SPDX-License-Identifier: BSD-3-Clause */
/* Error reporting for lib/: the library never prints; it records one
 * message per thread that the caller (plugin, filter, unit test) prints
 * in its own way.
 */
#ifndef Q2_ERROR_H
#define Q2_ERROR_H

#include <errno.h>

/* Record a printf-style message for the current thread and return -1,
 * so callers can write "return q2_error (...);". errno is preserved
 * unless the message sets it (EIO is set if errno was 0).
 */
int q2_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* The last message recorded in this thread ("" if none).  Messages
 * longer than Q2_ERROR_MAX - 1 bytes are cut, ending in "...".
 */
#define Q2_ERROR_MAX 16384
const char *q2_last_error (void);

/* The errno value when the last message was recorded in this thread
 * (EIO if none): ENOMEM for an allocation failure, so that callers can
 * pass it on instead of EIO.
 */
int q2_last_errno (void);

/* The errno with which a failed request should fail: ENOMEM passes
 * through (the client may retry), anything else (a damaged image, an
 * I/O error of the host file) is EIO.
 */
static inline int
q2_request_errno (void)
{
  return q2_last_errno () == ENOMEM ? ENOMEM : EIO;
}

#endif
