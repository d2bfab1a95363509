/*
 * txn.c -- half-message transactions (see txn.h for the rules and the
 * log's records).
 *
 * Undecided transactions (and commits whose appends are not finished)
 * live in a plain array searched linearly: a broker holds a handful of
 * them at a time, each lasting seconds; a hash would pay off only with
 * thousands in flight.  Their half messages stay in the log; memory holds
 * where each batch is (the offset of its 'A' record), so a transaction
 * costs a few dozen bytes per batch whatever its size.
 *
 * Decided transactions are remembered in a ring of `remember` entries
 * (id, outcome) indexed by an htab.h table, oldest forgotten first.
 *
 * Order of writes for a commit: 'C' (synced at once), the appends to the
 * topic, a sync of those partitions, 'D'.  A crash anywhere leaves either
 * no 'C' (still prepared: nothing was appended), or a 'C' without 'D'
 * (finished at open: only the partitions without the marked batch after
 * the recorded offset get it).  Under --fsync never nothing is synced, as
 * the operator asked; a kill -9 loses nothing of it all the same.
 */
#include "txn.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "htab.h"
#include "wire.h"

#define COMPACT_BYTES (64u << 20)
#define KEY_LEN 9       /* type + txid */
#define ADD_KEY_LEN 17  /* + index + partition */
#define RETRY_MS 1000   /* an unfinished commit is tried again this often */

typedef struct half {
	uint32_t partition;
	uint32_t count;
	uint64_t off; /* offset of its 'A' record in the log */
	uint64_t len;
} half_t;

typedef struct txn {
	uint64_t id;
	char topic[MQ_NAME_MAX + 1];
	int state; /* OPEN, PREPARED, or COMMITTED while its appends are not all done */
	int why;
	int lost;   /* replay found a batch missing */
	int warned; /* said that no checker takes it */
	half_t *half;
	uint32_t nhalf, caphalf;
	uint64_t messages, bytes;
	int64_t active_ms, prepared_ms, checked_ms, retry_ms;
	uint32_t checks;
	/* commit: partitions (ascending), end before the append, end after it
	 * (0: not known to be done) */
	uint32_t nparts;
	uint32_t *parts;
	uint64_t *before, *after;
} txn_t;

typedef struct dec {
	uint64_t id;
	uint8_t state, why;
} dec_t;

struct mq_txns {
	mq_txn_opts_t o;
	mq_store_t *store;
	mq_log_t *log;
	char *dir;
	txn_t **live;
	uint32_t nlive, caplive;
	dec_t *dec;
	uint32_t ndec, dec_head;
	mq_htab_t tab;
	mq_buf_t wbuf, rbuf, merge;
	uint64_t dead_bytes; /* log bytes no longer needed, for compaction */
};

const char *mq_txn_why_str(int why)
{
	switch (why) {
	case MQ_TXN_BY_CLIENT: return "by mq-pub";
	case MQ_TXN_BY_CHECKER: return "by its checker's verdict";
	case MQ_TXN_BY_CHECKS: return "after its checks brought no verdict";
	case MQ_TXN_BY_ABANDONED: return "because its prepare never finished";
	case MQ_TXN_BY_LOST: return "because part of its messages were lost from the broker's transaction log";
	default: return "";
	}
}

int mq_txn_id_parse(const char *s, uint64_t *id, mq_err_t *err)
{
	uint64_t v = 0;
	size_t n = strlen(s);
	for (size_t i = 0; i < n && n <= 16; i++) {
		int c = s[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
				  : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			break;
		v = v << 4 | (uint64_t)d;
		if (i + 1 == n && v) {
			*id = v;
			return 0;
		}
	}
	return mq_err_set(err, MQ_EINVAL, "transaction id '%.100s': expected the 16 hex digits mq-pub --prepare "
			  "printed", s);
}

uint64_t mq_txn_id_new(void)
{
	uint64_t v = 0;
	while (v == 0)
		if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			v = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 48);
		}
	return v;
}

int mq_txn_verdict_of(int wait_status)
{
	if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0)
		return MQ_VERDICT_COMMIT;
	if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 1)
		return MQ_VERDICT_ROLLBACK;
	return MQ_VERDICT_UNKNOWN;
}

