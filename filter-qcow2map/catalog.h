/* SPDX-License-Identifier: BSD-3-Clause */
/* The views of each plugin export that a connection has decoded, for
 * .list_exports.  nbdkit (1.32 to 1.42 at least) lets a filter open no
 * context into the plugin while it lists exports (the file plugin's
 * dir= mode then crashes the server), so the filter cannot decode an
 * image to list its views then: it lists what earlier connections found,
 * and the plugin's export alone for an image no client has opened yet.
 */
#ifndef QCOW2MAP_CATALOG_H
#define QCOW2MAP_CATALOG_H

#include "served_image.h"

/* Record (or replace) the views of IMG, the plugin's export SOURCE. */
void catalog_record (const char *source, const struct served_image *img);

/* Call F for each recorded view of SOURCE (export name as the filter
 * names it, description).  Returns the number of views (0: none
 * recorded), or -1 if F failed.
 */
int catalog_for_each (const char *source,
                      int (*f) (void *opaque, const char *name,
                                const char *description),
                      void *opaque);

void catalog_free (void);

#endif
