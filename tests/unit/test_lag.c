/*
 * test_lag.c -- unit tests for lib/lag.c with synthetic rows: the lag
 * (no commit, retention past the commit, commit past the end), each
 * status and the cases that must stay OK (too little history, caught up
 * during the window, a burst being drained, commits that saw-tooth
 * around a steady lag), rate and time to drain, and clocks that differ.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lag.h"

#define IVL 1000   /* ms between samples */
#define T0 1700000000000LL

/* A row with owner (or none) and no history; offsets [start, end). */
static mq_group_row_t row_new(int owned, uint64_t start, uint64_t end, int64_t committed)
{
	mq_group_row_t r;
	memset(&r, 0, sizeof r);
	strcpy(r.topic, "t");
	if (owned)
		strcpy(r.owner, "mq-sub-1");
	r.start = start;
	r.end = end;
	r.committed = committed;
	return r;
}

static void push(mq_group_row_t *r, int64_t committed, uint64_t end)
{
	assert_true(r->nhist < MQ_LAG_HISTORY);
	r->hist[r->nhist] = (mq_lag_sample_t){T0 + (int64_t)r->nhist * IVL, committed, end};
	r->nhist++;
}

/* Point i of a full window: a sample, or the present (i == MQ_LAG_HISTORY). */
static void put(mq_group_row_t *r, int i, int64_t committed, uint64_t end)
{
	if (i < MQ_LAG_HISTORY) {
		push(r, committed, end);
	} else {
		r->committed = committed;
		r->end = end;
	}
}

/* The present, one interval after the newest sample. */
static int64_t now_of(const mq_group_row_t *r)
{
	return T0 + (int64_t)r->nhist * IVL;
}

static mq_lag_eval_t eval(const mq_group_row_t *r)
{
	mq_lag_eval_t e;
	mq_lag_evaluate(r, now_of(r), &e);
	return e;
}

/* Fill the ring: sample i has committed c0 + i * dc and end e0 + i * de;
 * the present continues the line. */
static mq_group_row_t linear(int owned, int64_t c0, int64_t dc, uint64_t e0, uint64_t de)
{
	mq_group_row_t r = row_new(owned, 0, 0, 0);
	for (int i = 0; i <= MQ_LAG_HISTORY; i++)
		put(&r, i, c0 < 0 ? -1 : c0 + i * dc, e0 + (uint64_t)i * de);
	return r;
}

static void test_names(void **state)
{
	assert_string_equal(mq_lag_status_name(MQ_LAG_OK), "OK");
	assert_string_equal(mq_lag_status_name(MQ_LAG_LAGGING), "LAGGING");
	assert_string_equal(mq_lag_status_name(MQ_LAG_STALLED), "STALLED");
	assert_string_equal(mq_lag_status_name(MQ_LAG_STOPPED), "STOPPED");
	assert_string_equal(mq_lag_status_name((mq_lag_status_t)42), "?");
}

static void test_lag_value(void **state)
{
	mq_group_row_t r = row_new(1, 10, 50, 30);
	assert_int_equal(eval(&r).lag, 20);
	r.committed = -1; /* no commit: everything retained */
	assert_int_equal(eval(&r).lag, 40);
	r.committed = 5; /* retention deleted past the commit */
	assert_int_equal(eval(&r).lag, 40);
	r.committed = 60; /* past the end (topic recreated): nothing to read */
	assert_int_equal(eval(&r).lag, 0);
	r.committed = 50;
	mq_lag_eval_t e = eval(&r);
	assert_int_equal(e.lag, 0);
	assert_int_equal(e.status, MQ_LAG_OK);
	assert_true(e.eta_s == 0);
	assert_true(e.rate < 0); /* no history */
}

static void test_stopped(void **state)
{
	/* No owner and lag: STOPPED at once, whatever the history. */
	mq_group_row_t r = row_new(0, 0, 100, 40);
	assert_int_equal(eval(&r).status, MQ_LAG_STOPPED);
	r.committed = -1;
	assert_int_equal(eval(&r).status, MQ_LAG_STOPPED);
	r = linear(0, 0, 10, 100, 10);
	assert_int_equal(eval(&r).status, MQ_LAG_STOPPED);
	/* It consumed fast during the window, then left: no time to drain. */
	r = linear(0, 0, 20, 700, 5);
	mq_lag_eval_t e = eval(&r);
	assert_int_equal(e.status, MQ_LAG_STOPPED);
	assert_true(e.rate > 19.99 && e.rate < 20.01);
	assert_true(e.eta_s < 0);
	/* No owner and nothing to read: OK (an idle group is not a problem). */
	r = row_new(0, 0, 100, 100);
	assert_int_equal(eval(&r).status, MQ_LAG_OK);
}

