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

/* The last message recorded in this thread ("" if none). */
const char *q2_last_error (void);

#endif
