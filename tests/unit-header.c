/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for lib/qcow2_header.c: a synthetic header is built in
 * memory, then each test breaks one field and checks the message.
 */
#include <config.h>

#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qcow2_header.h"
#include "q2_error.h"

static uint8_t buf[65536];
static int failures;

static void put32 (size_t off, uint32_t v) { v = htobe32 (v); memcpy (buf + off, &v, 4); }
static void put64 (size_t off, uint64_t v) { v = htobe64 (v); memcpy (buf + off, &v, 8); }

#define FILE_SIZE (1024 * 1024)

/* Parse the first LEN bytes of BUF as an image file of FILE_SIZE bytes
 * (LEN < sizeof buf: a file of LEN bytes).
 */
static int
parse (struct qcow2_header *h, size_t len)
{
  char path[] = "/tmp/unit-header-XXXXXX";
  struct hostfile f;
  int fd = mkstemp (path), r;

  if (fd == -1 || write (fd, buf, len) != (ssize_t) len ||
      ftruncate (fd, len < sizeof buf ? len : FILE_SIZE) == -1) {
    perror ("unit-header: temporary file");
    exit (99);
  }
  close (fd);
  if (hostfile_open (&f, path) == -1) {
    printf ("%s\n", q2_last_error ());
    exit (99);
  }
  r = qcow2_header_read (h, &f);
  hostfile_close (&f);
  unlink (path);
  return r;
}

/* A valid v3 image: 64k clusters, 1 GiB, L1 at 3 clusters, reftable at
 * 1 cluster, a backing format extension, backing name at 512.
 */
static void
make_header (void)
{
  memset (buf, 0, sizeof buf);
  put32 (0, QCOW2_MAGIC);
  put32 (4, 3);
  put32 (20, 16);                 /* cluster_bits */
  put64 (24, 1ULL << 30);         /* size */
  put32 (36, 2);                  /* l1_size: 2 * 512 MiB */
  put64 (40, 3 * 65536);
  put64 (48, 65536);
  put32 (56, 1);
  put32 (96, 4);                  /* refcount_order */
  put32 (100, 112);               /* header_length */
  put32 (112, QCOW2_EXT_BACKING_FORMAT);
  put32 (116, 5);
  memcpy (buf + 120, "qcow2", 5);
  put32 (128, QCOW2_EXT_END);
  put64 (8, 512);                 /* backing_file_offset */
  put32 (16, 9);
  memcpy (buf + 512, "base.img", 9 - 1);
  buf[520] = 'x';
}

static void
expect_ok (const char *what)
{
  struct qcow2_header h;

  if (parse (&h, sizeof buf) != 0) {
    printf ("FAIL %s: unexpected error: %s\n", what, q2_last_error ());
    failures++;
    return;
  }
  qcow2_header_free (&h);
  printf ("ok   %s\n", what);
}

static void
expect_error (const char *what, const char *needle)
{
  struct qcow2_header h;

  if (parse (&h, sizeof buf) == 0) {
    printf ("FAIL %s: accepted\n", what);
    qcow2_header_free (&h);
    failures++;
  }
  else if (strstr (q2_last_error (), needle) == NULL ||
           strstr (q2_last_error (), "/tmp/unit-header-") == NULL) {
    printf ("FAIL %s: message '%s' lacks '%s' or the file name\n",
            what, q2_last_error (), needle);
    failures++;
  }
  else
    printf ("ok   %s: %s\n", what, q2_last_error ());
}

static void
test_valid (void)
{
  struct qcow2_header h;

  make_header ();
  if (parse (&h, sizeof buf) != 0) {
    printf ("FAIL valid: %s\n", q2_last_error ());
    failures++;
    return;
  }
  if (h.cluster_size != 65536 || h.l2_bits != 13 || h.l2_entry_size != 8 ||
      strcmp (h.backing_file, "base.imgx") != 0 ||
      strcmp (h.backing_format, "qcow2") != 0 || h.compression_type != 0) {
    printf ("FAIL valid: fields decoded wrongly\n");
    failures++;
  }
  else
    printf ("ok   valid header decoded\n");
  qcow2_header_free (&h);
}