static void test_stalled(void **state)
{
	/* Owner, committed stuck at 40 for the window, lag above 0 all along. */
	mq_group_row_t r = linear(1, 40, 0, 100, 3);
	mq_lag_eval_t e = eval(&r);
	assert_int_equal(e.status, MQ_LAG_STALLED);
	assert_true(e.rate == 0);
	assert_true(e.eta_s < 0);
	/* Stuck without any commit at all (a member that never committed). */
	r = linear(1, -1, 0, 100, 0);
	e = eval(&r);
	assert_int_equal(e.lag, 100);
	assert_int_equal(e.status, MQ_LAG_STALLED);
	assert_true(e.rate == 0);
	/* A single message that stays unconsumed is a stall too. */
	r = linear(1, 99, 0, 100, 0);
	assert_int_equal(eval(&r).status, MQ_LAG_STALLED);
}

static void test_not_stalled(void **state)
{
	/* One sample short of a full ring: too little history to judge. */
	mq_group_row_t r = row_new(1, 0, 100, 40);
	for (int i = 0; i < MQ_LAG_HISTORY - 1; i++)
		push(&r, 40, 100);
	assert_int_equal(eval(&r).status, MQ_LAG_OK);
	/* Caught up at the start of the window: the new messages have not
	 * waited a whole window yet. */
	r = linear(1, 40, 0, 40, 0);
	r.end = 45;
	assert_int_equal(eval(&r).status, MQ_LAG_OK);
	/* Committed once during the window. */
	r = linear(1, 40, 0, 100, 0);
	r.hist[MQ_LAG_HISTORY / 2].committed = 41;
	for (int i = MQ_LAG_HISTORY / 2 + 1; i < MQ_LAG_HISTORY; i++)
		r.hist[i].committed = 41;
	r.committed = 41;
	assert_int_equal(eval(&r).status, MQ_LAG_OK);
	/* Committed just now. */
	r = linear(1, 40, 0, 100, 0);
	r.committed = 50;
	assert_int_equal(eval(&r).status, MQ_LAG_OK);
}

static void test_lagging(void **state)
{
	/* Consuming 10/s while 15/s arrive: lag grows by 5 each second. */
	mq_group_row_t r = linear(1, 0, 10, 20, 15);
	mq_lag_eval_t e = eval(&r);
	assert_int_equal(e.status, MQ_LAG_LAGGING);
	assert_int_equal(e.lag, 20 + 5 * MQ_LAG_HISTORY);
	assert_true(e.rate > 9.99 && e.rate < 10.01);
	assert_true(e.eta_s < 0); /* never drains at this pace */
	/* The same with commits every 5 s: the lag saw-tooths (by more
	 * than it grows in a second) but climbs. */
	r = row_new(1, 0, 0, 0);
	for (int i = 0; i <= MQ_LAG_HISTORY; i++) {
		int64_t c = (i / 5) * 50;
		uint64_t end = 20 + (uint64_t)i * 15;
		put(&r, i, c, end);
	}
	assert_int_equal(eval(&r).status, MQ_LAG_LAGGING);
	/* Not committing, lag 0 at the start, then growing: LAGGING (not
	 * STALLED, as the work has not waited a whole window). */
	r = linear(1, 40, 0, 40, 2);
	assert_int_equal(eval(&r).status, MQ_LAG_LAGGING);
}

