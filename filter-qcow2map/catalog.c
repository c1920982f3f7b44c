/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "export_name.h"

struct entry {
  char *name, *description;
};

struct image_entry {
  char *source;
  struct entry *views;
  size_t n;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct image_entry *images;
static size_t n_images;

/* Bound on the images remembered (a directory of many images is listed
 * with the views of the first this many opened, the others alone).
 */
#define MAX_IMAGES 4096

static void
free_views (struct image_entry *ie)
{
  size_t i;

  for (i = 0; i < ie->n; i++) {
    free (ie->views[i].name);
    free (ie->views[i].description);
  }
  free (ie->views);
  ie->views = NULL;
  ie->n = 0;
}

struct collect {
  const char *source;
  struct entry *views;
  size_t n;
  bool failed;
};

static int
collect_one (void *opaque, const char *name, const char *description)
{
  struct collect *c = opaque;
  struct entry *v = realloc (c->views, (c->n + 1) * sizeof *v);

  if (v == NULL) {
    c->failed = true;
    return -1;
  }
  c->views = v;
  v[c->n].name = export_name_join (c->source, name);
  v[c->n].description = strdup (description);
  c->n++;
  if (v[c->n - 1].name == NULL || v[c->n - 1].description == NULL) {
    c->failed = true;
    return -1;
  }
  return 0;
}

void
catalog_record (const char *source, const struct served_image *img)
{
  struct collect c = { .source = source };
  struct image_entry *ie = NULL, *p;
  size_t i;

  /* Build the list outside the lock (it walks the snapshot table). */
  served_image_for_each_export (img, collect_one, &c);
  pthread_mutex_lock (&lock);
  for (i = 0; i < n_images; i++)
    if (strcmp (images[i].source, source) == 0)
      ie = &images[i];
  if (ie == NULL && !c.failed && n_images < MAX_IMAGES &&
      (p = realloc (images, (n_images + 1) * sizeof *p)) != NULL) {
    images = p;
    ie = &images[n_images];
    *ie = (struct image_entry) { .source = strdup (source) };
    if (ie->source)
      n_images++;
    else
      ie = NULL;
  }
  if (ie && !c.failed) {
    free_views (ie);
    ie->views = c.views;
    ie->n = c.n;
    c.views = NULL;
    c.n = 0;
  }
  pthread_mutex_unlock (&lock);
  for (i = 0; i < c.n; i++) {
    free (c.views[i].name);
    free (c.views[i].description);
  }
  free (c.views);
}

int
catalog_for_each (const char *source,
                  int (*f) (void *opaque, const char *name,
                            const char *description),
                  void *opaque)
{
  int r = 0;
  size_t i, j;

  pthread_mutex_lock (&lock);
  for (i = 0; i < n_images && r == 0; i++) {
    if (strcmp (images[i].source, source) != 0)
      continue;
    for (j = 0; j < images[i].n; j++)
      if (f (opaque, images[i].views[j].name,
             images[i].views[j].description) == -1) {
        r = -1;
        break;
      }
    if (r == 0)
      r = images[i].n;
    break;
  }
  pthread_mutex_unlock (&lock);
  return r;
}

void
catalog_free (void)
{
  size_t i;

  for (i = 0; i < n_images; i++) {
    free_views (&images[i]);
    free (images[i].source);
  }
  free (images);
  images = NULL;
  n_images = 0;
}
