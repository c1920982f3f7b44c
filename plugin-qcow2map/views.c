#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "views.h"
#include "q2_parse.h"

/* Strict decimal layer number 1..n (no sign, no leading zero). */
static int
parse_layer_number (const struct chain *c, const char *s, const char **end,
                    size_t *layer)
{
  unsigned n;

  if (*s == '0' || q2_parse_uint (s, end, c->n, &n) == -1)
    return -1;
  *layer = n - 1;
  return 0;
}

int
view_parse (const struct chain *c, const char *name, struct view *v)
{
  const char *rest;

  *v = (struct view) { .kind = VIEW_GUEST, .layer = 0 };
  if (name[0] == '\0')
    return 0;
  if (strcmp (name, "map.json") == 0) {
    v->kind = VIEW_MAP_JSON;
    return 0;
  }
  if (strncmp (name, "layer/", 6) == 0) {
    if (parse_layer_number (c, name + 6, &rest, &v->layer) == -1)
      return -1;
    if (strcmp (rest, "") == 0)
      v->kind = VIEW_LAYER;
    else if (strcmp (rest, ".map.json") == 0)
      v->kind = VIEW_LAYER_MAP_JSON;
    else
      return -1;
    return 0;
  }
  if (strncmp (name, "file/", 5) == 0) {
    if (parse_layer_number (c, name + 5, &rest, &v->layer) == -1)
      return -1;
    if (strcmp (rest, "") == 0)
      v->kind = VIEW_FILE;
    else if (strcmp (rest, ".json") == 0)
      v->kind = VIEW_FILE_JSON;
    else
      return -1;
    return c->layers[v->layer]->format == LAYER_QCOW2 ? 0 : -1;
  }
  return -1;
}

void
view_name (const struct view *v, char name[64])
{
  switch (v->kind) {
  case VIEW_GUEST:     name[0] = '\0'; break;
  case VIEW_LAYER:     snprintf (name, 64, "layer/%zu", v->layer + 1); break;
  case VIEW_FILE:      snprintf (name, 64, "file/%zu", v->layer + 1); break;
  case VIEW_FILE_JSON: snprintf (name, 64, "file/%zu.json", v->layer + 1);
                       break;
  case VIEW_MAP_JSON:  snprintf (name, 64, "map.json"); break;
  case VIEW_LAYER_MAP_JSON:
    snprintf (name, 64, "layer/%zu.map.json", v->layer + 1);
    break;
  }
}

static const char *
format_name (const struct layer *l)
{
  return l->format == LAYER_RAW ? "raw" : "qcow2";
}

char *
view_describe (const struct chain *c, const struct view *v)
{
  const struct layer *l = c->layers[v->layer];
  char *s = NULL;
  size_t len, i;
  FILE *fp = open_memstream (&s, &len);

  if (fp == NULL)
    return NULL;
  switch (v->kind) {
  case VIEW_GUEST:
    fprintf (fp, "guest disk: %s", l->file.path);
    for (i = 1; i < c->n; i++)
      fprintf (fp, "%s%s (%s)", i == 1 ? ", backing chain: " : " <- ",
               c->layers[i]->file.path, format_name (c->layers[i]));
    break;
  case VIEW_LAYER:
    fprintf (fp, "layer %zu alone: %s (%s)", v->layer + 1, l->file.path,
             format_name (l));
    break;
  case VIEW_FILE:
    fprintf (fp, "qcow2 file of layer %zu, unused clusters as holes: %s",
             v->layer + 1, l->file.path);
    break;
  case VIEW_FILE_JSON:
    fprintf (fp, "allocation statistics and metadata map (JSON) of %s",
             l->file.path);
    break;
  case VIEW_MAP_JSON:
    fprintf (fp, "guest map of the whole chain as qemu-img map "
             "--output=json prints it: %s", l->file.path);
    break;
  case VIEW_LAYER_MAP_JSON:
    fprintf (fp, "map of layer %zu alone as qemu-img map --output=json "
             "prints it with \"backing\": null: %s", v->layer + 1,
             l->file.path);
    break;
  }
  if (fclose (fp) == EOF) {
    free (s);
    return NULL;
  }
  return s;
}

int
view_for_each (const struct chain *c,
               int (*f) (void *opaque, const struct view *v), void *opaque)
{
  struct view v = { VIEW_GUEST, 0 };
  size_t i;

  if (f (opaque, &v) == -1)
    return -1;
  v.kind = VIEW_MAP_JSON;
  if (f (opaque, &v) == -1)
    return -1;
  for (i = 0; i < c->n; i++) {
    v = (struct view) { VIEW_LAYER, i };
    if (f (opaque, &v) == -1)
      return -1;
    v.kind = VIEW_LAYER_MAP_JSON;
    if (f (opaque, &v) == -1)
      return -1;
  }
  for (i = 0; i < c->n; i++) {
    if (c->layers[i]->format != LAYER_QCOW2)
      continue;
    v = (struct view) { VIEW_FILE, i };
    if (f (opaque, &v) == -1)
      return -1;
    v.kind = VIEW_FILE_JSON;
    if (f (opaque, &v) == -1)
      return -1;
  }
  return 0;
}
