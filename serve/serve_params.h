/* SPDX-License-Identifier: BSD-3-Clause */
/* The parameters the plugin and the qcow2map filter share (how to open
 * and serve a chain): l2-cache-size=, compressed-cache-size=,
 * json-max-size=, thread-model=, backing[.N]=, backing-format[.N]=,
 * passphrase[.N]=, and (meaningful for local files only) locking= and
 * force-share=.
 */
#ifndef QCOW2MAP_SERVE_PARAMS_H
#define QCOW2MAP_SERVE_PARAMS_H

#include <stdint.h>

#include "chain_params.h"
#include "l2_cache.h"

#define DEFAULT_COMPRESSED_CACHE_SIZE (16 * 1024 * 1024)

struct serve_params {
  struct chain_params chain;
  uint64_t compressed_cache_size;     /* 0: no cache */
};

#define SERVE_PARAMS_INIT {                                     \
    .chain = { .l2_cache_bytes = L2_CACHE_DEFAULT_BYTES },      \
    .compressed_cache_size = DEFAULT_COMPRESSED_CACHE_SIZE,     \
  }

/* KEY=VALUE: 1 if it is one of the shared parameters (recorded), 0 if
 * not, -1 after nbdkit_error.
 */
int serve_params_config (struct serve_params *p, const char *key,
                         const char *value);
void serve_params_free (struct serve_params *p);

/* config_help lines of the shared parameters. */
#define SERVE_PARAMS_HELP \
  "l2-cache-size=SIZE  Bound on cached L2 tables (default 32M, 1M..64G).\n" \
  "backing[.N]=PATH    Use PATH as the backing file of layer N (default\n" \
  "                    1, the top image); empty: no backing file.\n" \
  "backing-format[.N]=qcow2|raw  Format of that backing file (default:\n" \
  "                    probed for backing=, else as the image records).\n" \
  "passphrase[.N]=SECRET|+FILE|-|-FD  Passphrase of the LUKS-encrypted\n" \
  "                    layers (of layer N only, with .N).\n" \
  "thread-model=auto|parallel|serialize_requests\n" \
  "                    Requests in flight per connection (default auto:\n" \
  "                    parallel unless nbdkit < 1.33.10, see the man page).\n" \
  "compressed-cache-size=SIZE\n" \
  "                    Bound on cached decompressed clusters (default 16M;\n" \
  "                    0 disables the cache).\n" \
  "json-max-size=SIZE  Bound on the memory of the JSON exports together\n" \
  "                    (default 64M)."

#endif