int
main (void)
{
  test_valid ();

  make_header (); put32 (0, 0x12345678);
  expect_error ("bad magic", "magic");
  make_header (); put32 (4, 1);
  expect_error ("version 1", "version");
  make_header (); put32 (4, 4);
  expect_error ("version 4", "version");
  make_header (); put32 (20, 8);
  expect_error ("cluster_bits 8", "cluster_bits");
  make_header (); put32 (20, 22);
  expect_error ("cluster_bits 22", "cluster_bits");
  make_header (); put32 (32, 1);
  expect_error ("AES encryption", "encrypted");
  make_header (); put32 (32, 2);
  expect_error ("LUKS encryption", "LUKS");
  make_header (); put64 (72, 1ULL << 10);
  expect_error ("unknown incompatible bit", "incompatible");
  make_header (); put64 (72, QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT);
  expect_ok ("dirty and corrupt bits are accepted");
  make_header (); put32 (36, 1);
  expect_error ("L1 too small for the size", "l1_size");
  make_header (); put32 (36, 0x1000000);
  expect_error ("L1 too large", "l1_size");
  make_header (); put64 (40, 3 * 65536 + 512);
  expect_error ("L1 unaligned", "l1_table_offset");
  make_header (); put64 (40, 1ULL << 40);
  expect_ok ("L1 past EOF (reads as zeros, as in qemu)");
  make_header (); put64 (40, 1ULL << 63);
  expect_error ("L1 offset past 2^63", "l1_table_offset");
  make_header (); put64 (48, 100 * 65536);
  expect_ok ("reftable past EOF (reads as zeros, as in qemu)");
  make_header (); put32 (56, 0);
  expect_error ("no refcount table", "refcount_table_clusters");
  make_header (); put64 (64, 4100);
  expect_error ("snapshot table unaligned, no snapshots", "snapshots_offset");
  make_header (); put32 (56, 1000);
  expect_error ("reftable too large", "refcount_table_clusters");
  make_header (); put32 (96, 7);
  expect_error ("refcount_order 7", "refcount_order");
  make_header (); put32 (100, 100);
  expect_error ("header_length too small", "header_length");
  make_header (); put32 (16, 2000);
  expect_error ("backing name too long", "backing_file_size");
  make_header (); put32 (116, 60000);
  expect_error ("extension overflowing", "extension");
  make_header (); put32 (116, 400);
  expect_error ("extension running into the backing name", "extension");
  make_header (); put32 (100, 108);
  expect_error ("header_length 108: the end mark's length is the next "
                "extension's type", "extension");
  make_header (); put32 (116, 20);
  expect_error ("backing format too long", "backing format");
  make_header (); put64 (72, QCOW2_INCOMPAT_EXTL2); put32 (20, 12);
  put32 (36, 2048);
  expect_error ("extended L2 with 4k clusters", "extended L2");
  make_header (); put64 (72, QCOW2_INCOMPAT_DATA_FILE);
  expect_error ("data file bit without a name", "data file");
  make_header (); put32 (100, 112); buf[104] = 1;
  expect_error ("zstd without the feature bit", "compression");
  make_header (); buf[104] = 2; put64 (72, QCOW2_INCOMPAT_COMPRESSION);
  expect_error ("unknown compression type", "compression");
  make_header (); put64 (72, QCOW2_INCOMPAT_COMPRESSION);
  expect_error ("feature bit with zlib", "compression");
  make_header (); buf[104] = 1; put64 (72, QCOW2_INCOMPAT_COMPRESSION);
  expect_ok ("zstd with the feature bit");
  make_header (); put32 (60, 70000);
  expect_error ("too many snapshots", "nb_snapshots");
  make_header (); put64 (24, 1ULL << 62);
  expect_error ("huge virtual size", "size");

  {
    struct qcow2_header h;
    make_header ();
    /* 100 bytes of a v3 header: header_length reads as 0 */
    if (parse (&h, 100) == 0 ||
        strstr (q2_last_error (), "header_length") == NULL) {
      printf ("FAIL truncated file\n");
      failures++;
    }
    else
      printf ("ok   truncated file: %s\n", q2_last_error ());
  }

  printf ("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