static void test_not_lagging(void **state)
{
	/* Keeping pace with a steady lag. */
	mq_group_row_t r = linear(1, 0, 10, 30, 10);
	mq_lag_eval_t e = eval(&r);
	assert_int_equal(e.status, MQ_LAG_OK);
	assert_true(e.eta_s < 0); /* lag 30 never shrinks at equal rates */
	/* Draining: 20/s consumed, 10/s arriving, lag 400 -> 100. */
	r = linear(1, 0, 20, 400, 10);
	e = eval(&r);
	assert_int_equal(e.status, MQ_LAG_OK);
	assert_int_equal(e.lag, 100);
	assert_true(e.rate > 19.99 && e.rate < 20.01);
	assert_true(e.eta_s > 9.99 && e.eta_s < 10.01); /* 100 at a net 10/s */
	/* Commits in steps around a steady lag: ups and downs are not growth. */
	r = row_new(1, 0, 0, 0);
	for (int i = 0; i <= MQ_LAG_HISTORY; i++) {
		int64_t c = (i / 3) * 30;
		uint64_t end = 50 + (uint64_t)i * 10;
		put(&r, i, c, end);
	}
	assert_int_equal(eval(&r).status, MQ_LAG_OK);
	/* A burst in the middle of the window, being drained: OK. */
	r = row_new(1, 0, 0, 0);
	for (int i = 0; i <= MQ_LAG_HISTORY; i++) {
		uint64_t end = i < 12 ? (uint64_t)i : 1000;
		int64_t c = i < 12 ? i : 12 + (i - 12) * 40;
		put(&r, i, c, end);
	}
	assert_int_equal(eval(&r).status, MQ_LAG_OK);
	/* Growing but the ring is not full: OK until it is. */
	r = row_new(1, 0, 0, 0);
	for (int i = 0; i < MQ_LAG_HISTORY / 2; i++)
		push(&r, i * 10, 20 + (uint64_t)i * 15);
	r.committed = MQ_LAG_HISTORY / 2 * 10;
	r.end = 20 + MQ_LAG_HISTORY / 2 * 15;
	assert_int_equal(eval(&r).status, MQ_LAG_OK);
}

static void test_rate(void **state)
{
	/* The first commit appears mid-window: rate from there. */
	mq_group_row_t r = row_new(1, 0, 0, 0);
	for (int i = 0; i < 10; i++)
		push(&r, i < 4 ? -1 : (i - 4) * 5, 100);
	r.committed = 30; /* 6 s after the sample with 0 */
	r.end = 100;
	mq_lag_eval_t e = eval(&r);
	assert_true(e.rate > 4.99 && e.rate < 5.01);
	assert_true(e.eta_s > 13.99 && e.eta_s < 14.01); /* 70 at 5/s */
	/* The first commit is the present one: unknown. */
	r = row_new(1, 0, 100, 30);
	push(&r, -1, 100);
	push(&r, -1, 100);
	e = eval(&r);
	assert_true(e.rate < 0);
	assert_true(e.eta_s < 0);
	/* A reset backwards: unknown. */
	r = row_new(1, 0, 100, 10);
	push(&r, 50, 100);
	e = eval(&r);
	assert_true(e.rate < 0);
	/* No time between (clock of the present behind the samples). */
	r = row_new(1, 0, 100, 60);
	push(&r, 50, 100);
	mq_lag_evaluate(&r, T0 - 5000, &e);
	assert_true(e.rate < 0);
	assert_int_equal(e.lag, 40);
	/* More samples than the ring holds are not read past it. */
	r = linear(1, 0, 10, 20, 15);
	r.nhist = MQ_LAG_HISTORY + 7;
	mq_lag_evaluate(&r, now_of(&r) - 7 * IVL, &e);
	assert_int_equal(e.status, MQ_LAG_LAGGING);
}

/* Age: from since_ms to the present; 0 when caught up (whatever since
 * says) and when since lies ahead (another host's clock); unknown when
 * the broker did not say. */
static void test_age(void **state)
{
	(void)state;
	mq_group_row_t r = row_new(1, 0, 100, 40);
	r.since_ms = T0 - 2500;
	mq_lag_eval_t e;
	mq_lag_evaluate(&r, T0, &e);
	assert_true(e.age_s > 2.499 && e.age_s < 2.501);
	r.since_ms = T0 + 5000;
	mq_lag_evaluate(&r, T0, &e);
	assert_true(e.age_s == 0);
	r.since_ms = -1;
	mq_lag_evaluate(&r, T0, &e);
	assert_true(e.age_s < 0);
	r = row_new(1, 0, 100, 100);
	r.since_ms = T0 - 60000;
	mq_lag_evaluate(&r, T0, &e);
	assert_true(e.age_s == 0);
	/* the present is never before the newest sample: neither is the age's end */
	r = row_new(0, 0, 100, 40);
	push(&r, 40, 100);
	push(&r, 40, 100);
	r.since_ms = T0 - 1000;
	mq_lag_evaluate(&r, T0 - 1000000, &e);
	assert_true(e.age_s > 1.999 && e.age_s < 2.001);
}

