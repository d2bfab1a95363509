/*
 * seen.h -- a bounded set of identities, for mq-dedup (and the broker's
 * dedup window): "was this identity seen among the last N, or within the
 * last D?", answered in O(1) with no allocation per identity.
 *
 * The set keeps a 128-bit keyed hash of each identity (hash.h), never the
 * identity itself: 40 to 56 bytes an identity whatever its length.  Two
 * different identities are taken for one only if their hashes collide,
 * which at 2^-128 a pair does not happen in practice.
 *
 * Forgetting is first in, first out: an identity is remembered from
 * the moment it was first added until max_count newer identities have
 * been added, or max_age_ms has passed (whichever comes first).  A
 * repeat does not refresh it: "within the window" means within the
 * window of its first occurrence, as for the broker's dedup window.
 *
 * With a state file, every added identity is also journalled; see
 * seen.c for the format and its crash rules.  The rule for callers that
 * pass records on: call mq_seen_sync before writing out anything that
 * was let through, so what left the process is known after a crash; and
 * with opts.confirm, call mq_seen_confirm right before each write, so
 * what never left is not (after a kill -9 in the same boot: the journal
 * takes back the additions no confirm covered).
 */
#ifndef MQ_SEEN_H
#define MQ_SEEN_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "util.h"

#define MQ_SEEN_DEFAULT_COUNT 1000000ull
#define MQ_SEEN_MAX_COUNT 1000000000ull

typedef struct mq_seen mq_seen_t;

typedef struct mq_seen_opts {
	uint64_t max_count; /* 1..MQ_SEEN_MAX_COUNT; 0 = MQ_SEEN_DEFAULT_COUNT */
	int64_t max_age_ms; /* > 0: also forget identities older than this; 0 = by count only */
	const char *state;  /* journal file, or NULL to keep nothing on disk */
	int reset;          /* replace an existing state file instead of loading it */
	/* Set: damage is not refused.  The blocks before it are kept, the
	 * file is cut there (a damaged header: the window starts empty), and
	 * report(report_ctx, line) says so once, as it does for a torn last
	 * block.  The broker's dedup window works this way: losing some ids
	 * beats refusing to start. */
	mq_report_fn report;
	void *report_ctx;
	/* Set: additions count as known after a crash only once confirmed
	 * (mq_seen_confirm), in the same boot; see seen.c.  Not for callers
	 * of mq_seen_unadd. */
	int confirm;
	const uint8_t *boot_id; /* 16 bytes: this boot's id (tests); NULL = the system's */
} mq_seen_opts_t;

/* Opens (loading the state file, if any; now_ms is the wall clock, for
 * age windows).  Errors: -MQ_ENOENT when the state file's directory does
 * not exist; -MQ_EBUSY when another process holds the state file;
 * -MQ_ECORRUPT when it fails its checks and o->report is NULL (message:
 * "state file 'F' is corrupt at byte N (why)"; a torn last block is not
 * corruption: it is cut off); -MQ_EIO / -MQ_ENOSPC / -MQ_ENOMEM. */
int mq_seen_open(const mq_seen_opts_t *o, int64_t now_ms, mq_seen_t **out, mq_err_t *err);
/* Frees; journal entries not yet synced are lost.  NULL ok. */
void mq_seen_close(mq_seen_t *s);

mq_hash128_t mq_seen_hash(const mq_seen_t *s, const void *id, size_t n);
/* A hint: h will be added soon, so start loading its part of the index
 * (callers that hash a few records ahead hide the cache misses). */
void mq_seen_prefetch(const mq_seen_t *s, mq_hash128_t h);
/* 1 if h is in the set (the set is unchanged), 0 if it was not (it is
 * now, and journalled), < 0 on error (out of memory, journal write). */
int mq_seen_add(mq_seen_t *s, mq_hash128_t h, int64_t now_ms, mq_err_t *err);
/* 1 if h is in the set, 0 if not; changes nothing but forgetting what
 * aged out (for callers that add only after an action succeeded). */
int mq_seen_contains(mq_seen_t *s, mq_hash128_t h, int64_t now_ms);
/* Take back the n most recent additions (those still in the set), from
 * the set and from what the journal has not written yet: the broker's
 * ids of batches that a failed sync cut off again, so that a retry is
 * stored instead of being answered as a duplicate.  Returns how many
 * were taken back; an addition already written to the journal (a turn
 * of more than 65536 ids) stays there and comes back after a restart. */
uint64_t mq_seen_unadd(mq_seen_t *s, uint64_t n);
/* Journal: write what was added since the last sync and fdatasync it;
 * rewrite the file when it holds more than twice what the set does.
 * A no-op without a state file. */
int mq_seen_sync(mq_seen_t *s, mq_err_t *err);

/* Additions since open: a caller notes it after each record it passes,
 * to confirm up to it once the record is about to leave. */
uint64_t mq_seen_added(const mq_seen_t *s);
/* With opts.confirm: the first upto additions since open may have left
 * the process, the others have not (a pwrite of the file's mark, no
 * sync; call it right before the write(2) that hands them on, and again
 * with less if that write fails).  Without a state file, or without
 * confirm: nothing to do. */
int mq_seen_confirm(mq_seen_t *s, uint64_t upto, mq_err_t *err);

uint64_t mq_seen_count(const mq_seen_t *s);   /* identities held now */
uint64_t mq_seen_forced(const mq_seen_t *s);  /* forgotten by count before their age ran out */

#endif
