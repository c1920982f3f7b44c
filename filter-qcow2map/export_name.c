/* SPDX-License-Identifier: BSD-3-Clause */
#include <config.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_name.h"

/* "", "map.json", or a name in a view family: "layer", "file",
 * "snapshot", "snapshot-id", "bitmap", alone or followed by '/'.  (A
 * family name alone is no view: it is refused as the plugin refuses
 * it, not passed to the plugin below as an export name.)
 */
static bool
is_view_name (const char *s)
{
  static const char *const families[] = {
    "layer", "file", "snapshot", "snapshot-id", "bitmap",
  };
  size_t i, n;

  if (strcmp (s, "") == 0 || strcmp (s, "map.json") == 0)
    return true;
  for (i = 0; i < sizeof families / sizeof families[0]; i++) {
    n = strlen (families[i]);
    if (strncmp (s, families[i], n) == 0 && (s[n] == '/' || s[n] == '\0'))
      return true;
  }
  return false;
}

int
export_name_split (const char *name, char **source, char **view)
{
  const char *slash;

  *source = *view = NULL;
  if (is_view_name (name)) {
    *source = strdup ("");
    *view = strdup (name);
  }
  else {
    for (slash = strchr (name, '/'); slash; slash = strchr (slash + 1, '/'))
      if (is_view_name (slash + 1))
        break;
    if (slash) {
      *source = strndup (name, slash - name);
      *view = strdup (slash + 1);
    }
    else {
      *source = strdup (name);
      *view = strdup ("");
    }
  }
  if (*source == NULL || *view == NULL) {
    free (*source);
    free (*view);
    return -1;
  }
  return 0;
}

char *
export_name_join (const char *source, const char *view)
{
  char *s;

  if (source[0] == '\0')
    return strdup (view);
  if (view[0] == '\0')
    return strdup (source);
  if (asprintf (&s, "%s/%s", source, view) == -1)
    return NULL;
  return s;
}
