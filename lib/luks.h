/* SPDX-License-Identifier: BSD-3-Clause */
/* LUKS (version 1) encryption of qcow2 data clusters (qcow2 spec,
 * "Full disk encryption header pointer"; crypt_method 2).
 *
 * The LUKS header lives inside the qcow2 file at the offset the
 * encryption header extension gives; its key material offsets count
 * from there.  Its payload offset means nothing in qcow2: each data
 * cluster is encrypted in place, in 512-byte sectors whose IV number
 * is the sector's HOST offset / 512 (qemu's crypt_physical_offset).
 * Metadata (tables, refcounts) is not encrypted.
 *
 * The ciphers, hashes and PBKDF2 come from nettle.
 */
#ifndef Q2_LUKS_H
#define Q2_LUKS_H

#include <stdint.h>
#include <stddef.h>

#include "hostfile.h"

#define LUKS_SECTOR_SIZE 512

struct luks;

/* Read the LUKS header stored in [OFFSET, OFFSET+LENGTH) of FILE,
 * check it, and unlock the master key with PASSPHRASE.  Returns NULL
 * with q2_error set ("FILE: cause"): unsupported cipher, damaged
 * header, wrong passphrase.
 */
struct luks *luks_open (const struct hostfile *file, uint64_t offset,
                        uint64_t length, const char *passphrase);
void luks_close (struct luks *k);

/* "aes-256-xts-plain64" and so on, for messages and debug. */
const char *luks_describe (const struct luks *k);

/* Read COUNT bytes at host OFFSET of FILE (any alignment) and decrypt
 * them: the enclosing 512-byte sectors are read and decrypted.  Safe
 * to call from many threads.  Returns 0 or -1 with q2_error set.
 */
int luks_pread (const struct luks *k, const struct hostfile *file,
                void *buf, size_t count, uint64_t offset);

#endif
