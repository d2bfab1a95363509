/*
 * bucket.c -- token-bucket arithmetic and the keyed bucket set; see
 * bucket.h.
 *
 * Exactness: tokens earn rate.tokens / rate.per_ns per ns.  A bucket
 * keeps whole tokens plus frac, the fraction in units of 1/per_ns, so a
 * refill adds elapsed * rate.tokens units: a 128-bit product, since
 * elapsed and rate.tokens are both 64-bit.  Nothing is rounded, and a
 * full bucket drops its fraction (the cap is the cap).
 *
 * The set: entries in one array (allocated once, touched only as keys
 * arrive), an htab.h index by hash, and an LRU list threaded through
 * the entries by index.  A lookup is O(1); when the array is full the
 * list's tail is reused for the new key.
 */
#include "bucket.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hash.h"
#include "htab.h"

typedef unsigned __int128 u128;

/* ---- rates ---- */

static uint64_t gcd64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

#define RATE_HINT "use e.g. 100/s, 30/m, 1000/h, 500/d, 2.5 (per second) or with --bytes 1MiB/s"

int mq_rate_parse(const char *s, mq_rate_t *r, mq_err_t *err)
{
	const char *p = s;
	uint64_t n = 0, scale = 1;
	int digits = 0, decimals = -1;
	if (*p == '-')
		return mq_err_set(err, MQ_EINVAL, "rate '%.100s': must be more than 0 (" RATE_HINT ")", s);
	for (; (*p >= '0' && *p <= '9') || (*p == '.' && decimals < 0); p++) {
		if (*p == '.') {
			decimals = 0;
			continue;
		}
		if (n > (UINT64_MAX - 9) / 10 || decimals >= 9)
			return mq_err_set(err, MQ_EINVAL, "rate '%.100s': too large or too precise (" RATE_HINT ")",
					  s);
		n = n * 10 + (uint64_t)(*p - '0');
		digits++;
		if (decimals >= 0) {
			decimals++;
			scale *= 10;
		}
	}
	/* A size unit (with --bytes: 1KiB/s), then the period. */
	static const struct { const char *unit; uint64_t mult; } sizes[] = {
		{"k", 1ull << 10}, {"kib", 1ull << 10}, {"kb", 1000ull}, {"m", 1ull << 20}, {"mib", 1ull << 20},
		{"mb", 1000000ull}, {"g", 1ull << 30}, {"gib", 1ull << 30}, {"gb", 1000000000ull},
	};
	size_t ul = strcspn(p, "/");
	if (ul > 0 && ul <= 3) {
		uint64_t mult = 0;
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
			if (strlen(sizes[i].unit) == ul && !strncasecmp(p, sizes[i].unit, ul))
				mult = sizes[i].mult;
		if (mult && digits) {
			if (n > UINT64_MAX / mult)
				return mq_err_set(err, MQ_EINVAL, "rate '%.100s': too large (" RATE_HINT ")", s);
			n *= mult;
			p += ul;
		}
	}
	static const struct { const char *unit; uint64_t ns; } units[] = {
		{"", 1000000000ull}, {"/s", 1000000000ull}, {"/m", 60000000000ull}, {"/h", 3600000000000ull},
		{"/d", 86400000000000ull},
	};
	uint64_t period = 0;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (!strcmp(p, units[i].unit))
			period = units[i].ns;
	if (!digits || !period)
		return mq_err_set(err, MQ_EINVAL, "rate '%.100s': not understood (" RATE_HINT ")", s);
	if (n == 0)
		return mq_err_set(err, MQ_EINVAL, "rate '%.100s': must be more than 0 (" RATE_HINT ")", s);
	/* n / scale tokens per period ns; scale <= 1e9 and period <= 3.6e12
	 * keep the product within 64 bits after reducing by common factors. */
	uint64_t g = gcd64(n, scale);
	n /= g;
	scale /= g;
	g = gcd64(n, period);
	n /= g;
	period /= g;
	if (scale > UINT64_MAX / period)
		return mq_err_set(err, MQ_EINVAL, "rate '%.100s': too precise (" RATE_HINT ")", s);
	r->tokens = n;
	r->per_ns = period * scale;
	return 0;
}

