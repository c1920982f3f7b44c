/* SPDX-License-Identifier: BSD-3-Clause */
/* The memory budget of the JSON exports (map.json, layer/N.map.json,
 * bitmap/NAME.json, file/N.json, depth.json).  Each is built in memory
 * when a client first opens it and kept for the life of the server;
 * its size follows the fragmentation of the image (about 100 bytes per
 * extent), which an untrusted image chooses.  So all the documents of
 * one process (one copy of this library: the plugin's, or the depth
 * filter's) share one budget, json-max-size: a document that would take
 * the total past it is abandoned with an error, and the export fails to
 * open; the others keep serving.
 *
 * Accounting: a document being written to an open_memstream charges
 * its size as it grows (json_budget_charge after each piece) and at the
 * end (json_budget_close), and gives the charge back if it is abandoned
 * (json_budget_close does on failure).  A finished document keeps its
 * charge until it is freed (json_budget_uncharge).  Padding (json_pad.h, under 4 KiB per
 * document) is not charged.
 */
#ifndef Q2_JSON_BUDGET_H
#define Q2_JSON_BUDGET_H

#include <stdint.h>
#include <stdio.h>

#define JSON_BUDGET_DEFAULT (UINT64_C (64) << 20)

/* Set the budget (call before serving). */
void json_budget_set (uint64_t bytes);

/* What one document has charged so far. */
struct json_charge {
  uint64_t bytes;
};

/* Charge what FP (an open_memstream) holds now against the budget.
 * Returns 0, or -1 with q2_error set ("PATH: ... json-max-size ...")
 * when the documents together would be larger than the budget (the
 * charge is kept: call json_budget_release when abandoning).
 */
int json_budget_charge (struct json_charge *ch, FILE *fp, const char *path);

/* Give back everything CH has charged (a document abandoned). */
void json_budget_release (struct json_charge *ch);

/* End a document written to FP, an open_memstream over *TEXT: charge
 * its final size (unless R is -1: writing it failed already) and close
 * FP.  If anything failed, the charge is given back and *TEXT freed
 * (set to NULL).  Returns 0, or -1 with q2_error set.
 */
int json_budget_close (struct json_charge *ch, FILE *fp, char **text,
                       const char *path, int r);

/* Give back BYTES: a finished document is being freed, which was BYTES
 * long when it was built (before json_pad).
 */
void json_budget_uncharge (uint64_t bytes);

#endif
