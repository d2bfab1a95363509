/*
 * seqcheck.c -- see seqcheck.h.
 *
 * Streams live in an array indexed by an mq_htab on the SipHash of
 * (topic, partition, source, producer) under a random key, so producer
 * names chosen to collide cannot merge two streams.  A reader sees long
 * runs of one stream (a batch is one producer's), so the last stream
 * found is tried first, by its key's bytes, before any hashing.
 */
#include "seqcheck.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "htab.h"

#define DEFAULT_MAX_STREAMS (1u << 20)
#define LAST_KEY_MAX 64

typedef struct stream {
	mq_hash128_t h;
	uint64_t next; /* the sequence expected */
	uint64_t tick; /* when last seen */
} stream_t;

struct mq_seqcheck {
	mq_hashkey_t key;
	mq_htab_t tab;
	stream_t *s;
	uint32_t n, cap, max;
	uint64_t tick, forgotten;
	/* The stream of the last record, by its key's bytes. */
	long last;
	uint8_t last_key[12 + LAST_KEY_MAX];
	size_t last_len;
};

int mq_seqcheck_new(uint32_t max_streams, mq_seqcheck_t **out, mq_err_t *err)
{
	*out = NULL;
	mq_seqcheck_t *s = calloc(1, sizeof *s);
	if (!s)
		return mq_err_set(err, MQ_ENOMEM, "sequence check: out of memory");
	s->max = max_streams ? max_streams : DEFAULT_MAX_STREAMS;
	if (s->max < 2)
		s->max = 2;
	s->last = -1;
	int rc = mq_hashkey_random(&s->key, err);
	if (rc == 0)
		rc = mq_htab_init(&s->tab, 16, err);
	if (rc) {
		mq_seqcheck_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void mq_seqcheck_free(mq_seqcheck_t *s)
{
	if (!s)
		return;
	mq_htab_free(&s->tab);
	free(s->s);
	free(s);
}

uint64_t mq_seqcheck_streams(const mq_seqcheck_t *s) { return s->n; }
uint64_t mq_seqcheck_forgotten(const mq_seqcheck_t *s) { return s->forgotten; }

/* A table for the entries there are now, with room for `room`. */
static int rebuild(mq_seqcheck_t *s, uint32_t room, mq_err_t *err)
{
	mq_htab_t t;
	int rc = mq_htab_init(&t, room, err);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < s->n; i++)
		mq_htab_add(&t, (uint32_t)s->s[i].h.lo, i);
	mq_htab_free(&s->tab);
	s->tab = t;
	return 0;
}

static int by_tick(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Full: forget the half seen least recently.  Ticks are distinct, so the
 * median splits them exactly. */
static int forget_half(mq_seqcheck_t *s, mq_err_t *err)
{
	uint64_t *t = malloc((size_t)s->n * sizeof *t);
	if (!t)
		return mq_err_set(err, MQ_ENOMEM, "sequence check: out of memory");
	for (uint32_t i = 0; i < s->n; i++)
		t[i] = s->s[i].tick;
	qsort(t, s->n, sizeof *t, by_tick);
	uint64_t keep_above = t[s->n / 2 - 1];
	free(t);
	uint32_t w = 0;
	for (uint32_t i = 0; i < s->n; i++)
		if (s->s[i].tick > keep_above)
			s->s[w++] = s->s[i];
	s->forgotten += s->n - w;
	s->n = w;
	s->last = -1;
	return rebuild(s, s->cap, err);
}

static long find_or_add(mq_seqcheck_t *s, mq_hash128_t h, int *added, mq_err_t *err)
{
	uint32_t fp = (uint32_t)h.lo;
	size_t pos = mq_htab_home(&s->tab, fp);
	long i;
	*added = 0;
	while ((i = mq_htab_next(&s->tab, fp, &pos)) >= 0)
		if (s->s[i].h.lo == h.lo && s->s[i].h.hi == h.hi)
			return i;
	if (s->n == s->max) {
		if (forget_half(s, err))
			return -1;
		return find_or_add(s, h, added, err); /* the slot moved */
	}
	if (s->n == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 16;
		if (cap > s->max)
			cap = s->max;
		stream_t *ns = realloc(s->s, (size_t)cap * sizeof *ns);
		if (!ns)
			return mq_err_set(err, MQ_ENOMEM, "sequence check: out of memory"), -1;
		s->s = ns;
		s->cap = cap;
		if (rebuild(s, cap, err))
			return -1;
		pos = mq_htab_home(&s->tab, fp);
		while (mq_htab_next(&s->tab, fp, &pos) >= 0)
			;
	}
	i = s->n++;
	s->s[i] = (stream_t){.h = h};
	mq_htab_put(&s->tab, pos, fp, (uint32_t)i);
	*added = 1;
	return i;
}

int mq_seqcheck_see(mq_seqcheck_t *s, uint32_t ti, uint32_t p, int source, const void *producer, size_t plen,
		    uint64_t seq, mq_seq_finding_t *f, mq_err_t *err)
{
	uint8_t k[12 + LAST_KEY_MAX];
	size_t klen = 12 + (plen < LAST_KEY_MAX ? plen : 0);
	memcpy(k, &ti, 4);
	memcpy(k + 4, &p, 4);
	memcpy(k + 8, &source, 4);
	if (plen < LAST_KEY_MAX && plen)
		memcpy(k + 12, producer, plen);
	long i;
	int added = 0;
	if (s->last >= 0 && plen < LAST_KEY_MAX && klen == s->last_len && memcmp(k, s->last_key, klen) == 0) {
		i = s->last;
	} else {
		mq_hash128_t h;
		if (plen < LAST_KEY_MAX) {
			h = mq_hash128(&s->key, k, klen);
		} else {
			/* Long names: hash the fixed part's hash with the name. */
			mq_hash128_t h0 = mq_hash128(&s->key, k, 12);
			mq_hashkey_t k2 = {s->key.k0 ^ h0.lo, s->key.k1 ^ h0.hi};
			h = mq_hash128(&k2, producer, plen);
		}
		if ((i = find_or_add(s, h, &added, err)) < 0)
			return -MQ_ENOMEM;
		s->last = plen < LAST_KEY_MAX ? i : -1;
		if (s->last >= 0) {
			memcpy(s->last_key, k, klen);
			s->last_len = klen;
		}
	}
	stream_t *st = &s->s[i];
	st->tick = ++s->tick;
	*f = (mq_seq_finding_t){.kind = MQ_SEQ_OK, .expected = st->next, .got = seq};
	if (added) {
		st->next = seq + 1;
	} else if (source == MQ_SEQ_BATCH) {
		uint32_t d = (uint32_t)seq - (uint32_t)st->next;
		if (d != 0 && d < 0x80000000u) {
			f->kind = MQ_SEQ_GAP;
			f->missing = d;
			st->next = (uint32_t)(seq + 1);
		} else if (d != 0) {
			f->kind = MQ_SEQ_REPEAT;
		} else {
			st->next = (uint32_t)(seq + 1);
		}
	} else if (seq > st->next) {
		f->kind = MQ_SEQ_GAP;
		f->missing = seq - st->next;
		st->next = seq + 1;
	} else if (seq < st->next) {
		f->kind = MQ_SEQ_REPEAT;
	} else {
		st->next = seq + 1;
	}
	return f->kind;
}
