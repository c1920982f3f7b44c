/* SPDX-License-Identifier: BSD-3-Clause */
/* qemu-img map --output=json, reproduced byte for byte as qemu 8.2 and
 * later write it (qemu-img.c img_map; qemu 10 is the reference): qemu
 * asks each layer in turn for block status until one answers DATA or
 * ZERO, counts the layers it went down as the depth, and merges
 * neighbouring entries that agree on everything and whose host offsets
 * are contiguous.  Because merging is maximal, the output does not
 * depend on how either side splits its queries.
 *
 * Since qemu 8.2 (commit 52b10c9c0c68, "qemu-img: map: report
 * compressed data blocks") every entry carries "compressed", after
 * "data", and entries that differ in it are not merged.  qemu 8.1 and
 * older print no such field, so they merge a compressed cluster with a
 * neighbour that has no host offset either (encrypted data): the only
 * difference; tests/functions.sh (map_json_for_qemu) undoes it.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "map_json.h"
#include "json_budget.h"
#include "q2_error.h"

struct map_entry {
  uint64_t start, length;
  size_t depth;
  bool present, zero, data, compressed, has_offset;
  uint64_t offset;
};

/* qemu reports no host offset for an encrypted image (its bytes there
 * are not the guest's): qcow2_co_block_status sets OFFSET_VALID only
 * without s->crypto.
 */
static void
hide_encrypted_offset (const struct layer *l, struct map_entry *e)
{
  if (l->format == LAYER_QCOW2 && l->header.crypt_method != QCOW2_CRYPT_NONE)
    e->has_offset = false;
}

/* Unallocated in the view, reported as zero by layer L (the last one,
 * or the one above a backing file that ends before): qemu still
 * reports the host offset when L has a host cluster there (unallocated
 * subclusters of an allocated cluster with extended L2).
 */
static int
answering_layer_host (struct layer *l, struct map_entry *e)
{
  struct run r;

  if (l->format != LAYER_QCOW2)
    return 0;
  if (layer_map (l, e->start, e->length, &r) == -1)
    return -1;
  e->length = r.length;
  e->has_offset = r.has_host;
  e->offset = r.host_offset;
  hide_encrypted_offset (l, e);
  return 0;
}

/* The entry qemu reports at OFFSET (at most COUNT bytes). */
static int
entry_at (struct chain *c, size_t first, size_t last, uint64_t offset,
          uint64_t count, struct map_entry *e)
{
  struct origin o;
  uint64_t length;
  struct allocation a;

  if (chain_origin (c, first, last, offset, count, &o) == -1 ||
      chain_run_allocation (c, &o, offset, true, &length, &a) == -1)
    return -1;
  *e = (struct map_entry) {
    .start = offset, .length = length,
    .zero = a.reads_zero, .data = a.allocated,
  };
  if (!o.found) {               /* the last layer answers "zero" */
    e->depth = last - first;
    return answering_layer_host (c->layers[last], e);
  }
  if (o.past_end) {             /* the layer above a short backing file */
    e->depth = o.layer - 1 - first;
    return answering_layer_host (c->layers[o.layer - 1], e);
  }
  else {
    const struct layer *l = c->layers[o.layer];
    e->depth = o.layer - first;
    e->present = true;
    switch (o.run.kind) {
    case RUN_DATA:              /* raw: the guest offset itself */
      e->has_offset = true;
      e->offset = l->format == LAYER_RAW ? offset : o.run.host_offset;
      break;
    case RUN_ZERO:              /* preallocated zero clusters only */
      e->has_offset = o.run.has_host;
      e->offset = o.run.host_offset;
      break;
    default:                    /* compressed: no single host offset */
      e->compressed = true;     /* BDRV_BLOCK_COMPRESSED, at any depth */
      break;
    }
    hide_encrypted_offset (l, e);
  }
  return 0;
}

static bool
mergeable (const struct map_entry *a, const struct map_entry *b)
{
  return a->length > 0 &&
    a->zero == b->zero && a->data == b->data &&
    a->compressed == b->compressed && a->depth == b->depth &&
    a->present == b->present && a->has_offset == b->has_offset &&
    (!a->has_offset || a->offset + a->length == b->offset);
}

static void
print_entry (FILE *fp, const struct map_entry *e, bool more)
{
  fprintf (fp, "{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", "
           "\"depth\": %zu, \"present\": %s, \"zero\": %s, \"data\": %s, "
           "\"compressed\": %s",
           e->start, e->length, e->depth, e->present ? "true" : "false",
           e->zero ? "true" : "false", e->data ? "true" : "false",
           e->compressed ? "true" : "false");
  if (e->has_offset)
    fprintf (fp, ", \"offset\": %" PRIu64, e->offset);
  fputs (more ? "},\n" : "}", fp);
}

int
map_json_build (struct chain *c, size_t first, size_t last,
                char **json, size_t *len)
{
  uint64_t size = c->layers[first]->size;
  const char *path = c->layers[first]->file.path;
  struct map_entry curr = { .length = 0 }, next;
  struct json_charge charge = { 0 };
  FILE *fp;
  int r = 0;

  *json = NULL;
  fp = open_memstream (json, len);
  if (fp == NULL)
    return q2_error ("open_memstream: %m");
  fputc ('[', fp);
  while (curr.start + curr.length < size) {
    uint64_t offset = curr.start + curr.length;

    r = entry_at (c, first, last, offset, size - offset, &next);
    if (r == -1)
      break;
    if (mergeable (&curr, &next)) {
      curr.length += next.length;
      continue;
    }
    if (curr.length > 0) {
      print_entry (fp, &curr, true);
      if ((r = json_budget_charge (&charge, fp, path)) == -1)
        break;
    }
    curr = next;
  }
  if (r == 0) {
    print_entry (fp, &curr, false);
    fputs ("]\n", fp);
  }
  return json_budget_close (&charge, fp, json, path, r);
}
