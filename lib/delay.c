/*
 * delay.c -- the broker's schedule of delayed batches (see delay.h for
 * the format and the crash argument).
 *
 * The heap holds 16 bytes per pending batch; the target of a batch is
 * read back from the schedule when it is moved (a T record right before
 * it), so memory does not grow with topic names.  Reading the schedule
 * at open is linear in the segments from the oldest pending batch on:
 * older ones are deleted at open and after moves (compact).  One batch
 * pending for long keeps everything after it; a rewrite of the pending
 * batches into a fresh segment would bound that, when it matters.
 */
#include "delay.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"

#define READ_CHUNK (1u << 20)
#define SEGMENT_BYTES (16u << 20) /* small, so that done segments go soon */
#define RETRY_MS 1000
#define COMPACT_MS 10000

typedef struct entry {
	int64_t due;
	uint64_t x;
} entry_t;

/* A move of this turn, waiting for the partitions' commit. */
typedef struct move {
	uint64_t x;
	int64_t due;
	uint64_t end; /* the partition's end after the copy; 0: not appended */
	uint32_t p;
	char topic[MQ_NAME_MAX + 1];
} move_t;

struct mq_delay {
	mq_log_t *log;
	mq_store_t *store;
	int fsync;
	mq_report_fn report;
	void *ctx;
	entry_t *heap;
	size_t n, cap;
	move_t *mv;
	size_t nmv, capmv;
	mq_buf_t rec, buf;
	int64_t next_compact; /* monotonic ms */
	/* Pending batches by (CRC, length), to know a producer's retry of
	 * one (the same bytes) also after a restart: open addressing,
	 * linear probing, tombstones (x == TOMB) until the next growth. */
	struct slot {
		uint64_t key, x;
	} *slot;
	size_t nslot, used; /* used: live and tombstones */
};

#define TOMB UINT64_MAX

