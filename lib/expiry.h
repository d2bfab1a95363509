/*
 * expiry.h -- time to live (mq-pub --ttl): a batch whose expire_at has
 * passed is never delivered.  The broker skips it when it serves a
 * fetch, so no consumer (plain output, --exec, any group) ever gets it,
 * and it counts the skipped records once per topic, whoever fetched them
 * and however often.
 *
 * A fetch reply stays a run of whole stored batches that follow each
 * other: mq_expiry_cut keeps the batches before the first expired one,
 * and reports the run of expired batches after them (its records and
 * where it ends), which the reply then names as skipped (wire.h, FETCH
 * `expired`) by pointing `next` past it.  Batches after that run wait
 * for the next fetch.
 */
#ifndef MQ_EXPIRY_H
#define MQ_EXPIRY_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* 1 if a batch with this expire_at (0: never) is expired at now_ms. */
static inline int mq_expired(int64_t expire_at, int64_t now_ms)
{
	return expire_at > 0 && expire_at <= now_ms;
}

typedef struct mq_expiry_cut {
	size_t keep;      /* leading bytes to send: whole batches, none expired */
	uint64_t from;    /* first offset of the expired run (if expired > 0) */
	uint64_t next;    /* offset after the expired run (if expired > 0) */
	uint64_t expired; /* records in the expired run; 0: none follows keep */
} mq_expiry_cut_t;

/* Cut the batches p[0..len) (as read from a log, already checked) at the
 * first expired one.  A cut-off last batch ends the walk (as it ends a
 * reply).  Never fails. */
void mq_expiry_cut(const uint8_t *p, size_t len, int64_t now_ms, mq_expiry_cut_t *c);

/* The broker's counts of expired records, per topic, each record once:
 * per partition, the offset up to which skips were counted. */
typedef struct mq_expiry mq_expiry_t;

int mq_expiry_new(mq_expiry_t **out, mq_err_t *err);
void mq_expiry_free(mq_expiry_t *x); /* NULL ok */
/* Records [from, next) of topic/partition were skipped as expired.
 * Counts those not counted before; log_end is the partition's end now
 * (a mark beyond it belongs to a topic deleted and made again, and is
 * dropped).  Returns how many were new, or -MQ_ENOMEM. */
long long mq_expiry_note(mq_expiry_t *x, const char *topic, uint32_t partition, uint64_t from, uint64_t next,
			 uint64_t log_end);
/* Topics with a count, in the order first counted: i < mq_expiry_topics;
 * the name (owned here) and the total in *count. */
uint32_t mq_expiry_topics(const mq_expiry_t *x);
const char *mq_expiry_topic(const mq_expiry_t *x, uint32_t i, uint64_t *count);
uint64_t mq_expiry_total(const mq_expiry_t *x);

#endif