static void say(mq_txns_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(mq_txns_t *t, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	if (!t->o.report)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	t->o.report(t->o.report_ctx, line);
}

/* ---- decided transactions ---- */

static uint32_t fp_of(uint64_t id)
{
	uint64_t h = id * 0x9e3779b97f4a7c15ull;
	return (uint32_t)(h >> 32);
}

static dec_t *dec_find(const mq_txns_t *t, uint64_t id)
{
	uint32_t fp = fp_of(id);
	size_t pos = mq_htab_home(&t->tab, fp);
	long i;
	while ((i = mq_htab_next(&t->tab, fp, &pos)) >= 0)
		if (t->dec[i].id == id)
			return &t->dec[i];
	return NULL;
}

static void dec_put(mq_txns_t *t, uint64_t id, int state, int why)
{
	dec_t *d = dec_find(t, id);
	if (d) {
		d->state = (uint8_t)state;
		d->why = (uint8_t)why;
		return;
	}
	uint32_t idx;
	if (t->ndec < t->o.remember) {
		idx = t->ndec++;
	} else { /* forget the oldest */
		idx = t->dec_head;
		mq_htab_remove_at(&t->tab, mq_htab_slot_of(&t->tab, fp_of(t->dec[idx].id), idx));
		t->dec_head = (t->dec_head + 1) % t->o.remember;
	}
	t->dec[idx] = (dec_t){id, (uint8_t)state, (uint8_t)why};
	mq_htab_add(&t->tab, fp_of(id), idx);
}

/* ---- live transactions ---- */

static txn_t *live_find(const mq_txns_t *t, uint64_t id, uint32_t *at)
{
	for (uint32_t i = 0; i < t->nlive; i++)
		if (t->live[i]->id == id) {
			if (at)
				*at = i;
			return t->live[i];
		}
	return NULL;
}

static void txn_free(txn_t *x)
{
	if (!x)
		return;
	free(x->half);
	free(x->parts);
	free(x->before);
	free(x->after);
	free(x);
}

static txn_t *live_new(mq_txns_t *t, uint64_t id, const char *topic, size_t topic_len)
{
	if (t->nlive == t->caplive) {
		uint32_t cap = t->caplive ? t->caplive * 2 : 16;
		txn_t **v = realloc(t->live, cap * sizeof *v);
		if (!v)
			return NULL;
		t->live = v;
		t->caplive = cap;
	}
	txn_t *x = calloc(1, sizeof *x);
	if (!x)
		return NULL;
	x->id = id;
	x->state = MQ_TXN_OPEN;
	memcpy(x->topic, topic, topic_len);
	x->topic[topic_len] = 0;
	t->live[t->nlive++] = x;
	return x;
}

static void live_drop(mq_txns_t *t, txn_t *x)
{
	uint32_t at;
	if (!live_find(t, x->id, &at))
		return;
	t->dead_bytes += x->bytes + 512; /* its batches and about four small records */
	t->live[at] = t->live[--t->nlive];
	txn_free(x);
}

static int half_push(txn_t *x, uint32_t partition, uint32_t count, uint64_t off, uint64_t len)
{
	if (x->nhalf == x->caphalf) {
		uint32_t cap = x->caphalf ? x->caphalf * 2 : 4;
		half_t *v = realloc(x->half, cap * sizeof *v);
		if (!v)
			return -MQ_ENOMEM;
		x->half = v;
		x->caphalf = cap;
	}
	x->half[x->nhalf++] = (half_t){partition, count, off, len};
	x->messages += count;
	x->bytes += len;
	return 0;
}

/* ---- the log ---- */

/* Append one record of type for id: key extra kx, value v.  *off (may
 * be NULL) gets its offset. */
static int put(mq_txns_t *t, uint8_t type, uint64_t id, const void *kx, size_t kxn, const void *v, size_t vn,
	       int64_t ts, uint64_t *off, mq_err_t *err)
{
	uint8_t key[ADD_KEY_LEN];
	key[0] = type;
	mq_put_u64(key + 1, id);
	if (kxn)
		memcpy(key + KEY_LEN, kx, kxn);
	mq_batch_builder_t b;
	t->wbuf.len = 0;
	mq_batch_begin(&b, &t->wbuf);
	if (mq_batch_add(&b, ts, key, KEY_LEN + kxn, v, vn, NULL, 0, NULL, 0))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	mq_batch_finish(&b);
	uint64_t base;
	int rc = mq_log_append(t->log, t->wbuf.p, t->wbuf.len, &base, err);
	if (rc == 0 && off)
		*off = base;
	return rc;
}

static int put_u8(mq_txns_t *t, uint8_t type, uint64_t id, uint8_t v, int64_t ts, mq_err_t *err)
{
	return put(t, type, id, NULL, 0, &v, 1, ts, NULL, err);
}

static int put_u32(mq_txns_t *t, uint8_t type, uint64_t id, uint32_t v, int64_t ts, mq_err_t *err)
{
	uint8_t b[4];
	mq_put_u32(b, v);
	return put(t, type, id, NULL, 0, b, 4, ts, NULL, err);
}

static int put_add(mq_txns_t *t, txn_t *x, uint32_t index, uint32_t partition, const uint8_t *batch, size_t len,
		   int64_t ts, uint64_t *off, mq_err_t *err)
{
	uint8_t kx[8];
	mq_put_u32(kx, index);
	mq_put_u32(kx + 4, partition);
	return put(t, 'A', x->id, kx, 8, batch, len, ts, off, err);
}

static int put_commit(mq_txns_t *t, txn_t *x, int64_t ts, mq_err_t *err)
{
	mq_buf_t *v = &t->rbuf;
	v->len = 0;
	if (mq_buf_reserve(v, 1 + (size_t)x->nparts * 12))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	v->p[v->len++] = (uint8_t)x->why;
	for (uint32_t i = 0; i < x->nparts; i++) {
		mq_put_u32(v->p + v->len, x->parts[i]);
		mq_put_u64(v->p + v->len + 4, x->before[i]);
		v->len += 12;
	}
	return put(t, 'C', x->id, NULL, 0, v->p, v->len, ts, NULL, err);
}

/* The batch stored by 'A' record off, appended to out. */
static int half_read(mq_txns_t *t, const txn_t *x, const half_t *h, mq_buf_t *out, mq_err_t *err)
{
	t->rbuf.len = 0;
	long long got = mq_log_read(t->log, h->off, 1, &t->rbuf, err);
	mq_batch_iter_t it;
	mq_record_t r;
	if (got < 0)
		return (int)got;
	if (got == 0 || mq_batch_iter_init(&it, t->rbuf.p, t->rbuf.len, err) ||
	    h->off < it.hdr.base_offset || h->off - it.hdr.base_offset >= it.hdr.count)
		return mq_err_set(err, MQ_ECORRUPT, "transaction %016" PRIx64 ": its messages at offset %" PRIu64
				  " of the transaction log cannot be read", x->id, h->off);
	for (uint64_t i = it.hdr.base_offset; i <= h->off; i++)
		if (mq_batch_iter_next(&it, &r) <= 0)
			return mq_err_set(err, MQ_ECORRUPT, "transaction %016" PRIx64 ": record %" PRIu64
					  " of the transaction log is damaged", x->id, h->off);
	if (!r.key || r.key_len != ADD_KEY_LEN || r.key[0] != 'A' || mq_get_u64(r.key + 1) != x->id ||
	    r.value_len != h->len)
		return mq_err_set(err, MQ_ECORRUPT, "transaction %016" PRIx64 ": record %" PRIu64
				  " of the transaction log is not one of its batches", x->id, h->off);
	if (mq_buf_append(out, r.value, r.value_len))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	return 0;
}

/* ---- commit ---- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The partitions of x, ascending, with room for the ends. */
static int commit_parts(txn_t *x, mq_err_t *err)
{
	uint32_t *p = malloc((x->nhalf ? x->nhalf : 1) * sizeof *p);
	if (!p)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < x->nhalf; i++)
		p[i] = x->half[i].partition;
	qsort(p, x->nhalf, sizeof *p, cmp_u32);
	uint32_t n = 0;
	for (uint32_t i = 0; i < x->nhalf; i++)
		if (!n || p[n - 1] != p[i])
			p[n++] = p[i];
	free(x->parts);
	free(x->before);
	free(x->after);
	x->parts = p;
	x->nparts = n;
	x->before = calloc(n ? n : 1, sizeof *x->before);
	x->after = calloc(n ? n : 1, sizeof *x->after);
	if (!x->before || !x->after)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	return 0;
}

