/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "serve_params.h"
#include "image_lock.h"
#include "json_budget.h"
#include "q2_error.h"
#include "thread_model.h"

/* l2-cache-size: at least 1M; at most 64G, which holds the L2 tables
 * of any practical chain (64 TiB of guest disk even with 512-byte
 * clusters) and keeps the cache's own bookkeeping small.
 */
#define MIN_L2_CACHE_SIZE (UINT64_C (1) << 20)
#define MAX_L2_CACHE_SIZE (UINT64_C (64) << 30)

static int
parse_l2_cache_size (struct chain_params *params, const char *value)
{
  int64_t r = nbdkit_parse_size (value);

  /* nbdkit_parse_size has said why; say which parameter it was. */
  if (r == -1) {
    nbdkit_error ("l2-cache-size: could not parse size string (%s)", value);
    return -1;
  }
  if ((uint64_t) r < MIN_L2_CACHE_SIZE || (uint64_t) r > MAX_L2_CACHE_SIZE) {
    nbdkit_error ("l2-cache-size: %s is outside the allowed range 1M..64G",
                  value);
    return -1;
  }
  params->l2_cache_bytes = r;
  return 0;
}

/* passphrase=SECRET|+FILE|-|-FD (nbdkit's conventions for secrets) and
 * passphrase.N= for layer N.
 */
static int
config_passphrase (struct chain_params *params, size_t layer,
                   const char *value)
{
  char *secret;
  int r;

  if (nbdkit_read_password (value, &secret) == -1)
    return -1;
  r = chain_params_set_passphrase (params, layer, secret);
  explicit_bzero (secret, strlen (secret));
  free (secret);
  if (r == -1)
    nbdkit_error ("%s", q2_last_error ());
  return r;
}

static int
parse_compressed_cache_size (struct serve_params *p, const char *value)
{
  int64_t size = nbdkit_parse_size (value);

  if (size == -1) {
    nbdkit_error ("compressed-cache-size: could not parse size string "
                  "(%s)", value);
    return -1;
  }
  p->compressed_cache_size = size;     /* 0: no cache */
  return 0;
}

static int
parse_json_max_size (const char *value)
{
  int64_t size = nbdkit_parse_size (value);

  if (size == -1)
    return -1;
  json_budget_set (size);
  return 0;
}

int
serve_params_config (struct serve_params *p, const char *key,
                     const char *value)
{
  size_t layer;
  int r;

  /* locking=, force-share=; backing[.N]=, backing-format[.N]= */
  if ((r = image_lock_config (&p->chain.locking, key, value)) == 0)
    r = chain_params_set (&p->chain, key, value);
  if (r != 0) {
    if (r == -1)
      nbdkit_error ("%s", q2_last_error ());
    return r;
  }
  switch (chain_params_passphrase_key (key, &layer)) {
  case 1:
    r = config_passphrase (&p->chain, layer, value);
    break;
  case -1:
    nbdkit_error ("%s", q2_last_error ());
    return -1;
  default:
    if (strcmp (key, "l2-cache-size") == 0)
      r = parse_l2_cache_size (&p->chain, value);
    else if (strcmp (key, "thread-model") == 0)
      r = thread_model_config (value);
    else if (strcmp (key, "json-max-size") == 0)
      r = parse_json_max_size (value);
    else if (strcmp (key, "compressed-cache-size") == 0)
      r = parse_compressed_cache_size (p, value);
    else
      return 0;
  }
  return r == -1 ? -1 : 1;
}

void
serve_params_free (struct serve_params *p)
{
  chain_params_free (&p->chain);
}