int mq_rate_check(mq_rate_t *r, mq_err_t *err)
{
	if (!r->tokens || !r->per_ns)
		return mq_err_set(err, MQ_EINVAL, "rate of %" PRIu64 " tokens per %" PRIu64 " ns: both must be more than 0",
				  r->tokens, r->per_ns);
	uint64_t g = gcd64(r->tokens, r->per_ns);
	r->tokens /= g;
	r->per_ns /= g;
	return 0;
}

uint64_t mq_rate_per_second(const mq_rate_t *r)
{
	u128 t = ((u128)r->tokens * 1000000000u + r->per_ns - 1) / r->per_ns;
	if (t > MQ_BUCKET_MAX_BURST)
		return MQ_BUCKET_MAX_BURST;
	return t ? (uint64_t)t : 1;
}

/* ---- one bucket ---- */

void mq_bucket_init(mq_bucket_t *b, const mq_rate_t *rate, uint64_t burst, uint64_t now)
{
	b->rate = *rate;
	b->burst = burst;
	b->tokens = (int64_t)burst;
	b->frac = 0;
	b->last = now;
}

static void refill(mq_bucket_t *b, uint64_t now)
{
	if (now <= b->last)
		return; /* a clock that stood still or a caller's older reading */
	uint64_t dt = now - b->last;
	b->last = now;
	if (b->tokens >= (int64_t)b->burst)
		return;
	u128 units = (u128)dt * b->rate.tokens + b->frac;
	u128 whole = units / b->rate.per_ns;
	u128 room = (u128)((int64_t)b->burst - b->tokens);
	if (whole >= room) {
		b->tokens = (int64_t)b->burst;
		b->frac = 0;
		return;
	}
	b->tokens += (int64_t)whole;
	b->frac = (uint64_t)(units % b->rate.per_ns);
}

/* What a take of n must find: n, or a full bucket for an oversize n. */
static int64_t needed(const mq_bucket_t *b, uint64_t n)
{
	return n > b->burst ? (int64_t)b->burst : (int64_t)n;
}

int mq_bucket_take(mq_bucket_t *b, uint64_t n, uint64_t now)
{
	refill(b, now);
	if (b->tokens < needed(b, n))
		return 0;
	if (n > MQ_BUCKET_MAX_BURST)
		n = MQ_BUCKET_MAX_BURST;
	b->tokens -= (int64_t)n;
	return 1;
}