/* Is a batch marked with x's id in log from offset from on?  1 with
 * *end its end offset, 0 not, < 0 error. */
static int marker_find(mq_txns_t *t, const txn_t *x, mq_log_t *log, uint64_t from, uint64_t *end, mq_err_t *err)
{
	uint64_t off = from < mq_log_start(log) ? mq_log_start(log) : from;
	while (off < mq_log_end(log)) {
		t->rbuf.len = 0;
		long long got = mq_log_read(log, off, 1u << 20, &t->rbuf, err);
		if (got <= 0)
			return got < 0 ? (int)got : 0;
		size_t pos = 0;
		mq_batch_hdr_t h;
		while (pos < t->rbuf.len && mq_batch_hdr_decode(t->rbuf.p + pos, t->rbuf.len - pos, &h, NULL) == 0) {
			if ((h.flags & MQ_BF_TXN) && h.txn_id == x->id && h.base_offset + h.count > from) {
				*end = h.base_offset + h.count;
				return 1;
			}
			off = h.base_offset + h.count;
			pos += h.length;
		}
		if (pos == 0)
			return mq_err_set(err, MQ_ECORRUPT, "transaction %016" PRIx64 ": cannot read topic '%s' at "
					  "offset %" PRIu64, x->id, x->topic, off);
	}
	return 0;
}

/* One batch of every message of x for partition p, in t->merge. */
static int merge_partition(mq_txns_t *t, const txn_t *x, uint32_t p, mq_err_t *err)
{
	mq_batch_builder_t b;
	mq_buf_t one = {0};
	mq_header_t hv[64];
	int rc = 0;
	t->merge.len = 0;
	mq_batch_begin(&b, &t->merge);
	b.hdr.txn_id = x->id;
	b.hdr.flags = MQ_BF_TXN;
	for (uint32_t i = 0; i < x->nhalf && !rc; i++) {
		if (x->half[i].partition != p)
			continue;
		one.len = 0;
		if ((rc = half_read(t, x, &x->half[i], &one, err)))
			break;
		mq_batch_iter_t it;
		mq_record_t r;
		if ((rc = mq_batch_iter_init(&it, one.p, one.len, err)))
			break;
		while (!rc && (rc = mq_batch_iter_next(&it, &r)) > 0) {
			const uint8_t *hp = r.headers;
			uint32_t nh = 0;
			while (nh < r.header_count && nh < 64 && mq_header_next(&hp, r.headers_end, &hv[nh]))
				nh++;
			if (r.id)
				b.hdr.flags |= MQ_BF_IDS;
			rc = mq_batch_add(&b, r.timestamp, r.key, r.key_len, r.value, r.value_len, r.id, r.id_len,
					  nh ? hv : NULL, nh) ? mq_err_set(err, MQ_ENOMEM, "out of memory") : 0;
		}
		if (rc < 0 && err->msg[0] == 0)
			mq_err_set(err, MQ_ECORRUPT, "transaction %016" PRIx64 ": a batch of it is damaged", x->id);
	}
	mq_buf_free(&one);
	if (rc < 0)
		return rc;
	mq_batch_finish(&b);
	return 0;
}

/* Append what is missing of committed x to its partitions (at most
 * max_parts of them now), sync them, and record 'D' when all are there.
 * 1 when x is finished (and freed), 0 when not yet, < 0 error. */
