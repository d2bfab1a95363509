/*
 * bucket.h -- token buckets: the arithmetic (exact, O(1), no clock of its
 * own: callers pass a monotonic time in ns, so tests can use a fake one
 * and the broker its loop's clock) and a bounded set of buckets by key.
 *
 * A bucket holds up to `burst` tokens and gains rate.tokens every
 * rate.per_ns nanoseconds, continuously: the fraction of a token earned
 * so far is kept exactly (integers, no floating point), so over any
 * stretch of time t the tokens handed out never exceed
 * burst + rate x t, and a caller that always waits mq_bucket_wait_ns
 * gets exactly that many.  A bucket starts full.
 *
 * A take larger than burst can never be covered; rather than refuse it
 * forever, such a take waits until the bucket is full and then leaves it
 * in debt (negative tokens), so the long-run rate still holds.
 */
#ifndef MQ_BUCKET_H
#define MQ_BUCKET_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* rate.tokens tokens per rate.per_ns ns, in lowest terms. */
typedef struct mq_rate {
	uint64_t tokens;
	uint64_t per_ns;
} mq_rate_t;

/* Largest burst accepted: keeps every product within 128 bits. */
#define MQ_BUCKET_MAX_BURST ((uint64_t)1 << 62)

/* "N/s", "N/m", "N/h", or a plain N (per second); N may have up to nine
 * decimals ("2.5/s").  0 or -MQ_EINVAL (zero, negative, junk) with err. */
int mq_rate_parse(const char *s, mq_rate_t *r, mq_err_t *err);
/* Tokens per second, rounded up (at least 1): the default burst. */
uint64_t mq_rate_per_second(const mq_rate_t *r);
/* A rate that did not come from mq_rate_parse (the wire, a file): 0 with
 * *r reduced to lowest terms, or -MQ_EINVAL when tokens or per_ns is 0. */
int mq_rate_check(mq_rate_t *r, mq_err_t *err);

typedef struct mq_bucket {
	mq_rate_t rate;
	uint64_t burst;
	int64_t tokens; /* whole tokens; < 0 after an oversize take */
	uint64_t frac;  /* plus frac / rate.per_ns of a token */
	uint64_t last;  /* ns of the last refill */
} mq_bucket_t;

/* A full bucket at time now.  rate must come from mq_rate_parse (or be
 * non-zero); burst 1..MQ_BUCKET_MAX_BURST. */
void mq_bucket_init(mq_bucket_t *b, const mq_rate_t *rate, uint64_t burst, uint64_t now);
/* Takes n tokens if they are there: 1, else 0 (and nothing taken). */
int mq_bucket_take(mq_bucket_t *b, uint64_t n, uint64_t now);
/* ns from now until a take of n would succeed (0: now). */
uint64_t mq_bucket_wait_ns(mq_bucket_t *b, uint64_t n, uint64_t now);
/* Takes as many tokens as are there up to want, when at least min are
 * (1 <= min <= want, min <= burst): the count taken, else 0 (and nothing
 * taken; mq_bucket_wait_ns(b, min, now) says until when). */
uint64_t mq_bucket_take_upto(mq_bucket_t *b, uint64_t want, uint64_t min, uint64_t now);
/* Gives b a new rate and burst at time now: what it earned at the old
 * rate until now is kept, the tokens are capped at the new burst, and
 * from now on it earns at the new rate.  Never adds tokens of its own. */
void mq_bucket_redefine(mq_bucket_t *b, const mq_rate_t *rate, uint64_t burst, uint64_t now);

/* ---- buckets by key ---- */

#define MQ_BUCKET_SET_DEFAULT_KEYS 100000u

typedef struct mq_bucket_set mq_bucket_set_t;

/* Up to max_keys buckets (1..2^31), each with rate and burst.  Keys are
 * held as 128-bit keyed hashes (hash.h), not as bytes. */
int mq_bucket_set_new(const mq_rate_t *rate, uint64_t burst, uint32_t max_keys, mq_bucket_set_t **out,
		      mq_err_t *err);
void mq_bucket_set_free(mq_bucket_set_t *s); /* NULL ok */
/* The bucket of key (a new, full one the first time), made the most
 * recently used.  When all max_keys are in use, the least recently used
 * key is forgotten to make room.  Never fails; the pointer is valid
 * until the next call. */
mq_bucket_t *mq_bucket_set_get(mq_bucket_set_t *s, const void *key, size_t n, uint64_t now);
uint32_t mq_bucket_set_count(const mq_bucket_set_t *s);
/* Keys forgotten while their bucket was not full (each could then
 * exceed the rate once by what it lacked). */
uint64_t mq_bucket_set_early(const mq_bucket_set_t *s);

#endif
