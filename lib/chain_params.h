/* SPDX-License-Identifier: BSD-3-Clause */
/* How to open a backing chain: the L2 cache bound, backing file
 * overrides (qemu's "backing" option of a json: filename), LUKS
 * passphrases, per layer, and qemu's image locks.  The plugin and the depth filter parse their
 * parameters into this one struct and hand it to chain_open, so both
 * open the same chain.
 *
 * Layers are numbered as users see them: layer 1 is the image given
 * with file=, layer 2 its backing file, and so on.
 */
#ifndef Q2_CHAIN_PARAMS_H
#define Q2_CHAIN_PARAMS_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#include "image_lock.h"

struct layer_params {
  bool backing_set;          /* backing[.N]= was given */
  char *backing;             /* its absolute path; NULL (with backing_set):
                                no backing file, qemu's "backing": null */
  char *backing_format;      /* "qcow2" or "raw"; NULL: recorded or probed */
  char *passphrase;          /* passphrase.N= */
};

struct chain_params {
  uint64_t l2_cache_bytes;
  struct image_lock_options locking;   /* qemu's image locks to take on
                                          every file (all zero: auto) */
  size_t n;                      /* entries in layers[] */
  struct layer_params *layers;   /* [0] is layer 1 */
  char *passphrase;              /* passphrase=: every encrypted layer
                                    without a passphrase.N= of its own */
  bool keys_optional;            /* open encrypted layers without a key,
                                    for mapping only (the depth filter) */
};

/* KEY is "backing", "backing.N", "backing-format" or "backing-format.N"
 * ("backing" means "backing.1"): record VALUE and return 1, or -1 with
 * q2_error set ("KEY=VALUE: cause").  Other keys: 0.  A relative PATH
 * is resolved against the current directory, as qemu does.
 */
int chain_params_set (struct chain_params *p, const char *key,
                      const char *value);

/* Is KEY "passphrase" (*LAYER = 0: the default) or "passphrase.N"
 * (*LAYER = N)?  Returns 1, 0 if KEY is another key, -1 (q2_error) if
 * N is not a layer number.
 */
int chain_params_passphrase_key (const char *key, size_t *layer);

/* Record SECRET (read by the caller, e.g. with nbdkit_read_password)
 * as the passphrase of LAYER (0: the default).  Returns 0 or -1.
 */
int chain_params_set_passphrase (struct chain_params *p, size_t layer,
                                 const char *secret);

/* The parameters of layer N (1-based), or NULL if none were given. */
const struct layer_params *chain_params_layer (const struct chain_params *p,
                                               size_t n);

void chain_params_free (struct chain_params *p);

#endif