static int apply(mq_txns_t *t, txn_t *x, uint32_t max_parts, int64_t now, mq_err_t *err)
{
	uint32_t done = 0, touched = 0;
	x->retry_ms = now + RETRY_MS;
	for (uint32_t k = 0; k < x->nparts; k++) {
		mq_log_t *log;
		int rc = mq_store_log(t->store, x->topic, x->parts[k], &log, err);
		if (rc == -MQ_ENOENT) { /* the topic was deleted: nothing to append to */
			say(t, "transaction %016" PRIx64 ": topic '%s' partition %u no longer exists; its part of the "
			       "committed transaction is dropped", x->id, x->topic, x->parts[k]);
			x->after[k] = 1;
			x->before[k] = UINT64_MAX; /* never looked at again */
			done++;
			continue;
		}
		if (rc)
			return rc;
		if (x->before[k] == UINT64_MAX || (x->after[k] && mq_log_end(log) >= x->after[k])) {
			done++;
			continue;
		}
		uint64_t end = 0;
		uint64_t from = x->before[k] < mq_log_end(log) ? x->before[k] : mq_log_end(log);
		if ((rc = marker_find(t, x, log, from, &end, err)) < 0)
			return rc;
		if (rc == 0) {
			if (touched == max_parts)
				continue;
			uint64_t base;
			if ((rc = merge_partition(t, x, x->parts[k], err)))
				return rc;
			if (t->merge.len && (rc = mq_log_append(log, t->merge.p, t->merge.len, &base, err)))
				return rc;
			end = t->merge.len ? base + mq_get_u32(t->merge.p + 20) : mq_log_end(log);
			touched++;
		}
		x->after[k] = end;
		done++;
	}
	if (done < x->nparts)
		return 0;
	if (t->o.log.fsync != MQ_FSYNC_NEVER) {
		for (uint32_t k = 0; k < x->nparts; k++) {
			mq_log_t *log;
			if (x->before[k] == UINT64_MAX)
				continue;
			int rc = mq_store_log(t->store, x->topic, x->parts[k], &log, err);
			if (rc == 0)
				rc = mq_log_sync(log, err);
			if (rc)
				return rc;
			if (mq_log_end(log) < x->after[k])
				return 0; /* cut by a failed sync: appended again later */
		}
	}
	int rc = put(t, 'D', x->id, NULL, 0, NULL, 0, mq_now_ms(), NULL, err);
	if (rc)
		return rc;
	live_drop(t, x);
	return 1;
}

/* ---- requests ---- */

static int topic_check(const txn_t *x, const char *topic, mq_err_t *err)
{
	if (topic && *topic && strcmp(topic, x->topic))
		return mq_err_set(err, MQ_EINVAL, "transaction %016" PRIx64 " belongs to topic '%s', not '%s'", x->id,
				  x->topic, topic);
	return 0;
}

int mq_txns_begin(mq_txns_t *t, uint64_t txid, const char *topic, int64_t now_ms, mq_err_t *err)
{
	txn_t *x = live_find(t, txid, NULL);
	if (x && x->state == MQ_TXN_OPEN && !strcmp(x->topic, topic))
		return 0;
	if (x || dec_find(t, txid) || txid == 0)
		return mq_err_set(err, MQ_EEXIST, "transaction id %016" PRIx64 " is taken: prepare again", txid);
	mq_topic_meta_t meta;
	int rc = mq_store_topic_meta(t->store, topic, &meta, err);
	if (rc == -MQ_ENOENT)
		return mq_err_set(err, MQ_ENOENT, "topic '%s' does not exist", topic);
	if (rc)
		return rc;
	if ((rc = put(t, 'B', txid, NULL, 0, topic, strlen(topic), now_ms, NULL, err)))
		return rc;
	if (!(x = live_new(t, txid, topic, strlen(topic))))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	x->active_ms = now_ms;
	return 0;
}

static int unknown(uint64_t txid, mq_err_t *err)
{
	return mq_err_set(err, MQ_ENOENT, "no transaction %016" PRIx64 " on this broker (never prepared here, or "
			  "decided so long ago that it was forgotten)", txid);
}

/* The refusal for a transaction that is no longer being prepared. */
static int not_open(const mq_txns_t *t, uint64_t txid, mq_err_t *err)
{
	int state, why;
	if (mq_txns_state(t, txid, &state, &why))
		return unknown(txid, err);
	if (state == MQ_TXN_ROLLED_BACK)
		return mq_err_set(err, MQ_EINVAL, "transaction %016" PRIx64 " was rolled back %s: prepare it again",
				  txid, mq_txn_why_str(why));
	return mq_err_set(err, MQ_EINVAL, "transaction %016" PRIx64 " is %s: nothing more can be added to it",
			  txid, state == MQ_TXN_COMMITTED ? "committed" : "prepared");
}

int mq_txns_add(mq_txns_t *t, uint64_t txid, uint32_t index, uint32_t partition, const uint8_t *batch,
		size_t len, size_t max_record_bytes, int *dup, mq_err_t *err)
{
	txn_t *x = live_find(t, txid, NULL);
	*dup = 0;
	if (x && x->state != MQ_TXN_OPEN && index < x->nhalf) {
		*dup = 1; /* a retry that crossed the end */
		return 0;
	}
	if (!x || x->state != MQ_TXN_OPEN)
		return not_open(t, txid, err);
	if (index < x->nhalf) {
		*dup = 1;
		return 0;
	}
	if (index > x->nhalf)
		return mq_err_set(err, MQ_ESEQ, "transaction %016" PRIx64 ": batch %u came before batch %u: resend "
				  "in order", txid, index, x->nhalf);
	mq_topic_meta_t meta;
	int rc = mq_store_topic_meta(t->store, x->topic, &meta, err);
	if (rc)
		return rc == -MQ_ENOENT ? mq_err_set(err, MQ_ENOENT, "topic '%s' does not exist", x->topic) : rc;
	if (partition >= meta.partitions)
		return mq_err_set(err, MQ_ENOENT, "topic '%s' has %u partition%s; partition %u does not exist",
				  x->topic, meta.partitions, meta.partitions == 1 ? "" : "s", partition);
	uint64_t part_bytes = len;
	for (uint32_t i = 0; i < x->nhalf; i++)
		if (x->half[i].partition == partition)
			part_bytes += x->half[i].len;
	if (part_bytes > MQ_TXN_MAX_PART_BYTES)
		return mq_err_set(err, MQ_ETOOBIG, "transaction %016" PRIx64 ": more than %u MiB for partition %u of "
				  "topic '%s' (its commit is one batch there): split it into smaller transactions",
				  txid, (unsigned)(MQ_TXN_MAX_PART_BYTES >> 20), partition, x->topic);
	if ((rc = mq_batch_check(batch, len, max_record_bytes, err)))
		return rc;
	mq_batch_hdr_t h;
	mq_batch_hdr_decode(batch, len, &h, NULL);
	uint64_t off;
	int64_t now = mq_now_ms();
	if ((rc = put_add(t, x, index, partition, batch, len, now, &off, err)))
		return rc;
	x->active_ms = now;
	if (half_push(x, partition, h.count, off, len))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	return 0;
}

