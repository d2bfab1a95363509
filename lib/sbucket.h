/*
 * sbucket.h -- the broker's registry of shared token buckets: named
 * buckets (mq-bucket --shared NAME, --take NAME) that several processes,
 * on several machines, draw from, so that together they keep one rate.
 * The arithmetic is bucket.h's; this adds names, the lookup and the
 * definitions file.
 *
 * Cost: a take is O(1): a hash-table lookup of the name (SipHash under a
 * random key, so names chosen to collide cannot make it slow) and the
 * bucket arithmetic; nothing is written for a take.  A define that
 * changes something rewrites the whole file, which is fine for
 * definitions, which change rarely (at most MQ_SBUCKETS_MAX buckets).
 *
 * The file, STATE_DIR/buckets, holds definitions only, as text:
 *
 *     mq-buckets 2
 *     bucket NAME TOKENS PER_NS BURST CRC  one line a bucket, in creation order
 *     end COUNT CRC
 *
 * where the rate is TOKENS tokens every PER_NS nanoseconds (in lowest
 * terms, both more than 0), BURST is 1..MQ_BUCKET_MAX_BURST, COUNT is
 * the number of bucket lines (a file cut short is caught), and CRC is
 * the CRC-32C of the line before the blank that precedes it, in 8
 * lowercase hex digits (a changed byte is caught).  Format 1, written
 * by older versions, is the same without the CRCs; it is still read.  It is
 * only ever replaced whole: written to STATE_DIR/buckets.tmp, fsynced,
 * renamed over, and the directory fsynced, so a crash leaves the old
 * definitions or the new ones.  Tokens are not kept: after a broker
 * restart every bucket starts full, so across a restart the processes
 * sharing it may get up to one extra burst.
 *
 * Not thread-safe: the broker calls it from its loop.  Times are the
 * caller's monotonic clock in ns (a fake one in tests).
 */
#ifndef MQ_SBUCKET_H
#define MQ_SBUCKET_H

#include <stdint.h>

#include "bucket.h"
#include "util.h"

/* Most buckets a registry holds (a define of one more is refused). */
#define MQ_SBUCKETS_MAX 100000u

typedef struct mq_sbuckets mq_sbuckets_t;

/* Open the registry kept in state_dir/buckets (definitions: name, rate,
 * burst), loading it if present; nothing is written until a define
 * changes something (which creates state_dir if missing).  A damaged
 * file, without report: -MQ_ECORRUPT with a message naming the file and
 * byte and what to do.  With report, the broker's way: the definitions
 * before the damage are kept, the file is rewritten with them, and
 * report(ctx, line) says what was lost.  A file of a newer format is
 * refused either way (-MQ_ECORRUPT): rewriting it would lose what a
 * newer mq-serve wrote. */
int mq_sbuckets_open(const char *state_dir, mq_report_fn report, void *ctx, mq_sbuckets_t **out, mq_err_t *err);
void mq_sbuckets_close(mq_sbuckets_t *s); /* NULL ok */

/* Create bucket NAME (names as topic names: mq_name_check in store.h)
 * or change its rate/burst (burst 0: one second's worth of rate, as
 * mq_rate_per_second).  Persisted (write temp file, fsync, rename, fsync
 * dir) before returning when anything changed; an unchanged definition
 * writes nothing.  A new bucket starts full; a changed one keeps its
 * tokens (capped at the new burst).  On failure nothing changed, in
 * memory or on disk. */
int mq_sbuckets_define(mq_sbuckets_t *s, const char *name, const mq_rate_t *rate, uint64_t burst, uint64_t now_ns,
		       mq_err_t *err);

/* Take between min and want tokens (1 <= min <= want): grants as many as
 * are there up to want when at least min are, else grants 0 and sets
 * *wait_ns to the time until min would be there (0 when granted).  O(1)
 * (hash table lookup + bucket arithmetic).  -MQ_ENOENT with
 * "no shared bucket 'NAME' (create it with -r RATE)" when it does not
 * exist.  A min above the burst is granted, min exactly, once the
 * bucket is full, which leaves it in debt (as a local bucket does with
 * a record larger than its burst), so the long-run rate still holds.
 * min and want out of order: -MQ_EINVAL with a message saying so. */
/* Whether name is defined already, with this rate and burst (as
 * mq_sbuckets_define would leave it): a define that would change
 * nothing. */
int mq_sbuckets_defined_as(mq_sbuckets_t *s, const char *name, const mq_rate_t *rate, uint64_t burst);

int mq_sbuckets_take(mq_sbuckets_t *s, const char *name, uint64_t want, uint64_t min, uint64_t now_ns,
		     uint64_t *granted, uint64_t *wait_ns, mq_err_t *err);

/* For statistics: the number of buckets, and each bucket in creation
 * order with its tokens as of its last take or define. */
uint32_t mq_sbuckets_count(const mq_sbuckets_t *s);
void mq_sbuckets_each(const mq_sbuckets_t *s,
		      void (*fn)(void *ctx, const char *name, const mq_rate_t *rate, uint64_t burst, int64_t tokens),
		      void *ctx);

#endif
