/* SPDX-License-Identifier: BSD-3-Clause */
/* JSON strings as qemu writes them (qemu-img info --output=json), so
 * that any byte string from an image (file names, bitmap and snapshot
 * names) gives valid JSON, and the same JSON as qemu's.
 */
#ifndef Q2_JSON_H
#define Q2_JSON_H

#include <stdbool.h>
#include <stdio.h>

/* Write S as a quoted JSON string, or null if S is NULL.  ASCII
 * printable characters are written as they are ('"' and '\\' escaped,
 * '/' not), \b \f \n \r \t by their short escapes, every other
 * character as \uXXXX (upper-case hex; a surrogate pair above U+FFFF).
 * Bytes that are not a valid UTF-8 sequence become U+FFFD, one per
 * invalid sequence, exactly as qemu decodes them: its "modified UTF-8"
 * also accepts \xC0\x80 as U+0000 and refuses noncharacters.
 */
void json_string (FILE *fp, const char *s);

/* Whether S is valid UTF-8 by the same decoder (and holds no encoded
 * NUL): NBD export names must be UTF-8.
 */
bool json_utf8_valid (const char *s);

#endif