/* Roll back live x (why) in the log and in memory. */
static int rollback(mq_txns_t *t, txn_t *x, int why, int64_t now, mq_err_t *err)
{
	int rc = put_u8(t, 'R', x->id, (uint8_t)why, now, err);
	if (rc)
		return rc;
	dec_put(t, x->id, MQ_TXN_ROLLED_BACK, why);
	live_drop(t, x);
	return 0;
}

int mq_txns_end(mq_txns_t *t, uint64_t txid, uint32_t nbatches, int64_t now_ms, uint64_t *messages,
		mq_err_t *err)
{
	txn_t *x = live_find(t, txid, NULL);
	if (x && x->state != MQ_TXN_OPEN && x->nhalf == nbatches) {
		*messages = x->messages;
		return 0;
	}
	if (!x) {
		int state, why;
		if (mq_txns_state(t, txid, &state, &why) == 0 && state == MQ_TXN_COMMITTED)
			return mq_err_set(err, MQ_EINVAL, "transaction %016" PRIx64 " is already committed", txid);
		return not_open(t, txid, err);
	}
	if (x->state != MQ_TXN_OPEN || x->nhalf != nbatches) {
		uint32_t had = x->nhalf;
		int rc = rollback(t, x, MQ_TXN_BY_LOST, now_ms, err);
		if (rc)
			return rc;
		return mq_err_set(err, MQ_EINVAL, "transaction %016" PRIx64 ": the broker holds %u batch%s of it, not "
				  "%u (some were lost, e.g. in a power cut): rolled back; prepare it again", txid, had,
				  had == 1 ? "" : "es", nbatches);
	}
	int rc = put_u32(t, 'E', txid, nbatches, now_ms, err);
	if (rc)
		return rc;
	x->state = MQ_TXN_PREPARED;
	x->prepared_ms = now_ms;
	*messages = x->messages;
	return 0;
}

int mq_txns_state(const mq_txns_t *t, uint64_t txid, int *state, int *why)
{
	const txn_t *x = live_find(t, txid, NULL);
	if (x) {
		*state = x->state;
		*why = x->why;
		return 0;
	}
	const dec_t *d = dec_find(t, txid);
	if (!d)
		return -MQ_ENOENT;
	*state = d->state;
	*why = d->why;
	return 0;
}

/* The refusal or the answer for a decided transaction. */
static int decided(const mq_txns_t *t, uint64_t txid, int want, int *was, mq_err_t *err)
{
	int state, why;
	if (mq_txns_state(t, txid, &state, &why))
		return unknown(txid, err);
	if (was)
		*was = state;
	if (state == want)
		return 0;
	if (state == MQ_TXN_ROLLED_BACK)
		return mq_err_set(err, MQ_EINVAL, "transaction %016" PRIx64 " was rolled back %s: it cannot be "
				  "committed (prepare the messages again)", txid, mq_txn_why_str(why));
	return mq_err_set(err, MQ_EINVAL, "transaction %016" PRIx64 " was committed %s: its messages are visible "
			  "and cannot be rolled back", txid, mq_txn_why_str(why));
}

int mq_txns_commit(mq_txns_t *t, uint64_t txid, const char *topic, int why, uint32_t max_parts, int *was,
		   mq_err_t *err)
{
	txn_t *x = live_find(t, txid, NULL);
	int rc;
	if (!x)
		return decided(t, txid, MQ_TXN_COMMITTED, was, err);
	if ((rc = topic_check(x, topic, err)))
		return rc;
	if (was)
		*was = x->state;
	if (x->state == MQ_TXN_OPEN)
		return mq_err_set(err, MQ_EINVAL, "transaction %016" PRIx64 " is not prepared: its mq-pub --prepare has "
				  "not finished (or the broker lost the end of it): commit it once that printed the id",
				  txid);
	int64_t now = mq_now_ms();
	if (x->state == MQ_TXN_PREPARED) {
		if ((rc = commit_parts(x, err)))
			return rc;
		for (uint32_t k = 0; k < x->nparts; k++) {
			mq_log_t *log;
			rc = mq_store_log(t->store, x->topic, x->parts[k], &log, err);
			if (rc && rc != -MQ_ENOENT)
				return rc;
			x->before[k] = rc ? 0 : mq_log_end(log);
		}
		x->why = why;
		/* The decision is on disk before anything is appended. */
		if ((rc = put_commit(t, x, now, err)) ||
		    (t->o.log.fsync != MQ_FSYNC_NEVER && (rc = mq_log_sync(t->log, err))))
			return rc;
		x->state = MQ_TXN_COMMITTED;
		dec_put(t, txid, MQ_TXN_COMMITTED, why);
	}
	rc = apply(t, x, max_parts, now, err);
	return rc < 0 ? rc : 0;
}

int mq_txns_rollback(mq_txns_t *t, uint64_t txid, const char *topic, int why, int *was, mq_err_t *err)
{
	txn_t *x = live_find(t, txid, NULL);
	int rc;
	if (!x || x->state == MQ_TXN_COMMITTED)
		return decided(t, txid, MQ_TXN_ROLLED_BACK, was, err);
	if ((rc = topic_check(x, topic, err)))
		return rc;
	if (was)
		*was = x->state;
	return rollback(t, x, why, mq_now_ms(), err);
}

