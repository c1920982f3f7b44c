/* SPDX-License-Identifier: BSD-3-Clause */
/* What the plugin and the depth filter share when they answer NBD
 * block status: the translation of the library's allocation status to
 * NBD's extent flags.
 * Include <nbdkit-plugin.h> or <nbdkit-filter.h> first (both declare
 * nbdkit_add_extent).
 */
#ifndef QCOW2MAP_NBD_EXTENTS_H
#define QCOW2MAP_NBD_EXTENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "allocation.h"

/* NBD's base:allocation flags for allocation status A. */
static inline uint32_t
nbd_extent_type (struct allocation a)
{
  return (a.allocated ? 0 : NBDKIT_EXTENT_HOLE) |
         (a.reads_zero ? NBDKIT_EXTENT_ZERO : 0);
}

#endif
