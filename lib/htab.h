/*
 * htab.h -- an open-addressing index for sets whose entries live in an
 * array owned by the caller (mq_seen's ring of hashes, the per-key
 * bucket set).  A slot is one 64-bit word: a 32-bit fingerprint of the
 * entry's hash and the entry's array index + 1, so 0 is an empty slot.
 *
 * Linear probing from home = (fingerprint x slots) / 2^32, which keeps
 * fingerprints in order and allows any number of slots; a table has
 * twice as many slots as entries (load <= 1/2), so a miss ends within a
 * couple of probes, usually in one cache line.  Deletion shifts later
 * entries of the run back instead of leaving tombstones, so a set that
 * evicts forever never degrades; the fingerprint in the slot gives each
 * entry's home without touching the caller's array.  A fingerprint match
 * is only a hint: the caller confirms against its full hash.
 *
 * Because homes keep the fingerprints' order in a table of any size,
 * moving every entry into a larger table in slot order (mq_htab_add)
 * writes the new table nearly in order too: growing streams through
 * memory instead of missing the cache once an entry.
 *
 * At most 2^31 entries (2^32 slots).
 */
#ifndef MQ_HTAB_H
#define MQ_HTAB_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MQ_HTAB_MAX_ENTRIES ((uint64_t)1 << 31)

typedef struct mq_htab {
	uint64_t *slot;
	uint64_t n; /* slots */
} mq_htab_t;

/* A table for up to `entries` entries: 0 or -MQ_ENOMEM / -MQ_EINVAL. */
int mq_htab_init(mq_htab_t *t, uint64_t entries, mq_err_t *err);
void mq_htab_free(mq_htab_t *t); /* zeroed or initialised; frees and zeroes */
/* Index of the slot holding entry idx with fingerprint fp (it must be there). */
size_t mq_htab_slot_of(const mq_htab_t *t, uint32_t fp, uint32_t idx);
/* Empty slot at pos, shifting back the rest of its run. */
void mq_htab_remove_at(mq_htab_t *t, size_t pos);

static inline uint32_t mq_htab_slot_idx(uint64_t s) { return (uint32_t)s - 1; }
static inline uint32_t mq_htab_slot_fp(uint64_t s) { return (uint32_t)(s >> 32); }

/* Walk the run of fp: *pos starts at the home slot; returns the entry
 * index of the next slot with fingerprint fp (advancing *pos past it),
 * or -1 at the empty slot that ends the run (*pos is then where an
 * insert goes).  Usage:
 *     size_t pos = mq_htab_home(t, fp); long i;
 *     while ((i = mq_htab_next(t, fp, &pos)) >= 0) if (same(i)) ...found */
static inline size_t mq_htab_home(const mq_htab_t *t, uint32_t fp)
{
	return (size_t)(((uint64_t)fp * t->n) >> 32);
}

static inline size_t mq_htab_succ(const mq_htab_t *t, size_t p)
{
	return p + 1 == t->n ? 0 : p + 1;
}

static inline long mq_htab_next(const mq_htab_t *t, uint32_t fp, size_t *pos)
{
	for (size_t p = *pos;; p = mq_htab_succ(t, p)) {
		uint64_t s = t->slot[p];
		if (!s) {
			*pos = p;
			return -1;
		}
		if (mq_htab_slot_fp(s) == fp) {
			*pos = mq_htab_succ(t, p);
			return (long)mq_htab_slot_idx(s);
		}
	}
}

/* Put entry idx into the empty slot pos found by mq_htab_next. */
static inline void mq_htab_put(mq_htab_t *t, size_t pos, uint32_t fp, uint32_t idx)
{
	t->slot[pos] = ((uint64_t)fp << 32) | ((uint64_t)idx + 1);
}

/* Put entry idx at the end of its run, for an entry known to be absent
 * (moving entries into a new table). */
static inline void mq_htab_add(mq_htab_t *t, uint32_t fp, uint32_t idx)
{
	size_t p = mq_htab_home(t, fp);
	while (t->slot[p])
		p = mq_htab_succ(t, p);
	mq_htab_put(t, p, fp, idx);
}

#endif
