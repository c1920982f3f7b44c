/* SPDX-License-Identifier: BSD-3-Clause */
/* Choosing the thread model.
 *
 * nbdkit before 1.33.10 aborts the whole server ("raw_send_socket:
 * Assertion `sock >= 0' failed", upstream commit 9d82aa4f) when a client
 * hangs up while the server still owes it replies: with the parallel
 * model, one worker thread of the connection reads EOF and shuts the
 * socket (its descriptor becomes -1) while another worker is still
 * computing a reply, which it then tries to send.  nbdcopy exits like
 * that at its first read error; any client killed mid-copy does too.
 *
 * With NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS a connection has one
 * thread that reads a request, serves it and sends the reply before
 * reading the next, so nothing can be sent after the EOF.  Different
 * connections still run in parallel, and the plugin advertises
 * multi-conn, so nbdcopy (4 connections by default) keeps its
 * parallelism; bench/README.md has the measured cost.
 *
 * "auto" (the default) therefore chooses parallel only when the nbdkit
 * serving us is known to be fixed:
 *  - at run time, the server exports nbdkit_parse_probability, which
 *    appeared in nbdkit 1.35 (stable 1.36), after the fix: a plugin
 *    built on Debian 12 keeps working, in parallel, when nbdkit is
 *    upgraded under it;
 *  - otherwise, we were compiled against nbdkit >= 1.33.10 headers
 *    (nbdkit 1.34 has the fix but exports nothing new to tell it from
 *    1.32 at run time; a plugin is not expected to run on an nbdkit older
 *    than the one it was built for).
 * Filters can only narrow the model nbdkit finally uses (the depth
 * filter declares none), so they cannot bring the problem back.
 *
 * Where both are safe, neither model is fastest for every client, and
 * the difference is nbdkit's, not ours (bench/README.md, "Thread model
 * on both releases"): parallel gives each connection 16 worker threads
 * (nbdkit's --threads, which a plugin cannot change) that hand the
 * socket's read lock to each other on every request, which costs full
 * copies over nbdcopy's 4 connections a third to a half more server
 * CPU on 2 CPUs (plain images; up to a tenth on compressed ones); serialized,
 * a client with a deep queue on one connection gets one CPU, half the
 * random-read rate of a compressed image.  The plugin's own locks are
 * not contended in either.  "auto" takes parallel wherever it is safe:
 * only it lets one connection use more than one CPU, and nbdkit's
 * --threads=2 brings copies back near the serialized cost.
 */
#include <config.h>

#include <dlfcn.h>
#include <stdbool.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "thread_model.h"

#define BUILT_AGAINST_FIXED_NBDKIT                                      \
  (NBDKIT_VERSION_MAJOR > 1 ||                                          \
   (NBDKIT_VERSION_MAJOR == 1 &&                                        \
    (NBDKIT_VERSION_MINOR > 33 ||                                       \
     (NBDKIT_VERSION_MINOR == 33 && NBDKIT_VERSION_MICRO >= 10))))

static int requested = -1;       /* -1 = auto */

int
thread_model_config (const char *value)
{
  if (strcmp (value, "auto") == 0)
    requested = -1;
  else if (strcmp (value, "parallel") == 0)
    requested = NBDKIT_THREAD_MODEL_PARALLEL;
  else if (strcmp (value, "serialize_requests") == 0 ||
           strcmp (value, "serialize-requests") == 0)
    requested = NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
  else {
    nbdkit_error ("thread-model=%s: expected auto, parallel or "
                  "serialize_requests", value);
    return -1;
  }
  return 0;
}

static bool
server_is_fixed (void)
{
  return dlsym (RTLD_DEFAULT, "nbdkit_parse_probability") != NULL ||
    BUILT_AGAINST_FIXED_NBDKIT;
}

const char *
thread_model_auto_name (void)
{
  return server_is_fixed () ? "parallel" : "serialize_requests";
}

int
thread_model_choose (void)
{
  if (requested != -1)
    return requested;
  return server_is_fixed () ? NBDKIT_THREAD_MODEL_PARALLEL
                            : NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
}
