/* SPDX-License-Identifier: BSD-3-Clause */
/* Scope-bound cleanup, as nbdkit's common/utils/cleanup.h: a variable
 * declared CLEANUP_FREE is freed when it goes out of scope, so that a
 * function with several early returns needs no goto ladder for it.
 * (GCC and Clang extension, as nbdkit itself relies on.)
 */
#ifndef Q2_CLEANUP_H
#define Q2_CLEANUP_H

#include <stdlib.h>

static inline void
cleanup_free (void *ptr)
{
  free (*(void **) ptr);
}

#define CLEANUP_FREE __attribute__ ((cleanup (cleanup_free)))

#endif
