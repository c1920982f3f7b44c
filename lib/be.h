/* SPDX-License-Identifier: BSD-3-Clause */
/* Big-endian fields of on-disk structures (qcow2 is big-endian),
 * read from unaligned byte buffers.
 */
#ifndef Q2_BE_H
#define Q2_BE_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t
get_be16 (const uint8_t *p)
{
  uint16_t v;
  memcpy (&v, p, 2);
  return be16toh (v);
}

static inline uint32_t
get_be32 (const uint8_t *p)
{
  uint32_t v;
  memcpy (&v, p, 4);
  return be32toh (v);
}

static inline uint64_t
get_be64 (const uint8_t *p)
{
  uint64_t v;
  memcpy (&v, p, 8);
  return be64toh (v);
}

#endif