/* ---- checks ---- */

static int64_t check_due(const mq_txns_t *t, const txn_t *x)
{
	return x->checks ? x->checked_ms + t->o.check_interval_ms : x->prepared_ms + t->o.timeout_ms;
}

int mq_txns_check_next(mq_txns_t *t, const char *topic, int64_t now_ms, uint64_t *txid, mq_buf_t *msgs,
		       mq_err_t *err)
{
	txn_t *best = NULL;
	for (uint32_t i = 0; i < t->nlive; i++) {
		txn_t *x = t->live[i];
		if (x->state != MQ_TXN_PREPARED || strcmp(x->topic, topic) || x->checks >= t->o.max_checks ||
		    check_due(t, x) > now_ms)
			continue;
		if (!best || check_due(t, x) < check_due(t, best))
			best = x;
	}
	if (!best)
		return 0;
	size_t was = msgs->len;
	int rc = 0;
	for (uint32_t i = 0; i < best->nhalf && !rc; i++)
		rc = half_read(t, best, &best->half[i], msgs, err);
	if (rc == -MQ_ECORRUPT) { /* its messages are gone: nothing to decide about */
		msgs->len = was;
		say(t, "transaction %016" PRIx64 " of topic '%s': %s: rolled back", best->id, best->topic, err->msg);
		return rollback(t, best, MQ_TXN_BY_LOST, now_ms, err);
	}
	if (rc || (rc = put_u32(t, 'K', best->id, best->checks + 1, now_ms, err))) {
		msgs->len = was;
		return rc;
	}
	best->checks++;
	best->checked_ms = now_ms;
	best->warned = 0;
	*txid = best->id;
	return 1;
}

int64_t mq_txns_next_check(const mq_txns_t *t, const char *topic)
{
	int64_t next = INT64_MAX;
	for (uint32_t i = 0; i < t->nlive; i++) {
		const txn_t *x = t->live[i];
		if (x->state == MQ_TXN_PREPARED && x->checks < t->o.max_checks && check_due(t, x) < next &&
		    !strcmp(x->topic, topic))
			next = check_due(t, x);
	}
	return next;
}

/* When mq_txns_tick has something to do for x (INT64_MAX: nothing until
 * a check): only what it acts on, so a transaction due for a check that
 * no checker asks for never makes the caller wake up in a loop. */
static int64_t tick_due(const mq_txns_t *t, const txn_t *x)
{
	switch (x->state) {
	case MQ_TXN_OPEN: return x->active_ms + t->o.timeout_ms + t->o.check_interval_ms;
	case MQ_TXN_COMMITTED: return x->retry_ms;
	default:
		if (x->checks >= t->o.max_checks)
			return check_due(t, x);
		return x->warned ? INT64_MAX : check_due(t, x) + t->o.check_interval_ms;
	}
}

int64_t mq_txns_next_due(const mq_txns_t *t)
{
	int64_t next = INT64_MAX;
	for (uint32_t i = 0; i < t->nlive; i++)
		if (tick_due(t, t->live[i]) < next)
			next = tick_due(t, t->live[i]);
	return next;
}

/* ---- compaction ---- */

/* Rewrite what is live into a new segment and drop the older ones. */
static int compact(mq_txns_t *t, mq_err_t *err)
{
	int rc = mq_log_roll(t->log, err);
	if (rc)
		return rc;
	uint64_t start = mq_log_end(t->log);
	int64_t now = mq_now_ms();
	mq_buf_t one = {0};
	/* Remembered decisions, many to a batch (a record is 21 bytes). */
	mq_batch_builder_t b;
	uint32_t inbatch = 0;
	for (uint32_t k = 0; k <= t->ndec && !rc; k++) {
		if (inbatch && (k == t->ndec || inbatch == 4096)) {
			uint64_t base;
			mq_batch_finish(&b);
			rc = mq_log_append(t->log, t->wbuf.p, t->wbuf.len, &base, err);
			inbatch = 0;
		}
		if (k == t->ndec || rc)
			break;
		const dec_t *d = &t->dec[(t->dec_head + k) % t->o.remember];
		if (live_find(t, d->id, NULL))
			continue; /* a commit still being applied: written in full below */
		if (!inbatch++) {
			t->wbuf.len = 0;
			mq_batch_begin(&b, &t->wbuf);
		}
		uint8_t key[KEY_LEN], v[2] = {d->state, d->why};
		key[0] = 'F';
		mq_put_u64(key + 1, d->id);
		if (mq_batch_add(&b, now, key, KEY_LEN, v, 2, NULL, 0, NULL, 0))
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < t->nlive && !rc; i++) {
		txn_t *x = t->live[i];
		if ((rc = put(t, 'B', x->id, NULL, 0, x->topic, strlen(x->topic), x->active_ms, NULL, err)))
			break;
		for (uint32_t h = 0; h < x->nhalf && !rc; h++) {
			one.len = 0;
			uint64_t off;
			if (!(rc = half_read(t, x, &x->half[h], &one, err)) &&
			    !(rc = put_add(t, x, h, x->half[h].partition, one.p, one.len, x->active_ms, &off, err)))
				x->half[h].off = off;
		}
		if (!rc && x->state != MQ_TXN_OPEN)
			rc = put_u32(t, 'E', x->id, x->nhalf, x->prepared_ms, err);
		if (!rc && x->checks)
			rc = put_u32(t, 'K', x->id, x->checks, x->checked_ms, err);
		if (!rc && x->state == MQ_TXN_COMMITTED)
			rc = put_commit(t, x, now, err);
	}
	mq_buf_free(&one);
	if (rc || (rc = mq_log_sync(t->log, err)))
		return rc;
	rc = mq_log_delete_before(t->log, start, err);
	t->dead_bytes = 0;
	return rc < 0 ? rc : 0;
}

