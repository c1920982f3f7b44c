/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for cluster descriptor decoding (lib/qcow2_cluster.c) and
 * refcount entry extraction (lib/refcount.c).
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "qcow2_cluster.h"
#include "refcount.h"

#include "unit.h"

static void
test_standard (void)
{
  struct cluster_geometry g = { .cluster_bits = 16 };
  struct cluster_desc d;

  cluster_decode (&g, 0, 0, &d);
  CHECK (d.type == SC_UNALLOCATED, "0 is unallocated");
  cluster_decode (&g, QCOW_OFLAG_COPIED | 0x50000, 0, &d);
  CHECK (d.type == SC_NORMAL && d.host_offset == 0x50000, "normal cluster");
  cluster_decode (&g, QCOW_OFLAG_ZERO, 0, &d);
  CHECK (d.type == SC_ZERO && d.host_offset == 0, "zero, no host offset");
  cluster_decode (&g, QCOW_OFLAG_ZERO | 0x70000, 0, &d);
  CHECK (d.type == SC_ZERO && d.host_offset == 0x70000,
         "zero with preallocated host offset");
  cluster_decode (&g, 0x50200, 0, &d);
  CHECK (d.type == SC_INVALID, "unaligned host offset is invalid (%s)",
         d.invalid_reason);
  /* qemu ignores reserved bits (1-8, 56-61). */
  cluster_decode (&g, 0x50000 | (1ULL << 3), 0, &d);
  CHECK (d.type == SC_NORMAL && d.host_offset == 0x50000,
         "reserved bit 3 is ignored");
  cluster_decode (&g, 0x50000 | (1ULL << 60), 0, &d);
  CHECK (d.type == SC_NORMAL && d.host_offset == 0x50000,
         "reserved bit 60 is ignored");
  cluster_decode (&g, 1ULL << 1, 0, &d);
  CHECK (d.type == SC_UNALLOCATED, "reserved bit 1 alone: unallocated");

  g.external_data_file = true;
  cluster_decode (&g, QCOW_OFLAG_COPIED, 0, &d);
  CHECK (d.type == SC_NORMAL && d.host_offset == 0,
         "data file: offset 0 with COPIED is allocated");
  cluster_decode (&g, 0, 0, &d);
  CHECK (d.type == SC_UNALLOCATED, "data file: 0 without COPIED is not");
}

static void
test_compressed (void)
{
  struct cluster_geometry g = { .cluster_bits = 16 };
  struct cluster_desc d;
  /* 64k clusters: x = 62 - 8 = 54; 3 additional sectors, offset 0x12345. */
  uint64_t e = QCOW_OFLAG_COMPRESSED | (3ULL << 54) | 0x12345;

  cluster_decode (&g, e, 0, &d);
  CHECK (d.type == SC_COMPRESSED && d.host_offset == 0x12345 &&
         d.compressed_size == 4 * 512 - 0x145,
         "compressed 64k: offset %#" PRIx64 " size %" PRIu64,
         d.host_offset, d.compressed_size);

  g.cluster_bits = 9;            /* x = 62 - 1 = 61: one size bit */
  e = QCOW_OFLAG_COMPRESSED | (1ULL << 61) | 0x400;
  cluster_decode (&g, e, 0, &d);
  CHECK (d.type == SC_COMPRESSED && d.host_offset == 0x400 &&
         d.compressed_size == 1024, "compressed 512: size %" PRIu64,
         d.compressed_size);
}

static void
test_extended (void)
{
  struct cluster_geometry g = { .cluster_bits = 16, .extended_l2 = true };
  struct cluster_desc d;
  uint64_t bitmap = 0x0000000400000003ULL;  /* sc 0,1 alloc; sc 2 zero */

  cluster_decode (&g, 0x60000, bitmap, &d);
  CHECK (d.type == SC_NORMAL, "extended: allocated cluster");
  CHECK (cluster_subcluster_type (&g, &d, 0) == SC_NORMAL &&
         cluster_subcluster_type (&g, &d, 1) == SC_NORMAL &&
         cluster_subcluster_type (&g, &d, 2) == SC_ZERO &&
         cluster_subcluster_type (&g, &d, 3) == SC_UNALLOCATED_ALLOC,
         "extended: subcluster types");

  cluster_decode (&g, 0, 0x0000000800000000ULL, &d);
  CHECK (cluster_subcluster_type (&g, &d, 3) == SC_ZERO &&
         cluster_subcluster_type (&g, &d, 4) == SC_UNALLOCATED,
         "extended: zero subcluster without host cluster");

  cluster_decode (&g, 0, 1, &d);
  CHECK (d.type == SC_INVALID, "extended: allocated subcluster without "
         "host cluster is invalid");
  cluster_decode (&g, 0x60000, 0x0000000100000001ULL, &d);
  CHECK (d.type == SC_INVALID, "extended: allocated and zero is invalid");
  cluster_decode (&g, 0x60000 | QCOW_OFLAG_ZERO, 0x1, &d);
  CHECK (d.type == SC_NORMAL && d.host_offset == 0x60000 &&
         cluster_subcluster_type (&g, &d, 0) == SC_NORMAL,
         "extended: bit 0 (reserved) is ignored");
  cluster_decode (&g, QCOW_OFLAG_ZERO, 0, &d);
  CHECK (d.type == SC_UNALLOCATED &&
         cluster_subcluster_type (&g, &d, 0) == SC_UNALLOCATED,
         "extended: bit 0 alone is not a zero cluster");
}

static void
test_l1 (void)
{
  CHECK (l1_entry_l2_offset (QCOW_OFLAG_COPIED | 0x30000) == 0x30000,
         "L1 entry");
  CHECK (l1_entry_l2_offset (0x30000 | 1) == 0x30000,
         "L1 reserved bit 0 is ignored");
  CHECK (l1_entry_l2_offset (0x30000 | (1ULL << 58)) == 0x30000,
         "L1 reserved bit 58 is ignored");
}

static void
test_refcount_entries (void)
{
  uint8_t b[16] = { 0xb5, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde,
                    0xf0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07 };

  /* 0xb5 = 1011 0101: LSB first. */
  CHECK (refcount_block_entry (b, 0, 0) == 1 && refcount_block_entry (b, 0, 1) == 0 &&
         refcount_block_entry (b, 0, 7) == 1, "1-bit refcounts");
  CHECK (refcount_block_entry (b, 1, 0) == 1 && refcount_block_entry (b, 1, 1) == 1 &&
         refcount_block_entry (b, 1, 3) == 2, "2-bit refcounts");
  CHECK (refcount_block_entry (b, 2, 0) == 5 && refcount_block_entry (b, 2, 1) == 0xb,
         "4-bit refcounts");
  CHECK (refcount_block_entry (b, 3, 1) == 0x12, "8-bit refcounts");
  CHECK (refcount_block_entry (b, 4, 1) == 0x3456, "16-bit refcounts");
  CHECK (refcount_block_entry (b, 5, 1) == 0x789abcde, "32-bit refcounts");
  CHECK (refcount_block_entry (b, 6, 1) == 0xf001020304050607ULL,
         "64-bit refcounts");
}

int
main (void)
{
  test_standard ();
  test_compressed ();
  test_extended ();
  test_l1 ();
  test_refcount_entries ();
  printf ("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
