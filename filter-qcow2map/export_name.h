/* SPDX-License-Identifier: BSD-3-Clause */
/* How the filter's export names map to the plugin's exports and the
 * views of each (views.h):
 *
 *   VIEW             view VIEW of the plugin's default export ""
 *                    (VIEW is "", "map.json", or "layer", "file",
 *                    "snapshot", "snapshot-id", "bitmap" alone or
 *                    followed by '/'; what views.h does not know is
 *                    refused)
 *   NAME             the guest disk of the plugin's export NAME
 *   NAME/VIEW        view VIEW of the plugin's export NAME: the name is
 *                    split at the first '/' followed by a view name, so
 *                    NAME may hold '/' itself; "NAME/" is NAME's guest
 *                    disk too (for a NAME that looks like a view)
 */
#ifndef QCOW2MAP_EXPORT_NAME_H
#define QCOW2MAP_EXPORT_NAME_H

/* Split export name NAME into the plugin's export *SOURCE and the
 * view *VIEW (both malloc'd).  Returns 0 or -1 (ENOMEM).
 */
int export_name_split (const char *name, char **source, char **view);

/* The export name of view VIEW of the plugin's export SOURCE
 * (malloc'd), or NULL (ENOMEM).
 */
char *export_name_join (const char *source, const char *view);

#endif
