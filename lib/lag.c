/*
 * lag.c -- the consumer-lag rules (see lag.h and mq-lag(1)).
 */
#include "lag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One point of the window: a sample, or the present. */
typedef struct point {
	int64_t ms, committed;
	uint64_t end;
} point_t;

/* Lag at a point: a missing commit, or one below the log start, counts
 * as the start (what retention deleted can no longer be consumed). */
static uint64_t lag_at(int64_t committed, uint64_t end, uint64_t start)
{
	uint64_t from = committed < 0 || (uint64_t)committed < start ? start : (uint64_t)committed;
	return end > from ? end - from : 0;
}

/* Smallest, largest and mean lag of points [from, to). */
typedef struct span {
	uint64_t lo, hi;
	double mean;
} span_t;

static span_t lag_span(const point_t *pt, uint32_t from, uint32_t to, uint64_t start)
{
	span_t s = {UINT64_MAX, 0, 0};
	for (uint32_t i = from; i < to; i++) {
		uint64_t l = lag_at(pt[i].committed, pt[i].end, start);
		s.lo = l < s.lo ? l : s.lo;
		s.hi = l > s.hi ? l : s.hi;
		s.mean += (double)l;
	}
	s.mean /= (double)(to - from);
	return s;
}

static int stalled(const point_t *pt, uint32_t m, uint64_t start)
{
	for (uint32_t i = 0; i < m; i++)
		if (pt[i].committed != pt[m - 1].committed || lag_at(pt[i].committed, pt[i].end, start) == 0)
			return 0;
	return 1;
}

/* The lag grew over the window: every lag of the newest third above
 * every lag of the oldest, and the mean of each third above the one
 * before (so a burst being drained is not growth). */
static int growing(const point_t *pt, uint32_t m, uint64_t start)
{
	uint32_t a = m / 3, b = 2 * m / 3;
	if (a == 0 || b == a || b == m)
		return 0;
	span_t old = lag_span(pt, 0, a, start), mid = lag_span(pt, a, b, start), new = lag_span(pt, b, m, start);
	return new.lo > old.hi && old.mean < mid.mean && mid.mean < new.mean;
}

/* rate and eta_s from the oldest sample with a commit to the present. */
static void rates(const point_t *pt, uint32_t m, uint64_t lag, mq_lag_eval_t *out)
{
	const point_t *now = &pt[m - 1];
	out->rate = -1;
	out->eta_s = lag == 0 ? 0 : -1;
	if (m < 2)
		return;
	uint32_t i0 = 0;
	while (i0 < m - 1 && pt[i0].committed < 0)
		i0++;
	double dt = (double)(now->ms - pt[i0 < m - 1 ? i0 : 0].ms) / 1000.0;
	if (dt <= 0)
		return;
	if (i0 == m - 1) { /* no sample has a commit */
		if (now->committed < 0)
			out->rate = 0;
		return;
	}
	if (now->committed < pt[i0].committed)
		return; /* moved back (a reset): no rate */
	out->rate = (double)(now->committed - pt[i0].committed) / dt;
	double growth = ((double)now->end - (double)pt[i0].end) / dt;
	double net = out->rate - growth;
	if (lag > 0 && net > 0)
		out->eta_s = (double)lag / net;
}

void mq_lag_evaluate(const mq_group_row_t *row, int64_t now_ms, mq_lag_eval_t *out)
{
	point_t pt[MQ_LAG_HISTORY + 1];
	uint32_t n = row->nhist < MQ_LAG_HISTORY ? row->nhist : MQ_LAG_HISTORY;
	for (uint32_t i = 0; i < n; i++)
		pt[i] = (point_t){row->hist[i].ms, row->hist[i].committed, row->hist[i].end};
	/* The present: never before the newest sample (clocks of two hosts). */
	int64_t ms = n && row->hist[n - 1].ms > now_ms ? row->hist[n - 1].ms : now_ms;
	pt[n] = (point_t){ms, row->committed, row->end};
	uint32_t m = n + 1;

	out->lag = lag_at(row->committed, row->end, row->start);
	rates(pt, m, out->lag, out);

	int full = n >= MQ_LAG_HISTORY;
	if (out->lag == 0)
		out->status = MQ_LAG_OK;
	else if (!row->owner[0])
		out->status = MQ_LAG_STOPPED;
	else if (full && stalled(pt, m, row->start))
		out->status = MQ_LAG_STALLED;
	else if (full && growing(pt, m, row->start))
		out->status = MQ_LAG_LAGGING;
	else
		out->status = MQ_LAG_OK;
	if (out->status == MQ_LAG_STOPPED)
		out->eta_s = -1; /* nobody reads it now, whatever the window says */
	if (out->lag == 0)
		out->age_s = 0;
	else if (row->since_ms < 0)
		out->age_s = -1;
	else
		out->age_s = ms > row->since_ms ? (double)(ms - row->since_ms) / 1000.0 : 0;
}

uint32_t mq_lag_series(const mq_group_row_t *row, uint64_t *out)
{
	uint32_t n = row->nhist < MQ_LAG_HISTORY ? row->nhist : MQ_LAG_HISTORY;
	for (uint32_t i = 0; i < n; i++)
		out[i] = lag_at(row->hist[i].committed, row->hist[i].end, row->start);
	out[n] = lag_at(row->committed, row->end, row->start);
	return n + 1;
}