int mq_txns_tick(mq_txns_t *t, int64_t now_ms, mq_err_t *err)
{
	int rc = 0;
	for (uint32_t i = 0; i < t->nlive && rc == 0;) {
		txn_t *x = t->live[i];
		int gone = 0;
		if (x->state == MQ_TXN_OPEN && now_ms >= x->active_ms + t->o.timeout_ms + t->o.check_interval_ms) {
			say(t, "transaction %016" PRIx64 " of topic '%s': its prepare stopped after %u batch%s and never "
			       "finished (mq-pub died?): rolled back", x->id, x->topic, x->nhalf, x->nhalf == 1 ? "" : "es");
			rc = rollback(t, x, MQ_TXN_BY_ABANDONED, now_ms, err);
			gone = 1;
		} else if (x->state == MQ_TXN_PREPARED && x->checks >= t->o.max_checks && now_ms >= check_due(t, x)) {
			say(t, "transaction %016" PRIx64 " of topic '%s': no verdict after %u checks: rolled back (%" PRIu64
			       " message%s dropped)", x->id, x->topic, x->checks, x->messages, x->messages == 1 ? "" : "s");
			rc = rollback(t, x, MQ_TXN_BY_CHECKS, now_ms, err);
			gone = 1;
		} else if (x->state == MQ_TXN_PREPARED && !x->warned &&
			   now_ms >= check_due(t, x) + t->o.check_interval_ms) {
			say(t, "transaction %016" PRIx64 " of topic '%s' is due for a check but no checker asked for it: it "
			       "stays undecided and invisible until one answers (run 'mq-pub --txn-checker CMD -t %s') or "
			       "it is committed or rolled back", x->id, x->topic, x->topic);
			x->warned = 1;
		} else if (x->state == MQ_TXN_COMMITTED && now_ms >= x->retry_ms) {
			rc = apply(t, x, UINT32_MAX, now_ms, err);
			gone = rc == 1;
			rc = rc < 0 ? rc : 0;
		}
		if (!gone)
			i++;
	}
	if (rc == 0 && mq_log_bytes(t->log) > t->o.compact_bytes && t->dead_bytes * 2 > mq_log_bytes(t->log))
		rc = compact(t, err);
	return rc;
}

int mq_txns_sync(mq_txns_t *t, int64_t now_mono_ms, mq_err_t *err)
{
	return mq_log_commit(t->log, now_mono_ms, err);
}

uint32_t mq_txns_pending(const mq_txns_t *t)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < t->nlive; i++)
		n += t->live[i]->state != MQ_TXN_COMMITTED;
	return n;
}

/* ---- open / close ---- */

typedef struct replay {
	mq_txns_t *t;
	uint64_t records, faults;
	char fault[1024];
	int nomem;
} replay_t;

static void replay_record(replay_t *rs, const mq_record_t *r, uint64_t off)
{
	mq_txns_t *t = rs->t;
	if (!r->key || r->key_len < KEY_LEN)
		return; /* not ours */
	uint8_t type = r->key[0];
	uint64_t id = mq_get_u64(r->key + 1);
	txn_t *x = live_find(t, id, NULL);
	const uint8_t *v = r->value;
	size_t vn = r->value_len;
	switch (type) {
	case 'B': {
		char name[MQ_NAME_MAX + 1];
		if (x || !vn || vn > MQ_NAME_MAX)
			break;
		memcpy(name, v, vn);
		name[vn] = 0;
		if (strlen(name) != vn || mq_name_check("topic", name, 1, NULL))
			break; /* not a name this broker wrote: never a path */
		if (!(x = live_new(t, id, name, vn)))
			rs->nomem = 1;
		else
			x->active_ms = r->timestamp;
		break;
	}
	case 'A': {
		mq_batch_hdr_t h;
		if (!x || r->key_len != ADD_KEY_LEN || x->state != MQ_TXN_OPEN)
			break;
		uint32_t index = mq_get_u32(r->key + KEY_LEN), part = mq_get_u32(r->key + KEY_LEN + 4);
		if (index < x->nhalf)
			break;
		if (index > x->nhalf || mq_batch_hdr_decode(v, vn, &h, NULL)) {
			x->lost = 1;
			break;
		}
		if (half_push(x, part, h.count, off, vn))
			rs->nomem = 1;
		x->active_ms = r->timestamp;
		break;
	}
	case 'E':
		if (!x || vn != 4 || x->state != MQ_TXN_OPEN)
			break;
		if (mq_get_u32(v) != x->nhalf)
			x->lost = 1;
		x->state = MQ_TXN_PREPARED;
		x->prepared_ms = r->timestamp;
		break;
	case 'K':
		if (x && vn == 4) {
			x->checks = mq_get_u32(v);
			x->checked_ms = r->timestamp;
		}
		break;
	case 'C':
		if (vn < 1 || (vn - 1) % 12)
			break;
		dec_put(t, id, MQ_TXN_COMMITTED, v[0]);
		if (!x || x->state == MQ_TXN_COMMITTED)
			break;
		x->state = MQ_TXN_COMMITTED;
		x->why = v[0];
		free(x->parts);
		free(x->before);
		free(x->after);
		x->nparts = (uint32_t)((vn - 1) / 12);
		x->parts = malloc((x->nparts ? x->nparts : 1) * sizeof *x->parts);
		x->before = malloc((x->nparts ? x->nparts : 1) * sizeof *x->before);
		x->after = calloc(x->nparts ? x->nparts : 1, sizeof *x->after);
		if (!x->parts || !x->before || !x->after) {
			rs->nomem = 1;
			break;
		}
		for (uint32_t k = 0; k < x->nparts; k++) {
			x->parts[k] = mq_get_u32(v + 1 + 12 * k);
			x->before[k] = mq_get_u64(v + 5 + 12 * k);
		}
		break;
	case 'D':
		if (x)
			live_drop(t, x);
		break;
	case 'R':
		if (vn >= 1)
			dec_put(t, id, MQ_TXN_ROLLED_BACK, v[0]);
		if (x)
			live_drop(t, x);
		break;
	case 'F':
		if (vn >= 2 && (v[0] == MQ_TXN_COMMITTED || v[0] == MQ_TXN_ROLLED_BACK))
			dec_put(t, id, v[0], v[1]);
		break;
	default:
		break;
	}
}

