/* SPDX-License-Identifier: BSD-3-Clause */
/* Reading many possibly overlapping tables of 8-byte entries (the L1
 * tables of internal snapshots) in one pass over the file.
 *
 * Why: qemu-img check walks every snapshot's L1 table, so an image whose
 * thousands of snapshots share (or overlap) their L1 tables would cost
 * snapshots x entries.  Every entry is an 8-byte word of the file, and
 * what qemu-img check does with it depends only on its value and on how
 * many of the tables cover it.  So each covered word is read once and
 * reported with that number (its coverage): the work is bounded by the
 * file, the counts are the same.
 */
#ifndef Q2_L1_SWEEP_H
#define Q2_L1_SWEEP_H

#include <stdint.h>
#include <stddef.h>

#include "hostfile.h"

/* A table: bytes [START, END) of the file (END - START a multiple of 8),
 * belonging to SNAPSHOT.
 */
struct l1_span {
  uint64_t start, end;
  int snapshot;
};

/* Called for every non-zero word: at POSITION, VALUE (host endian),
 * covered by COVERAGE tables, the lowest SNAPSHOT among them.  Return -1
 * to stop.
 */
typedef int (*l1_word_fn) (void *opaque, uint64_t position, uint64_t value,
                           uint64_t coverage, int snapshot);

/* Read the N tables SPANS (reordered) of file F, calling FN for each
 * non-zero word, in increasing position within each alignment (position
 * modulo 8).  Returns 0, or -1 with q2_error set (or FN's -1).
 */
int l1_sweep (const struct hostfile *f, struct l1_span *spans, size_t n,
              l1_word_fn fn, void *opaque);

#endif
