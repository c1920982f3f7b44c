/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filename.h"
#include "q2_error.h"

char *
filename_resolve (const char *image_path, const char *name)
{
  const char *slash = strrchr (image_path, '/');
  char *r;
  int dirlen;

  if (name[0] == '/' || slash == NULL)
    r = strdup (name);
  else {
    dirlen = slash - image_path;
    if (asprintf (&r, "%.*s/%s", dirlen, image_path, name) == -1)
      r = NULL;
  }
  if (r == NULL)
    q2_error ("malloc: %m");
  return r;
}

bool
filename_has_protocol (const char *name)
{
  size_t n = strcspn (name, ":/");

  return name[n] == ':';
}