/* The series: each sample's lag, then the present's, with the rules of
 * lag_at (no commit, retention past the commit). */
static void test_fmt_secs(void **state)
{
	(void)state;
	static const struct {
		double s;
		const char *want;
	} c[] = {{-1, "-"},      {0, "0s"},          {0.9, "0s"},         {59.99, "59s"},   {60, "1m00s"},
		 {187, "3m07s"}, {3599, "59m59s"},   {3600, "1h00m"},     {7500, "2h05m"},  {86399, "23h59m"},
		 {86400, "1d00h"}, {356400, "4d03h"}, {8639999, "99d23h"}, {8640000, ">99d"}, {1e300, ">99d"}};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		char b[16];
		mq_lag_fmt_secs(b, sizeof b, c[i].s);
		assert_string_equal(b, c[i].want);
	}
}

static void test_series(void **state)
{
	(void)state;
	uint64_t v[MQ_LAG_POINTS];
	mq_group_row_t r = row_new(1, 10, 50, 30);
	assert_int_equal(mq_lag_series(&r, v), 1);
	assert_int_equal(v[0], 20);
	push(&r, -1, 20); /* no commit: from the start */
	push(&r, 5, 30);  /* below the start: from the start */
	push(&r, 25, 25);
	assert_int_equal(mq_lag_series(&r, v), 4);
	assert_int_equal(v[0], 10);
	assert_int_equal(v[1], 20);
	assert_int_equal(v[2], 0);
	assert_int_equal(v[3], 20);
	r = linear(1, 0, 1, 100, 2);
	assert_int_equal(mq_lag_series(&r, v), MQ_LAG_POINTS);
	assert_int_equal(v[0], 100);
	assert_int_equal(v[MQ_LAG_POINTS - 1], 100 + MQ_LAG_HISTORY);
}

/* Heights: 0 lowest, the largest highest, anything above 0 above the
 * lowest, in order between. */
static void test_spark_levels(void **state)
{
	(void)state;
	for (uint64_t v = 0; v < MQ_LAG_SPARK_LEVELS; v++)
		assert_int_equal(mq_lag_spark_level(v, MQ_LAG_SPARK_LEVELS - 1), (int)v);
	assert_int_equal(mq_lag_spark_level(0, 0), 0);
	assert_int_equal(mq_lag_spark_level(0, 1000000), 0);
	assert_int_equal(mq_lag_spark_level(1, 1000000), 1);
	assert_int_equal(mq_lag_spark_level(1000000, 1000000), MQ_LAG_SPARK_LEVELS - 1);
	assert_int_equal(mq_lag_spark_level(500000, 1000000), 4);
	assert_int_equal(mq_lag_spark_level(UINT64_MAX, UINT64_MAX), MQ_LAG_SPARK_LEVELS - 1);
	assert_int_equal(mq_lag_spark_level(UINT64_MAX - 1, UINT64_MAX), MQ_LAG_SPARK_LEVELS - 1);
	int last = 0;
	for (uint64_t v = 0; v <= 1000; v++) {
		int l = mq_lag_spark_level(v, 1000);
		assert_true(l >= last && l - last <= 1);
		last = l;
	}
	assert_int_equal(last, MQ_LAG_SPARK_LEVELS - 1);
}

static void test_spark(void **state)
{
	(void)state;
	char b[128];
	uint64_t rise[] = {0, 1, 2, 3, 4, 5, 6, 7}, flat[] = {9, 9, 9}, zero[] = {0, 0}, peak[] = {0, 3, 1000, 3, 0};
	assert_int_equal(mq_lag_spark(rise, 8, 0, b, sizeof b), 8);
	assert_string_equal(b, "_.:-=+*#");
	assert_int_equal(mq_lag_spark(rise, 8, 1, b, sizeof b), 8);
	assert_string_equal(b, "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588");
	mq_lag_spark(flat, 3, 0, b, sizeof b);
	assert_string_equal(b, "###");
	mq_lag_spark(zero, 2, 1, b, sizeof b);
	assert_string_equal(b, "\u2581\u2581");
	mq_lag_spark(peak, 5, 0, b, sizeof b);
	assert_string_equal(b, "_.#._");
	/* only whole points, always terminated */
	assert_int_equal(mq_lag_spark(rise, 8, 1, b, 7), 2);
	assert_string_equal(b, "\u2581\u2582");
	assert_int_equal(mq_lag_spark(rise, 8, 0, b, 4), 3);
	assert_string_equal(b, "_.:");
	assert_int_equal(mq_lag_spark(rise, 0, 0, b, sizeof b), 0);
	assert_string_equal(b, "");
}