static void say(mq_delay_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(mq_delay_t *d, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	if (!d->report)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	d->report(d->ctx, line);
}

static int grow(void **v, size_t *cap, size_t want, size_t size)
{
	if (want <= *cap)
		return 0;
	size_t n = *cap ? *cap : 16;
	while (n < want)
		n *= 2;
	void *p = realloc(*v, n * size);
	if (!p)
		return -MQ_ENOMEM;
	*v = p;
	*cap = n;
	return 0;
}

/* ---- the heap, ordered by (due, x) ---- */

static int before(const entry_t *a, const entry_t *b)
{
	return a->due < b->due || (a->due == b->due && a->x < b->x);
}

/* Room must have been made (grow). */
static void heap_push(mq_delay_t *d, int64_t due, uint64_t x)
{
	size_t i = d->n++;
	entry_t e = {due, x};
	while (i > 0 && before(&e, &d->heap[(i - 1) / 2])) {
		d->heap[i] = d->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	d->heap[i] = e;
}

static entry_t heap_pop(mq_delay_t *d)
{
	entry_t top = d->heap[0], last = d->heap[--d->n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= d->n)
			break;
		if (c + 1 < d->n && before(&d->heap[c + 1], &d->heap[c]))
			c++;
		if (!before(&d->heap[c], &last))
			break;
		d->heap[i] = d->heap[c];
		i = c;
	}
	if (d->n)
		d->heap[i] = last;
	return top;
}

/* ---- pending batches by content ---- */

static uint64_t content_key(const uint8_t *batch)
{
	uint64_t k = (uint64_t)mq_get_u32(batch + 12) << 32 | mq_get_u32(batch + 8); /* CRC, length */
	return k ? k : 1;                                                            /* 0: an empty slot */
}

static struct slot *slot_home(const mq_delay_t *d, uint64_t key)
{
	return &d->slot[(key * 0x9e3779b97f4a7c15ull >> 7) & (d->nslot - 1)];
}

static struct slot *slot_next(const mq_delay_t *d, struct slot *s)
{
	return s + 1 == d->slot + d->nslot ? d->slot : s + 1;
}

/* Room for one more: 0 or -MQ_ENOMEM.  Growing drops the tombstones. */
static int index_reserve(mq_delay_t *d)
{
	if (2 * (d->used + 1) <= d->nslot)
		return 0;
	size_t live = 0;
	for (size_t i = 0; i < d->nslot; i++)
		live += d->slot[i].key && d->slot[i].x != TOMB;
	size_t n = 64;
	while (n < 4 * (live + 1))
		n *= 2;
	struct slot *old = d->slot, *end = d->slot + d->nslot;
	if (!(d->slot = calloc(n, sizeof(*d->slot)))) {
		d->slot = old;
		return -MQ_ENOMEM;
	}
	d->nslot = n;
	d->used = 0;
	for (struct slot *o = old; o < end; o++)
		if (o->key && o->x != TOMB) {
			struct slot *t = slot_home(d, o->key);
			while (t->key)
				t = slot_next(d, t);
			*t = *o;
			d->used++;
		}
	free(old);
	return 0;
}

/* Room was made with index_reserve. */
static void index_add(mq_delay_t *d, uint64_t key, uint64_t x)
{
	struct slot *t = slot_home(d, key);
	while (t->key)
		t = slot_next(d, t);
	*t = (struct slot){key, x};
	d->used++;
}

static void index_del(mq_delay_t *d, uint64_t key, uint64_t x)
{
	if (!d->nslot)
		return;
	for (struct slot *t = slot_home(d, key); t->key; t = slot_next(d, t))
		if (t->key == key && t->x == x) {
			t->x = TOMB;
			return;
		}
}

static int target_of(mq_delay_t *d, uint64_t x, char *topic, uint32_t *p, mq_err_t *err);
static int read_at(mq_delay_t *d, uint64_t off, mq_batch_hdr_t *h, mq_err_t *err);

int mq_delay_find(mq_delay_t *d, const char *topic, uint32_t partition, const uint8_t *batch, size_t len,
		  uint64_t *x)
{
	if (len < MQ_BATCH_HEADER || !d->nslot)
		return 0;
	uint64_t key = content_key(batch);
	for (struct slot *t = slot_home(d, key); t->key; t = slot_next(d, t)) {
		char tt[MQ_NAME_MAX + 1];
		uint32_t tp;
		mq_batch_hdr_t h;
		mq_err_t e;
		if (t->key != key || t->x == TOMB || target_of(d, t->x, tt, &tp, &e) || tp != partition ||
		    strcmp(tt, topic) || read_at(d, t->x, &h, &e) || h.length != len ||
		    memcmp(d->buf.p + 8, batch + 8, len - 8)) /* all but base_offset */
			continue;
		*x = t->x;
		return 1;
	}
	return 0;
}

/* ---- records of the schedule ---- */

static int put_internal(mq_delay_t *d, char kind, const void *v, size_t n, mq_err_t *err)
{
	mq_batch_builder_t bb;
	uint64_t base;
	d->rec.len = 0;
	mq_batch_begin(&bb, &d->rec);
	bb.hdr.flags = MQ_BF_CONTROL;
	bb.hdr.producer_id = MQ_DELAY_PID;
	if (mq_batch_add(&bb, mq_now_ms(), &kind, 1, v, n, NULL, 0, NULL, 0))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	mq_batch_finish(&bb);
	return mq_log_append(d->log, d->rec.p, d->rec.len, &base, err);
}

static int put_x(mq_delay_t *d, char kind, uint64_t x, uint64_t hint, mq_err_t *err)
{
	uint8_t v[16];
	mq_put_u64(v, x);
	mq_put_u64(v + 8, hint);
	return put_internal(d, kind, v, kind == 'I' ? 16 : 8, err);
}

/* 1 with kind and value if batch is one of the schedule's own, else 0. */
static int internal(const uint8_t *batch, size_t len, char *kind, const uint8_t **v, size_t *vn)
{
	mq_batch_iter_t it;
	mq_record_t r;
	if (mq_batch_iter_init(&it, batch, len, NULL) || !(it.hdr.flags & MQ_BF_CONTROL) ||
	    it.hdr.producer_id != MQ_DELAY_PID || mq_batch_iter_next(&it, &r) <= 0 || !r.key || r.key_len != 1)
		return 0;
	*kind = (char)r.key[0];
	*v = r.value;
	*vn = r.value_len;
	return 1;
}

/* The batch at offset off of the schedule, in d->buf; its header in h. */
static int read_at(mq_delay_t *d, uint64_t off, mq_batch_hdr_t *h, mq_err_t *err)
{
	d->buf.len = 0;
	long long got = mq_log_read_checked(d->log, off, 1, &d->buf, NULL, err);
	if (got < 0)
		return (int)got;
	if (got == 0 || mq_batch_hdr_decode(d->buf.p, d->buf.len, h, err) || h->base_offset != off ||
	    h->length > d->buf.len)
		return mq_err_set(err, MQ_ECORRUPT, "delayed-message schedule: no whole batch at offset %" PRIu64, off);
	return 0;
}

/* Topic and partition of the payload at x (the T record before it). */
static int target_of(mq_delay_t *d, uint64_t x, char *topic, uint32_t *p, mq_err_t *err)
{
	mq_batch_hdr_t h;
	char kind;
	const uint8_t *v;
	size_t vn;
	int rc = x ? read_at(d, x - 1, &h, err) : -MQ_ECORRUPT;
	if (rc == 0 && (!internal(d->buf.p, h.length, &kind, &v, &vn) || kind != 'T' || vn < 5 || vn > 4 + MQ_NAME_MAX))
		rc = -MQ_ECORRUPT;
	if (rc)
		return mq_err_set(err, MQ_ECORRUPT, "delayed-message schedule: the batch at offset %" PRIu64
				  " has no destination record before it", x);
	*p = mq_get_u32(v);
	memcpy(topic, v + 4, vn - 4);
	topic[vn - 4] = 0;
	return 0;
}

/* ---- adding and moving ---- */

/* A batch enters its partition with its records' timestamps moved to its
 * due time (the same distances between them): a message's timestamp says
 * when it entered the topic, as for any other, so time retention and
 * -o @TIME see it at its place, and a delay longer than the retention does
 * not make retention take it at once.  The header is inside the CRC,
 * which is recomputed; the result depends on the batch alone, so a start
 * after a crash finds the copy by it (copied).  Returns the new CRC. */
static uint32_t due_time(uint8_t *batch, mq_batch_hdr_t *h)
{
	if (h->deliver_at > h->first_ts) {
		int64_t shift = h->deliver_at - h->first_ts;
		h->first_ts += shift;
		h->max_ts += shift;
		mq_put_u64(batch + 24, (uint64_t)h->first_ts);
		mq_put_u64(batch + 32, (uint64_t)h->max_ts);
		h->crc = mq_batch_crc(batch, h->length);
		mq_put_u32(batch + 12, h->crc);
	}
	return h->crc;
}

int mq_delay_add(mq_delay_t *d, const char *topic, uint32_t partition, uint8_t *batch, size_t len, int64_t due,
		 uint64_t *x, mq_err_t *err)
{
	uint8_t v[4 + MQ_NAME_MAX];
	size_t tl = strlen(topic);
	if (tl > MQ_NAME_MAX)
		return mq_err_set(err, MQ_EINVAL, "topic name too long");
	if (len < MQ_BATCH_HEADER || grow((void **)&d->heap, &d->cap, d->n + 1, sizeof(*d->heap)) ||
	    index_reserve(d))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	uint64_t key = content_key(batch);
	mq_put_u32(v, partition);
	memcpy(v + 4, topic, tl);
	int rc = put_internal(d, 'T', v, 4 + tl, err);
	if (rc == 0)
		rc = mq_log_append(d->log, batch, len, x, err);
	if (rc == 0) {
		heap_push(d, due, *x);
		index_add(d, key, *x);
	}
	return rc;
}

int64_t mq_delay_next_due(const mq_delay_t *d)
{
	return d->n ? d->heap[0].due : INT64_MAX;
}

uint64_t mq_delay_pending(const mq_delay_t *d)
{
	return d->n;
}

/* The partition of a move, or NULL with *gone set when its topic or
 * partition no longer exists. */
static mq_log_t *target_log(mq_delay_t *d, const move_t *m, int *gone, mq_err_t *err)
{
	mq_topic_meta_t meta;
	mq_log_t *log;
	*gone = 0;
	int rc = mq_store_topic_meta(d->store, m->topic, &meta, err);
	if (rc == -MQ_ENOENT || (rc == 0 && m->p >= meta.partitions)) {
		*gone = 1;
		return NULL;
	}
	if (rc || mq_store_log(d->store, m->topic, m->p, &log, err))
		return NULL;
	return log;
}

/* Put a batch back, to be tried again a little later. */
static void retry(mq_delay_t *d, uint64_t x, int64_t now_ms)
{
	heap_push(d, now_ms + RETRY_MS, x); /* room: it came out of the heap */
}

/* Choose the due batches and write their intents; the moves in d->mv. */
static int intents(mq_delay_t *d, int64_t now_ms, uint32_t max, mq_err_t *err)
{
	int rc = 0;
	while (d->n && d->heap[0].due <= now_ms && d->nmv < max && rc == 0) {
		if (grow((void **)&d->mv, &d->capmv, d->nmv + 1, sizeof(*d->mv)))
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
		entry_t e = heap_pop(d);
		move_t *m = &d->mv[d->nmv];
		int gone = 0;
		mq_log_t *log = NULL;
		*m = (move_t){.x = e.x, .due = e.due};
		if ((rc = target_of(d, e.x, m->topic, &m->p, err))) {
			say(d, "%s: dropped (the schedule in state/delay is damaged there)", err->msg);
			rc = put_x(d, 'D', e.x, 0, err);
		} else if (!(log = target_log(d, m, &gone, err)) && gone) {
			say(d, "a delayed batch for partition %" PRIu32 " of topic '%s' was dropped when due: that "
			       "partition no longer exists", m->p, m->topic);
			rc = put_x(d, 'D', e.x, 0, err);
		} else if (!log) {
			retry(d, e.x, now_ms);
			rc = 0; /* the partition cannot be opened now: later */
		} else if ((rc = put_x(d, 'I', e.x, mq_log_end(log), err))) {
			retry(d, e.x, now_ms);
		} else {
			d->nmv++;
		}
	}
	return rc;
}

int mq_delay_move(mq_delay_t *d, int64_t now_ms, uint32_t max, uint32_t *moved, mq_err_t *err)
{
	*moved = 0;
	size_t first = d->nmv; /* moves before it wait for mq_delay_commit */
	int rc = intents(d, now_ms, max + (uint32_t)first, err);
	if (d->nmv > first && d->fsync != MQ_FSYNC_NEVER) {
		mq_err_t e;
		if (mq_log_sync(d->log, &e)) { /* an intent must be on disk before its copy */
			for (size_t i = first; i < d->nmv; i++)
				retry(d, d->mv[i].x, now_ms);
			d->nmv = first;
			return rc ? rc : mq_err_set(err, e.code, "%s", e.msg);
		}
	}
#ifdef MQ_FAULT_INJECT
	/* Test builds only (make FAULT=1): die with the intents on disk and
	 * no copy made, as a crash between the two would. */
	if (d->nmv && getenv("MQ_FAULT_KILL_BEFORE_MOVE"))
		raise(SIGKILL);
#endif
	for (size_t i = first; i < d->nmv; i++) {
		move_t *m = &d->mv[i];
		mq_batch_hdr_t h;
		mq_log_t *log;
		uint64_t base;
		int gone;
		mq_err_t e;
		uint64_t key = 0;
		int ok = read_at(d, m->x, &h, &e) == 0 && (log = target_log(d, m, &gone, &e)) != NULL;
		if (ok) {
			key = content_key(d->buf.p); /* as added: before due_time */
			due_time(d->buf.p, &h);
			ok = mq_log_append(log, d->buf.p, h.length, &base, &e) == 0;
		}
		if (!ok) {
			retry(d, m->x, now_ms); /* its intent stays: harmless, the copy is looked for at open */
			continue;
		}
		m->end = base + h.count;
		index_del(d, key, m->x);
		(*moved)++;
	}
	return rc;
}

/* A failed sync cut the turn's appends off the schedule (log.c): the
 * batches added in it are gone (their producers are refused), so they
 * leave the heap too. */
static void forget_cut(mq_delay_t *d)
{
	uint64_t end = mq_log_end(d->log);
	size_t n = d->n;
	d->n = 0;
	for (size_t i = 0; i < n; i++) {
		entry_t e = d->heap[i];
		if (e.x < end)
			heap_push(d, e.due, e.x); /* i >= d->n: never overwrites what is still to read */
	}
}

/* Delete the segments wholly below the oldest pending batch (its T
 * record): nothing there is needed any more, not even by a start after a
 * crash (intents and D records come after their batch).  Done after
 * moves, at most every COMPACT_MS, so the scan of the heap is rare. */
static void compact(mq_delay_t *d)
{
	uint64_t low = mq_log_end(d->log);
	mq_err_t e;
	for (size_t i = 0; i < d->n; i++)
		if (d->heap[i].x - 1 < low)
			low = d->heap[i].x - 1;
	mq_log_delete_before(d->log, low, &e); /* failing, they go at the next try or start */
}

int mq_delay_commit(mq_delay_t *d, int64_t now_ms, int64_t now_mono_ms, mq_err_t *err)
{
	int moved = 0;
	for (size_t i = 0; i < d->nmv; i++) {
		move_t *m = &d->mv[i];
		if (!m->end)
			continue;
		moved = 1;
		mq_log_t *log = mq_store_log_peek(d->store, m->topic, m->p);
		mq_err_t e;
		if (log && mq_log_end(log) < m->end)
			heap_push(d, m->due, m->x); /* cut off by a failed sync: again */
		else
			put_x(d, 'D', m->x, 0, &e); /* failing, the copy is found at open */
	}
	d->nmv = 0;
	(void)now_ms;
	int rc = mq_log_commit(d->log, now_mono_ms, err);
	if (rc)
		forget_cut(d);
	else if (moved && mq_log_segments(d->log) > 1 && now_mono_ms >= d->next_compact) {
		compact(d);
		d->next_compact = now_mono_ms + COMPACT_MS;
	}
	return rc;
}

/* ---- open: read the schedule back ---- */

typedef struct pend {
	int64_t due;
	uint64_t x, key;
} pend_t;

typedef struct scan {
	pend_t *pend; /* payloads */
	size_t npend, cappend;
	entry_t *intent; /* x, hint (in due) */
	size_t nintent, capintent;
	uint64_t *done;
	size_t ndone, capdone;
	uint64_t last_t; /* offset of the last T record + 1 */
} scan_t;

static int cmp_entry_x(const void *a, const void *b)
{
	const entry_t *x = a, *y = b;
	return x->x < y->x ? -1 : x->x > y->x;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int scan_batch(scan_t *s, const uint8_t *batch, const mq_batch_hdr_t *h)
{
	char kind;
	const uint8_t *v;
	size_t vn;
	if (!internal(batch, h->length, &kind, &v, &vn)) {
		if (s->last_t != h->base_offset)
			return 0; /* no destination: cannot be moved (cannot happen but by damage) */
		if (grow((void **)&s->pend, &s->cappend, s->npend + 1, sizeof(*s->pend)))
			return -MQ_ENOMEM;
		s->pend[s->npend++] = (pend_t){h->deliver_at, h->base_offset, content_key(batch)};
	} else if (kind == 'T') {
		s->last_t = h->base_offset + 1;
	} else if (kind == 'I' && vn >= 16) {
		if (grow((void **)&s->intent, &s->capintent, s->nintent + 1, sizeof(*s->intent)))
			return -MQ_ENOMEM;
		s->intent[s->nintent++] = (entry_t){(int64_t)mq_get_u64(v + 8), mq_get_u64(v)};
	} else if (kind == 'D' && vn >= 8) {
		if (grow((void **)&s->done, &s->capdone, s->ndone + 1, sizeof(*s->done)))
			return -MQ_ENOMEM;
		s->done[s->ndone++] = mq_get_u64(v);
	}
	return 0;
}

static int scan_log(mq_delay_t *d, scan_t *s, mq_err_t *err)
{
	uint64_t off = mq_log_start(d->log), end = mq_log_end(d->log);
	while (off < end) {
		mq_log_damage_t dmg;
		d->buf.len = 0;
		long long got = mq_log_read_checked(d->log, off, READ_CHUNK, &d->buf, &dmg, err);
		if (got == -MQ_ECORRUPT) {
			say(d, "%s; the delayed messages stored at offsets %" PRIu64 " to %" PRIu64 " of the schedule "
			       "are lost (the rest are kept)", err->msg, off, dmg.to - 1);
			off = dmg.to;
			continue;
		}
		if (got <= 0)
			return got < 0 ? (int)got : 0;
		size_t pos = 0;
		mq_batch_hdr_t h;
		while (pos < d->buf.len && mq_batch_hdr_decode(d->buf.p + pos, d->buf.len - pos, &h, NULL) == 0 &&
		       h.length <= d->buf.len - pos) {
			if (scan_batch(s, d->buf.p + pos, &h))
				return mq_err_set(err, MQ_ENOMEM, "out of memory reading the delayed-message schedule");
			off = h.base_offset + h.count;
			pos += h.length;
		}
	}
	return 0;
}

/* 1 if the payload at x already lies in its partition at or after hint
 * (a move cut short between the copy and its D record). */
static int copied(mq_delay_t *d, uint64_t x, uint64_t hint)
{
	mq_batch_hdr_t h;
	move_t m = {.x = x};
	mq_err_t e;
	int gone;
	mq_log_t *log;
	if (target_of(d, x, m.topic, &m.p, &e) || read_at(d, x, &h, &e) || !(log = target_log(d, &m, &gone, &e)))
		return 0;
	uint32_t len = h.length, crc = due_time(d->buf.p, &h);
	uint64_t off = hint < mq_log_start(log) ? mq_log_start(log) : hint;
	while (off < mq_log_end(log)) {
		d->buf.len = 0;
		long long got = mq_log_read_checked(log, off, READ_CHUNK, &d->buf, NULL, &e);
		if (got <= 0)
			return 0;
		uint64_t was = off;
		for (size_t pos = 0; pos < d->buf.len && mq_batch_hdr_decode(d->buf.p + pos, d->buf.len - pos, &h, NULL) == 0;
		     pos += h.length) {
			if (h.length == len && h.crc == crc)
				return 1;
			off = h.base_offset + h.count;
		}
		if (off <= was)
			return 0;
	}
	return 0;
}

static int rebuild(mq_delay_t *d, mq_err_t *err)
{
	scan_t s = {.last_t = UINT64_MAX};
	int rc = scan_log(d, &s, err);
	if (rc)
		goto out;
	if (s.nintent) /* (never NULL to qsort and bsearch) */
		qsort(s.intent, s.nintent, sizeof(*s.intent), cmp_entry_x);
	if (s.ndone)
		qsort(s.done, s.ndone, sizeof(*s.done), cmp_u64);
	if (grow((void **)&d->heap, &d->cap, s.npend, sizeof(*d->heap))) {
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory reading the delayed-message schedule");
		goto out;
	}
	uint64_t low = mq_log_end(d->log), finished = 0;
	for (size_t i = 0; i < s.npend && rc == 0; i++) {
		uint64_t x = s.pend[i].x;
		if (s.ndone && bsearch(&x, s.done, s.ndone, sizeof(*s.done), cmp_u64))
			continue;
		/* The lowest hint of its intents, if it has any. */
		entry_t key = {0, x}, *in = NULL;
		if (s.nintent)
			in = bsearch(&key, s.intent, s.nintent, sizeof(*s.intent), cmp_entry_x);
		while (in && in > s.intent && in[-1].x == x)
			in--;
		if (in && copied(d, x, (uint64_t)in->due)) {
			rc = put_x(d, 'D', x, 0, err);
			finished++;
			continue;
		}
		if (index_reserve(d)) {
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory reading the delayed-message schedule");
			break;
		}
		heap_push(d, s.pend[i].due, x);
		index_add(d, s.pend[i].key, x);
		if (x - 1 < low)
			low = x - 1;
	}
	if (rc == 0 && finished)
		say(d, "delayed messages: %" PRIu64 " move%s to %s partition cut short when mq-serve stopped %s "
		       "found complete; nothing to do", finished, finished == 1 ? "" : "s", finished == 1 ? "its" : "their",
		    finished == 1 ? "was" : "were");
	if (rc == 0) {
		mq_err_t e;
		mq_log_delete_before(d->log, low, &e); /* failing, the next start reads more */
	}
out:
	free(s.pend);
	free(s.intent);
	free(s.done);
	return rc;
}

int mq_delay_open(const char *state_dir, const mq_log_opts_t *log_opts, mq_store_t *store, mq_report_fn report,
		  void *ctx, mq_delay_t **out, mq_err_t *err)
{
	mq_delay_t *d = calloc(1, sizeof(*d));
	if (!d)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	char path[MQ_DATA_DIR_MAX + 64];
	if ((size_t)snprintf(path, sizeof(path), "%s/delay", state_dir) >= sizeof(path)) {
		free(d);
		return mq_err_set(err, MQ_EINVAL, "state directory '%s': path too long", state_dir);
	}
	mq_log_opts_t o = *log_opts;
	o.retention_ms = o.retention_bytes = 0;
	if (!o.segment_bytes || o.segment_bytes > SEGMENT_BYTES)
		o.segment_bytes = SEGMENT_BYTES;
	d->store = store;
	d->fsync = o.fsync;
	d->report = report;
	d->ctx = ctx;
	int rc = mq_log_open(path, &o, 1, &d->log, err);
	if (rc == 0)
		rc = rebuild(d, err);
	if (rc) {
		mq_delay_close(d);
		return rc;
	}
	*out = d;
	return 0;
}

void mq_delay_close(mq_delay_t *d)
{
	if (!d)
		return;
	mq_log_close(d->log);
	free(d->heap);
	free(d->slot);
	free(d->mv);
	mq_buf_free(&d->rec);
	mq_buf_free(&d->buf);
	free(d);
}
