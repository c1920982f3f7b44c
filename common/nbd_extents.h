/* SPDX-License-Identifier: BSD-3-Clause */
/* What the plugin and the depth filter share when they answer NBD
 * block status: the translation of the library's allocation status to
 * NBD's extent flags, and the loop that fills one request's extents.
 * Include <nbdkit-plugin.h> or <nbdkit-filter.h> first (both declare
 * nbdkit_add_extent).
 */
#ifndef QCOW2MAP_NBD_EXTENTS_H
#define QCOW2MAP_NBD_EXTENTS_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "allocation.h"
#include "q2_error.h"

/* Extents answered per request: bounded work per request, and plenty
 * for a client, which asks again from where the answer ends.
 */
#define MAX_EXTENTS_PER_REQUEST 4096

/* NBD's base:allocation flags for allocation status A. */
static inline uint32_t
nbd_extent_type (struct allocation a)
{
  return (a.allocated ? 0 : NBDKIT_EXTENT_HOLE) |
         (a.reads_zero ? NBDKIT_EXTENT_ZERO : 0);
}

/* The allocation status at OFFSET of whatever OPAQUE serves: sets *A
 * and *LENGTH (1..COUNT).  Returns 0, or -1 with q2_error set.
 */
typedef int (*allocation_at_fn) (void *opaque, uint64_t offset,
                                 uint64_t count, uint64_t *length,
                                 struct allocation *a);

/* Add to EXTENTS the extents of [OFFSET, OFFSET + COUNT) as STATUS
 * answers them: one if REQ_ONE (NBDKIT_FLAG_REQ_ONE), else up to
 * MAX_EXTENTS_PER_REQUEST.  Returns 0, or -1 with the error reported
 * (nbdkit_error) and errno set for the client.
 */
static inline int
nbd_add_extents (struct nbdkit_extents *extents, uint64_t offset,
                 uint32_t count, bool req_one, allocation_at_fn status,
                 void *opaque)
{
  uint32_t first_type = 0;
  unsigned n;

  /* lib/ answers one L2 slice (or one layer's run) at a time, and
   * nbdkit merges adjacent extents of one type.  With REQ_ONE (which
   * qemu's NBD client always sets) go on while the type stays the
   * same, so that the one extent nbdkit sends is as long as the
   * metadata proves, not one slice.  Either way, bounded work.
   */
  for (n = 0; count > 0 && n < MAX_EXTENTS_PER_REQUEST; n++) {
    struct allocation a;
    uint64_t length;
    uint32_t type;

    if (status (opaque, offset, count, &length, &a) == -1) {
      nbdkit_error ("%s", q2_last_error ());
      errno = q2_request_errno ();
      return -1;
    }
    type = nbd_extent_type (a);
    if (n == 0)
      first_type = type;
    else if (req_one && type != first_type)
      break;
    if (nbdkit_add_extent (extents, offset, length, type) == -1)
      return -1;                /* errno set by nbdkit */
    offset += length;
    count -= length;
  }
  return 0;
}

#endif
