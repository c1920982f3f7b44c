/* SPDX-License-Identifier: BSD-3-Clause */
/* The allocation status of a guest (or file) range, in the library's
 * own terms.  The servers translate it to their protocol's flags
 * (common/nbd_extents.h: NBD's HOLE is !allocated, ZERO is
 * reads_zero).
 */
#ifndef Q2_ALLOCATION_H
#define Q2_ALLOCATION_H

#include <stdbool.h>

struct allocation {
  bool allocated;       /* some layer of the view (or the file) holds it */
  bool reads_zero;      /* it is known to read as zeros */
};

/* Allocated nowhere, reads as zeros. */
#define ALLOCATION_HOLE ((struct allocation) { false, true })

#endif
