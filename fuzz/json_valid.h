/* SPDX-License-Identifier: BSD-3-Clause */
/* A strict JSON (RFC 8259) validator for the fuzz harness: the
 * documents qcow2map publishes (file/N.json, depth.json) must parse
 * in any client, whatever bytes the image holds.
 */
#ifndef Q2_FUZZ_JSON_VALID_H
#define Q2_FUZZ_JSON_VALID_H

#include <stdbool.h>
#include <stddef.h>

/* True if [S, S+LEN) is one JSON value (with optional surrounding
 * whitespace) in valid UTF-8.
 */
bool json_valid (const char *s, size_t len);

#endif