uint64_t mq_bucket_wait_ns(mq_bucket_t *b, uint64_t n, uint64_t now)
{
	refill(b, now);
	int64_t need = needed(b, n);
	if (b->tokens >= need)
		return 0;
	/* Units still missing, over units earned per ns, rounded up. */
	u128 missing = (u128)(uint64_t)(need - b->tokens) * b->rate.per_ns - b->frac;
	u128 ns = (missing + b->rate.tokens - 1) / b->rate.tokens;
	return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

uint64_t mq_bucket_take_upto(mq_bucket_t *b, uint64_t want, uint64_t min, uint64_t now)
{
	refill(b, now);
	if (b->tokens < (int64_t)min)
		return 0;
	uint64_t got = (uint64_t)b->tokens < want ? (uint64_t)b->tokens : want;
	b->tokens -= (int64_t)got;
	return got;
}

void mq_bucket_redefine(mq_bucket_t *b, const mq_rate_t *rate, uint64_t burst, uint64_t now)
{
	refill(b, now);
	/* The fraction of a token earned so far, in the new rate's units
	 * (rounded down: a change never adds). */
	b->frac = (uint64_t)((u128)b->frac * rate->per_ns / b->rate.per_ns);
	b->rate = *rate;
	b->burst = burst;
	if (b->tokens >= (int64_t)burst) {
		b->tokens = (int64_t)burst;
		b->frac = 0;
	}
}

/* ---- buckets by key ---- */

typedef struct kb {
	uint64_t lo, hi;     /* hash of the key */
	uint32_t prev, next; /* LRU list; NIL ends it */
	mq_bucket_t b;
} kb_t;

#define NIL UINT32_MAX

struct mq_bucket_set {
	mq_rate_t rate;
	uint64_t burst;
	mq_hashkey_t key;
	kb_t *e;
	uint32_t max, count;
	uint32_t mru, lru;
	mq_htab_t tab;
	uint64_t early;
};

int mq_bucket_set_new(const mq_rate_t *rate, uint64_t burst, uint32_t max_keys, mq_bucket_set_t **out,
		      mq_err_t *err)
{
	mq_bucket_set_t *s;
	int rc;
	*out = NULL;
	if (max_keys < 1 || max_keys > MQ_HTAB_MAX_ENTRIES)
		return mq_err_set(err, MQ_EINVAL, "bucket set: %" PRIu32 " keys is out of range", max_keys);
	if (!(s = calloc(1, sizeof *s)))
		return mq_err_set(err, MQ_ENOMEM, "bucket set: out of memory");
	s->rate = *rate;
	s->burst = burst;
	s->max = max_keys;
	s->mru = s->lru = NIL;
	if ((rc = mq_hashkey_random(&s->key, err)) < 0 || (rc = mq_htab_init(&s->tab, max_keys, err)) < 0)
		goto fail;
	if (!(s->e = mq_big_alloc((size_t)max_keys * sizeof *s->e))) {
		rc = mq_err_set(err, MQ_ENOMEM, "bucket set: out of memory for %" PRIu32 " keys", max_keys);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	mq_bucket_set_free(s);
	return rc;
}

void mq_bucket_set_free(mq_bucket_set_t *s)
{
	if (!s)
		return;
	mq_big_free(s->e, (size_t)s->max * sizeof *s->e);
	mq_htab_free(&s->tab);
	free(s);
}

static void unlink_kb(mq_bucket_set_t *s, uint32_t i)
{
	kb_t *k = &s->e[i];
	if (k->prev != NIL)
		s->e[k->prev].next = k->next;
	else
		s->mru = k->next;
	if (k->next != NIL)
		s->e[k->next].prev = k->prev;
	else
		s->lru = k->prev;
}

static void push_front(mq_bucket_set_t *s, uint32_t i)
{
	kb_t *k = &s->e[i];
	k->prev = NIL;
	k->next = s->mru;
	if (s->mru != NIL)
		s->e[s->mru].prev = i;
	s->mru = i;
	if (s->lru == NIL)
		s->lru = i;
}

mq_bucket_t *mq_bucket_set_get(mq_bucket_set_t *s, const void *key, size_t n, uint64_t now)
{
	mq_hash128_t h = mq_hash128(&s->key, key, n);
	uint32_t fp = (uint32_t)h.lo;
	size_t pos = mq_htab_home(&s->tab, fp);
	long i;
	while ((i = mq_htab_next(&s->tab, fp, &pos)) >= 0) {
		if (s->e[i].lo == h.lo && s->e[i].hi == h.hi) {
			if (s->mru != (uint32_t)i) {
				unlink_kb(s, (uint32_t)i);
				push_front(s, (uint32_t)i);
			}
			return &s->e[i].b;
		}
	}
	uint32_t slot;
	if (s->count < s->max) {
		slot = s->count++;
	} else {
		slot = s->lru;
		kb_t *old = &s->e[slot];
		if (mq_bucket_wait_ns(&old->b, old->b.burst, now) > 0)
			s->early++;
		unlink_kb(s, slot);
		mq_htab_remove_at(&s->tab, mq_htab_slot_of(&s->tab, (uint32_t)old->lo, slot));
		pos = mq_htab_home(&s->tab, fp); /* the removal may have moved the run */
		while (mq_htab_next(&s->tab, fp, &pos) >= 0)
			;
	}
	kb_t *k = &s->e[slot];
	k->lo = h.lo;
	k->hi = h.hi;
	mq_bucket_init(&k->b, &s->rate, s->burst, now);
	mq_htab_put(&s->tab, pos, fp, slot);
	push_front(s, slot);
	return &k->b;
}

uint32_t mq_bucket_set_count(const mq_bucket_set_t *s)
{
	return s->count;
}

uint64_t mq_bucket_set_early(const mq_bucket_set_t *s)
{
	return s->early;
}