int mq_lag_spark_level(uint64_t v, uint64_t max)
{
	if (v == 0 || max == 0)
		return 0;
	if (v >= max)
		return MQ_LAG_SPARK_LEVELS - 1;
	int l = (int)((double)v * (MQ_LAG_SPARK_LEVELS - 1) / (double)max + 0.5);
	return l < 1 ? 1 : l;
}

uint32_t mq_lag_spark(const uint64_t *v, uint32_t n, int utf8, char *buf, size_t size)
{
	static const char ascii[MQ_LAG_SPARK_LEVELS + 1] = "_.:-=+*#";
	size_t w = utf8 ? 3 : 1, at = 0;
	uint64_t max = 0;
	uint32_t i;
	for (i = 0; i < n; i++)
		max = v[i] > max ? v[i] : max;
	for (i = 0; i < n && at + w < size; i++) {
		int l = mq_lag_spark_level(v[i], max);
		if (utf8) { /* U+2581 + l: E2 96 81+l */
			buf[at++] = (char)0xe2;
			buf[at++] = (char)0x96;
			buf[at++] = (char)(0x81 + l);
		} else {
			buf[at++] = ascii[l];
		}
	}
	if (size)
		buf[at] = 0;
	return i;
}

void mq_lag_fmt_secs(char *b, size_t n, double s)
{
	if (s < 0) {
		snprintf(b, n, "-");
		return;
	}
	long v = s >= 100.0 * 86400 ? 100L * 86400 : (long)s;
	if (v >= 100L * 86400)
		snprintf(b, n, ">99d");
	else if (v < 60)
		snprintf(b, n, "%lds", v);
	else if (v < 3600)
		snprintf(b, n, "%ldm%02lds", v / 60, v % 60);
	else if (v < 86400)
		snprintf(b, n, "%ldh%02ldm", v / 3600, v % 3600 / 60);
	else
		snprintf(b, n, "%ldd%02ldh", v / 86400, v % 86400 / 3600);
}

const char *mq_lag_status_name(mq_lag_status_t s)
{
	switch (s) {
	case MQ_LAG_OK: return "OK";
	case MQ_LAG_LAGGING: return "LAGGING";
	case MQ_LAG_STALLED: return "STALLED";
	case MQ_LAG_STOPPED: return "STOPPED";
	}
	return "?";
}

/* ---- history kept by the caller ---- */

typedef struct mem_row {
	char group[MQ_NAME_MAX + 1], topic[MQ_NAME_MAX + 1];
	uint32_t partition, nhist;
	mq_lag_sample_t hist[MQ_LAG_HISTORY]; /* oldest first */
} mem_row_t;

struct mq_lag_memory {
	mem_row_t *rows;
	uint32_t n, cap;
};

mq_lag_memory_t *mq_lag_memory_new(void)
{
	return calloc(1, sizeof(mq_lag_memory_t));
}

void mq_lag_memory_free(mq_lag_memory_t *m)
{
	if (m)
		free(m->rows);
	free(m);
}

/* The row of (group, topic, p), or NULL; *hint: where the last was (rows
 * come in the same order each time, so it is usually the next). */
static mem_row_t *mem_find(const mq_lag_memory_t *m, const char *group, const char *topic, uint32_t p,
			   uint32_t *hint)
{
	for (uint32_t k = 0; k < m->n; k++) {
		uint32_t i = (*hint + k) % m->n;
		mem_row_t *r = &m->rows[i];
		if (r->partition == p && !strcmp(r->topic, topic) && !strcmp(r->group, group)) {
			*hint = i + 1;
			return r;
		}
	}
	return NULL;
}

int mq_lag_remember(mq_lag_memory_t *m, const mq_group_info_t *g, uint32_t n, int64_t now_ms)
{
	uint32_t hint = 0;
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < g[i].nrows; k++) {
			const mq_group_row_t *w = &g[i].rows[k];
			mem_row_t *r = m->n ? mem_find(m, g[i].name, w->topic, w->partition, &hint) : NULL;
			if (!r) {
				if (m->n == m->cap) {
					uint32_t cap = m->cap ? m->cap * 2 : 64;
					mem_row_t *v = realloc(m->rows, cap * sizeof *v);
					if (!v)
						return -1;
					m->rows = v, m->cap = cap;
				}
				r = &m->rows[m->n++];
				memset(r, 0, sizeof *r);
				snprintf(r->group, sizeof r->group, "%s", g[i].name);
				snprintf(r->topic, sizeof r->topic, "%s", w->topic);
				r->partition = w->partition;
				hint = m->n;
			}
			if (r->nhist == MQ_LAG_HISTORY) {
				memmove(r->hist, r->hist + 1, (MQ_LAG_HISTORY - 1) * sizeof *r->hist);
				r->nhist--;
			}
			r->hist[r->nhist++] = (mq_lag_sample_t){now_ms, w->committed, w->end};
		}
	return 0;
}

void mq_lag_recall(const mq_lag_memory_t *m, mq_group_info_t *g, uint32_t n)
{
	uint32_t hint = 0;
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < g[i].nrows; k++) {
			mq_group_row_t *w = &g[i].rows[k];
			const mem_row_t *r = m->n ? mem_find(m, g[i].name, w->topic, w->partition, &hint) : NULL;
			w->nhist = r ? r->nhist : 0;
			if (r)
				memcpy(w->hist, r->hist, r->nhist * sizeof *r->hist);
		}
}