/* The history a caller keeps for a broker that keeps none (mq-lag over
 * Kafka): samples by name, the newest MQ_LAG_HISTORY, rows coming and
 * going. */
static void test_memory(void **state)
{
	(void)state;
	mq_lag_memory_t *m = mq_lag_memory_new();
	assert_non_null(m);
	mq_group_row_t rows[3];
	memset(rows, 0, sizeof rows);
	snprintf(rows[0].topic, sizeof rows[0].topic, "t");
	snprintf(rows[1].topic, sizeof rows[1].topic, "t");
	rows[1].partition = 1;
	snprintf(rows[2].topic, sizeof rows[2].topic, "u");
	mq_group_info_t g[2];
	memset(g, 0, sizeof g);
	snprintf(g[0].name, sizeof g[0].name, "a");
	snprintf(g[1].name, sizeof g[1].name, "b");
	g[0].rows = rows, g[0].nrows = 2;
	g[1].rows = rows + 2, g[1].nrows = 1;
	/* 40 samples: t/0 commits one a sample, t/1 never, u/0 only in the last 5 */
	for (int i = 0; i < 40; i++) {
		rows[0].committed = i, rows[0].end = 100 + (uint64_t)i;
		rows[1].committed = -1, rows[1].end = 7;
		rows[2].committed = 3, rows[2].end = 9;
		assert_int_equal(mq_lag_remember(m, g, i >= 35 ? 2 : 1, 1000 * (int64_t)i), 0);
	}
	/* recall fills each row's history by name, whatever is in it now */
	memset(rows, 0, sizeof rows);
	snprintf(rows[0].topic, sizeof rows[0].topic, "t");
	snprintf(rows[1].topic, sizeof rows[1].topic, "t");
	rows[1].partition = 1;
	snprintf(rows[2].topic, sizeof rows[2].topic, "u");
	mq_group_row_t swapped[2] = {rows[1], rows[0]};
	g[0].rows = swapped;
	mq_lag_recall(m, g, 2);
	assert_int_equal(swapped[1].nhist, MQ_LAG_HISTORY);
	assert_int_equal(swapped[1].hist[0].committed, 40 - MQ_LAG_HISTORY);
	assert_int_equal(swapped[1].hist[0].ms, 1000 * (40 - MQ_LAG_HISTORY));
	assert_int_equal(swapped[1].hist[MQ_LAG_HISTORY - 1].committed, 39);
	assert_int_equal(swapped[1].hist[MQ_LAG_HISTORY - 1].end, 139);
	assert_int_equal(swapped[0].nhist, MQ_LAG_HISTORY);
	assert_int_equal(swapped[0].hist[3].committed, -1);
	assert_int_equal(rows[2].nhist, 5);
	assert_int_equal(rows[2].hist[4].end, 9);
	/* a row never seen has no history; the same topic in another group is another row */
	snprintf(g[1].name, sizeof g[1].name, "c");
	mq_lag_recall(m, g + 1, 1);
	assert_int_equal(rows[2].nhist, 0);
	/* with a full window the rules apply: commits every sample, lag steady: OK */
	mq_lag_eval_t e;
	swapped[1].committed = 40, swapped[1].end = 140, swapped[1].owner[0] = '?';
	mq_lag_evaluate(&swapped[1], 40000, &e);
	assert_int_equal(e.status, MQ_LAG_OK);
	assert_true(e.rate > 0.9 && e.rate < 1.1);
	mq_lag_memory_free(m);
	mq_lag_memory_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_lag_value),
		cmocka_unit_test(test_stopped),
		cmocka_unit_test(test_stalled),
		cmocka_unit_test(test_not_stalled),
		cmocka_unit_test(test_lagging),
		cmocka_unit_test(test_not_lagging),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_age),
		cmocka_unit_test(test_fmt_secs),
		cmocka_unit_test(test_series),
		cmocka_unit_test(test_spark_levels),
		cmocka_unit_test(test_spark),
		cmocka_unit_test(test_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
