/* A bounded cache of L2 tables, shared by every layer of a chain.
 *
 * Set-associative: a table's key (owner, L2 offset) picks one set, and
 * each set has its own mutex, so parallel requests touching different
 * tables never wait for each other and there is no global lock.  The
 * lock is held only to look up or insert and to copy the entries the
 * caller needs — never across I/O.
 */
#ifndef Q2_L2_CACHE_H
#define Q2_L2_CACHE_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

struct l2_cache;

/* A cache holding at most about MAX_BYTES of tables whose size is at
 * most MAX_TABLE_BYTES (the chain's largest cluster).  Returns NULL
 * with q2_error set on failure.
 */
struct l2_cache *l2_cache_new (uint64_t max_bytes, size_t max_table_bytes);
void l2_cache_free (struct l2_cache *c);

/* Copy N bytes from offset START of the cached table (OWNER, L2_OFFSET)
 * into OUT.  Returns true on a hit.
 */
bool l2_cache_get (struct l2_cache *c, const void *owner, uint64_t l2_offset,
                   size_t start, size_t n, void *out);

/* Insert a table just read (TABLE_BYTES long; copied).  Evicts the
 * least recently used table of the set.
 */
void l2_cache_put (struct l2_cache *c, const void *owner, uint64_t l2_offset,
                   const void *table, size_t table_bytes);

/* Statistics, for debug messages. */
void l2_cache_stats (struct l2_cache *c, uint64_t *hits, uint64_t *misses,
                     size_t *slots);

#endif
