/* SPDX-License-Identifier: BSD-3-Clause */
/* Parsing of the parameters that change how a chain is opened (see
 * chain_params.h).
 */
#include <config.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "chain_params.h"
#include "backing_chain.h"
#include "q2_error.h"
#include "q2_parse.h"

/* Is KEY NAME (layer 1, or 0 when DEFAULT_IS_ZERO) or NAME.N with
 * 1 <= N <= CHAIN_MAX_LAYERS?  Returns 1, 0, or -1 for a bad N.
 */
static int
match_key (const char *key, const char *name, bool default_is_zero,
           size_t *layer)
{
  size_t len = strlen (name);
  const char *end;
  unsigned n;

  if (strncmp (key, name, len) != 0)
    return 0;
  if (key[len] == '\0') {
    *layer = default_is_zero ? 0 : 1;
    return 1;
  }
  if (key[len] != '.')
    return 0;
  if (q2_parse_uint (key + len + 1, &end, CHAIN_MAX_LAYERS, &n) == -1 ||
      *end != '\0' || n == 0)
    return q2_error ("%s: expected %s.N with N a layer number "
                     "(1 = the top image, 1..%d)", key, name,
                     CHAIN_MAX_LAYERS);
  *layer = n;
  return 1;
}

/* The parameters of layer N, grown on demand. */
static struct layer_params *
layer_slot (struct chain_params *p, size_t n)
{
  if (n > p->n) {
    struct layer_params *l = realloc (p->layers, n * sizeof *l);
    if (l == NULL) {
      q2_error ("realloc: %m");
      return NULL;
    }
    memset (l + p->n, 0, (n - p->n) * sizeof *l);
    p->layers = l;
    p->n = n;
  }
  return &p->layers[n - 1];
}

static int
set_backing (struct layer_params *l, const char *key, const char *value)
{
  char *path = NULL;

  if (value[0] != '\0' && (path = realpath (value, NULL)) == NULL)
    return q2_error ("%s=%s: %m", key, value);
  free (l->backing);
  l->backing = path;
  l->backing_set = true;
  return 1;
}

static int
set_backing_format (struct layer_params *l, const char *key,
                    const char *value)
{
  enum layer_format format;

  if (layer_format_by_name (value, &format) == -1)
    return q2_error ("%s=%s: the format must be qcow2, raw or file",
                     key, value);
  free (l->backing_format);
  l->backing_format = strdup (value);
  if (l->backing_format == NULL)
    return q2_error ("strdup: %m");
  return 1;
}

int
chain_params_set (struct chain_params *p, const char *key, const char *value)
{
  struct layer_params *l;
  size_t n;
  int r;

  if ((r = match_key (key, "backing", false, &n)) == 1) {
    if ((l = layer_slot (p, n)) == NULL)
      return -1;
    return set_backing (l, key, value);
  }
  if (r == -1)
    return -1;
  if ((r = match_key (key, "backing-format", false, &n)) == 1) {
    if ((l = layer_slot (p, n)) == NULL)
      return -1;
    return set_backing_format (l, key, value);
  }
  return r;
}

int
chain_params_passphrase_key (const char *key, size_t *layer)
{
  return match_key (key, "passphrase", true, layer);
}

int
chain_params_set_passphrase (struct chain_params *p, size_t layer,
                             const char *secret)
{
  char **slot = &p->passphrase;
  char *copy = strdup (secret);

  if (copy == NULL)
    return q2_error ("strdup: %m");
  if (layer > 0) {
    struct layer_params *l = layer_slot (p, layer);
    if (l == NULL) {
      free (copy);
      return -1;
    }
    slot = &l->passphrase;
  }
  if (*slot) {
    explicit_bzero (*slot, strlen (*slot));
    free (*slot);
  }
  *slot = copy;
  return 0;
}

const struct layer_params *
chain_params_layer (const struct chain_params *p, size_t n)
{
  return n >= 1 && n <= p->n ? &p->layers[n - 1] : NULL;
}

static void
free_secret (char *s)
{
  if (s) {
    explicit_bzero (s, strlen (s));
    free (s);
  }
}

void
chain_params_free (struct chain_params *p)
{
  size_t i;

  for (i = 0; i < p->n; i++) {
    free (p->layers[i].backing);
    free (p->layers[i].backing_format);
    free_secret (p->layers[i].passphrase);
  }
  free (p->layers);
  free_secret (p->passphrase);
  p->layers = NULL;
  p->passphrase = NULL;
  p->n = 0;
}