static int replay_batch(void *ctx, const uint8_t *batch, size_t len, const char *seg, uint64_t pos)
{
	replay_t *rs = ctx;
	mq_batch_iter_t it;
	mq_record_t r;
	(void)seg;
	(void)pos;
	if (mq_batch_iter_init(&it, batch, len, NULL))
		return 0;
	for (uint64_t off = it.hdr.base_offset; !rs->nomem && mq_batch_iter_next(&it, &r) > 0; off++) {
		replay_record(rs, &r, off);
		rs->records++;
	}
	return rs->nomem ? -MQ_ENOMEM : 0;
}

static void replay_fault(void *ctx, const char *msg)
{
	replay_t *rs = ctx;
	if (!rs->faults++)
		snprintf(rs->fault, sizeof rs->fault, "%s", msg);
}

/* After the replay: what lost batches is rolled back, every decided
 * commit is finished. */
static int recover(mq_txns_t *t, mq_err_t *err)
{
	int64_t now = mq_now_ms();
	int rc = 0;
	for (uint32_t i = 0; i < t->nlive && rc == 0;) {
		txn_t *x = t->live[i];
		int gone = 0;
		if (x->lost && x->state == MQ_TXN_PREPARED) {
			say(t, "transaction %016" PRIx64 " of topic '%s': part of its messages are missing from the "
			       "transaction log: rolled back; its producer must prepare it again", x->id, x->topic);
			rc = rollback(t, x, MQ_TXN_BY_LOST, now, err);
			gone = 1;
		} else if (x->state == MQ_TXN_COMMITTED) {
			rc = apply(t, x, UINT32_MAX, now, err);
			if (rc < 0) {
				mq_err_t e = *err;
				say(t, "transaction %016" PRIx64 " of topic '%s': its commit could not be finished at start "
				       "(%s); tried again while mq-serve runs", x->id, x->topic, e.msg);
				rc = 0;
			} else {
				gone = rc == 1;
				rc = 0;
			}
		}
		if (!gone)
			i++;
	}
	return rc;
}

int mq_txns_open(const char *state_dir, mq_store_t *store, const mq_txn_opts_t *o, mq_txns_t **out,
		 mq_err_t *err)
{
	mq_txns_t *t = calloc(1, sizeof *t);
	char path[4200];
	if (!t)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	t->o = *o;
	if (t->o.timeout_ms <= 0)
		t->o.timeout_ms = MQ_TXN_DEFAULT_TIMEOUT_MS;
	if (t->o.check_interval_ms <= 0)
		t->o.check_interval_ms = MQ_TXN_DEFAULT_INTERVAL_MS;
	if (!t->o.max_checks)
		t->o.max_checks = MQ_TXN_DEFAULT_MAX_CHECKS;
	if (!t->o.remember)
		t->o.remember = MQ_TXN_DEFAULT_REMEMBER;
	if (!t->o.compact_bytes)
		t->o.compact_bytes = COMPACT_BYTES;
	t->store = store;
	snprintf(path, sizeof path, "%s/txn", state_dir);
	int rc = 0;
	if (!(t->dir = strdup(path)) || !(t->dec = calloc(t->o.remember, sizeof *t->dec)))
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	if (rc == 0)
		rc = mq_htab_init(&t->tab, t->o.remember, err);
	replay_t rs = {.t = t};
	struct stat st;
	if (rc == 0 && stat(path, &st) == 0) {
		rc = mq_log_scan(path, 0, replay_batch, replay_fault, &rs, err);
		if (rc == -MQ_ENOMEM)
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory replaying the transaction log '%s'", path);
	}
	mq_log_opts_t lo = t->o.log;
	lo.retention_ms = lo.retention_bytes = 0;
	lo.segment_bytes = 64u << 20;
	lo.max_record_bytes = 0; /* an 'A' record holds a whole batch */
	lo.report = NULL;        /* the replay says what it lost, in its own words */
	if (rc == 0)
		rc = mq_log_open(path, &lo, 1, &t->log, err);
	if (rc == 0 && rs.faults) {
		say(t, "%s; kept the %" PRIu64 " records before it: transactions whose messages were there are rolled "
		       "back, decisions after it are forgotten (their producers get 'no transaction')", rs.fault,
		    rs.records);
		rc = compact(t, err); /* the log holds no damage afterwards */
	}
	if (rc == 0)
		rc = recover(t, err);
	if (rc) {
		mq_txns_close(t);
		return rc;
	}
	*out = t;
	return 0;
}

void mq_txns_close(mq_txns_t *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->nlive; i++)
		txn_free(t->live[i]);
	free(t->live);
	free(t->dec);
	mq_htab_free(&t->tab);
	mq_log_close(t->log);
	mq_buf_free(&t->wbuf);
	mq_buf_free(&t->rbuf);
	mq_buf_free(&t->merge);
	free(t->dir);
	free(t);
}
