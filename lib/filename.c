/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Where the process started: loaded with the plugin or filter, before
 * nbdkit changes directory.  NULL if getcwd failed (then a relative
 * name is left relative, to the current directory).
 */
static char *start_dir;

static void __attribute__ ((constructor))
remember_start_dir (void)
{
  start_dir = getcwd (NULL, 0);
}

static void __attribute__ ((destructor))
forget_start_dir (void)
{
  free (start_dir);
}

char *
filename_file_protocol (const char *name, bool *not_file)
{
  const char *path;
  char *r;

  *not_file = strncmp (name, "file:", 5) != 0;
  if (*not_file)
    return NULL;
  path = name + 5;
  if (path[0] == '/' || start_dir == NULL)
    r = strdup (path);
  else if (asprintf (&r, "%s/%s", start_dir, path) == -1)
    r = NULL;
  if (r == NULL)
    q2_error ("malloc: %m");
  return r;
}
