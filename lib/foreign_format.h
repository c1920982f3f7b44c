/* SPDX-License-Identifier: BSD-3-Clause */
/* Other disk image formats, recognised by their magic so that a file
 * that is not qcow2 is named for what it is ("a VMDK image") instead of
 * "not qcow2" -- and so that a backing file with no recorded format
 * that qemu would probe as, say, VMDK is not read as raw.
 */
#ifndef Q2_FOREIGN_FORMAT_H
#define Q2_FOREIGN_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* Bytes from the start of a file that foreign_format_probe looks at. */
#define FOREIGN_FORMAT_PROBE_BYTES 512

/* The name of the format of the file whose first LEN bytes are BUF
 * ("VMDK", "VDI", ...), or NULL if it is none of the formats known.
 */
const char *foreign_format_probe (const uint8_t *buf, size_t len);

#endif
