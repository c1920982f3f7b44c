/* SPDX-License-Identifier: BSD-3-Clause */
/* What the connections reading the same plugin export share, so that
 * they do not fetch the same bytes twice: which blocks some connection
 * has already fetched (readahead stops there), and the connections'
 * source caches (a block one holds is copied by the others).
 *
 * Why: nbdkit lets a filter open one plugin context per connection, so
 * each connection decodes with its own source cache.  nbdcopy gives each
 * of its connections 128 MiB of the guest in turn; the compressed
 * clusters of one piece lie in the host file just before those of the
 * next, which another connection has already fetched.  A connection's
 * readahead (up to SOURCE_MAX_READAHEAD blocks) running past the end of
 * its piece would fetch them again: 5-7% more bytes than the file in a
 * whole copy (issue 14).  The history lets the source cache stop its
 * readahead where the bytes some connection fetched begin, and a
 * connection starting a piece that another's readahead ran into copies
 * those blocks from it.
 *
 * It is advice, never correctness: a block in the history may be gone
 * from every cache, and is then fetched again when it is needed.  The
 * history is a bounded list of ranges of blocks (merged when they touch;
 * the least recently extended forgotten when full): memory does not grow
 * with the image.
 */
#ifndef QCOW2MAP_FETCH_HISTORY_H
#define QCOW2MAP_FETCH_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

/* Ranges remembered per export: a whole copy makes about one range per
 * piece of the guest a connection copies in turn, merged as the pieces
 * meet.
 */
#define FETCH_HISTORY_RANGES 64

struct fetch_history;

/* The history of the plugin export SOURCE of SIZE bytes, shared with
 * every other holder of the same name and size (a file replaced by one
 * of another size is another source); a new one if there is none.  NULL
 * on ENOMEM.  Release with fetch_history_put.
 */
struct fetch_history *fetch_history_get (const char *source, uint64_t size);
void fetch_history_put (struct fetch_history *h);

/* Blocks [FIRST, FIRST + N) were fetched. */
void fetch_history_add (struct fetch_history *h, uint64_t first,
                        uint64_t n);

/* How many of the N blocks from FIRST to fetch in one request: up to
 * the first block after FIRST that was fetched before (at least 1).
 * *SEEN: whether FIRST itself was fetched before; then N is returned
 * (the caller decides how far to re-read).
 */
uint64_t fetch_history_limit (struct fetch_history *h, uint64_t first,
                              uint64_t n, bool *seen);

/* The export's source caches, so that a connection that needs a block
 * another connection holds copies it instead of fetching it again (a
 * piece of a copy that starts where another connection's readahead went).
 * MEMBER: any pointer, registered while its owner lives.
 */
int fetch_history_join (struct fetch_history *h, void *member);
void fetch_history_leave (struct fetch_history *h, void *member);

/* Call ASK (member, ARG) for each member but SELF, with no lock of the
 * caller held, until it returns true; returns whether one did.
 */
bool fetch_history_ask_peers (struct fetch_history *h, void *self,
                              bool (*ask) (void *member, void *arg),
                              void *arg);

#endif
