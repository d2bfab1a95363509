/*
 * test_txn.c -- half-message transactions (txn.h) against a real store:
 * prepare, commit and rollback with their refusals, the state across a
 * reopen (a crash: the module is closed without finishing anything),
 * commits interrupted after the decision and in the middle of their
 * partitions, check-back timing and its limits, abandoned prepares, a
 * damaged transaction log, compaction and the memory of decisions.
 * Every check counts the records that reached the topic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "store.h"
#include "txn.h"
#include "wire.h"

#define TOPIC "orders"
#define T0 1700000000000LL /* a wall clock for the check timing */

typedef struct fix {
	char dir[256];
	char state[300];
	mq_store_t *store;
	mq_txns_t *t;
	mq_txn_opts_t o;
	int nreports;
	char reported[2048];
} fix_t;

static void on_report(void *ctx, const char *msg)
{
	fix_t *f = ctx;
	f->nreports++;
	snprintf(f->reported, sizeof(f->reported), "%s", msg);
}

static void reopen(fix_t *f)
{
	mq_err_t err;
	mq_txns_close(f->t);
	f->t = NULL;
	f->nreports = 0;
	f->reported[0] = 0;
	if (mq_txns_open(f->state, f->store, &f->o, &f->t, &err))
		fail_msg("mq_txns_open: %s", err.msg);
}

static int setup(void **state)
{
	fix_t *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_txn.XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
	mq_err_t err;
	if (mq_store_open(f->dir, NULL, &f->store, &err))
		return -1;
	mkdir(f->state, 0755);
	mq_topic_meta_t meta = {.partitions = 3};
	if (mq_store_topic_create(f->store, TOPIC, &meta, &err))
		return -1;
	f->o.timeout_ms = 1000;
	f->o.check_interval_ms = 5000;
	f->o.max_checks = 3;
	mq_log_opts_default(&f->o.log);
	f->o.log.fsync = MQ_FSYNC_ALWAYS;
	f->o.report = on_report;
	f->o.report_ctx = f;
	*state = f;
	reopen(f);
	return 0;
}

static int teardown(void **state)
{
	fix_t *f = *state;
	char cmd[400];
	mq_txns_close(f->t);
	mq_store_close(f->store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	int rc = system(cmd);
	free(f);
	return rc;
}

/* A batch of n records "<tag>-<i>". */
static void make_batch(mq_buf_t *buf, const char *tag, int n)
{
	mq_batch_builder_t b;
	char v[64];
	buf->len = 0;
	mq_batch_begin(&b, buf);
	for (int i = 0; i < n; i++) {
		int len = snprintf(v, sizeof(v), "%s-%d", tag, i);
		assert_int_equal(mq_batch_add(&b, T0, NULL, 0, v, (size_t)len, NULL, 0, NULL, 0), 0);
	}
	mq_batch_finish(&b);
}

static void add(fix_t *f, uint64_t id, uint32_t index, uint32_t part, const char *tag, int n)
{
	mq_buf_t buf = {0};
	mq_err_t err;
	int dup = -1;
	make_batch(&buf, tag, n);
	if (mq_txns_add(f->t, id, index, part, buf.p, buf.len, 0, &dup, &err))
		fail_msg("add: %s", err.msg);
	assert_int_equal(dup, 0);
	mq_buf_free(&buf);
}

/* Prepare id: batches of 2 records to partition 0 (twice) and 2. */
static void prepare(fix_t *f, uint64_t id)
{
	mq_err_t err;
	uint64_t msgs = 0;
	assert_int_equal(mq_txns_begin(f->t, id, TOPIC, T0, &err), 0);
	add(f, id, 0, 0, "a", 2);
	add(f, id, 1, 2, "b", 2);
	add(f, id, 2, 0, "c", 2);
	if (mq_txns_end(f->t, id, 3, T0, &msgs, &err))
		fail_msg("end: %s", err.msg);
	assert_int_equal(msgs, 6);
}

/* Records and batches in partition p; the values joined by ',' in vals. */
static uint64_t count(fix_t *f, uint32_t p, uint64_t *batches, char *vals, size_t vsize)
{
	mq_log_t *log;
	mq_err_t err;
	mq_buf_t buf = {0};
	uint64_t n = 0, nb = 0;
	if (vals)
		vals[0] = 0;
	assert_int_equal(mq_store_log(f->store, TOPIC, p, &log, &err), 0);
	for (uint64_t off = mq_log_start(log); off < mq_log_end(log);) {
		buf.len = 0;
		assert_true(mq_log_read(log, off, 1 << 20, &buf, &err) > 0);
		size_t pos = 0;
		mq_batch_iter_t it;
		mq_record_t r;
		while (pos < buf.len) {
			assert_int_equal(mq_batch_iter_init(&it, buf.p + pos, buf.len - pos, &err), 0);
			assert_true(it.hdr.flags & MQ_BF_TXN);
			while (mq_batch_iter_next(&it, &r) > 0) {
				n++;
				if (vals)
					snprintf(vals + strlen(vals), vsize - strlen(vals), "%s%.*s", *vals ? "," : "",
						 (int)r.value_len, (const char *)r.value);
			}
			nb++;
			off = it.hdr.base_offset + it.hdr.count;
			pos += it.hdr.length;
		}
	}
	mq_buf_free(&buf);
	if (batches)
		*batches = nb;
	return n;
}

static void expect_committed(fix_t *f)
{
	char vals[256];
	uint64_t nb;
	assert_int_equal(count(f, 0, &nb, vals, sizeof(vals)), 4);
	assert_int_equal(nb, 1); /* one batch: all of it or nothing */
	assert_string_equal(vals, "a-0,a-1,c-0,c-1");
	assert_int_equal(count(f, 1, NULL, NULL, 0), 0);
	assert_int_equal(count(f, 2, &nb, vals, sizeof(vals)), 2);
	assert_int_equal(nb, 1);
	assert_string_equal(vals, "b-0,b-1");
}

static void test_commit(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	int was = 0, st, why;
	prepare(f, 42);
	assert_int_equal(count(f, 0, NULL, NULL, 0) + count(f, 2, NULL, NULL, 0), 0); /* invisible */
	assert_int_equal(mq_txns_commit(f->t, 42, "other", MQ_TXN_BY_CLIENT, UINT32_MAX, &was, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "belongs to topic 'orders'"));
	assert_int_equal(mq_txns_commit(f->t, 42, TOPIC, MQ_TXN_BY_CLIENT, UINT32_MAX, &was, &err), 0);
	assert_int_equal(was, MQ_TXN_PREPARED);
	expect_committed(f);
	/* Twice: nothing more. */
	assert_int_equal(mq_txns_commit(f->t, 42, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, &was, &err), 0);
	assert_int_equal(was, MQ_TXN_COMMITTED);
	expect_committed(f);
	assert_int_equal(mq_txns_rollback(f->t, 42, NULL, MQ_TXN_BY_CLIENT, &was, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "was committed"));
	assert_int_equal(mq_txns_pending(f->t), 0);
	/* The decision outlives a restart. */
	reopen(f);
	assert_int_equal(mq_txns_state(f->t, 42, &st, &why), 0);
	assert_int_equal(st, MQ_TXN_COMMITTED);
	assert_int_equal(mq_txns_commit(f->t, 42, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, &was, &err), 0);
	expect_committed(f);
	assert_int_equal(f->nreports, 0);
}

static void test_rollback(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	int was;
	prepare(f, 7);
	assert_int_equal(mq_txns_rollback(f->t, 7, TOPIC, MQ_TXN_BY_CLIENT, &was, &err), 0);
	assert_int_equal(mq_txns_rollback(f->t, 7, TOPIC, MQ_TXN_BY_CLIENT, &was, &err), 0);
	assert_int_equal(was, MQ_TXN_ROLLED_BACK);
	assert_int_equal(mq_txns_commit(f->t, 7, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "was rolled back by mq-pub: it cannot be committed"));
	reopen(f);
	assert_int_equal(mq_txns_commit(f->t, 7, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), -MQ_EINVAL);
	assert_int_equal(count(f, 0, NULL, NULL, 0) + count(f, 2, NULL, NULL, 0), 0);
	assert_int_equal(mq_txns_commit(f->t, 8, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), -MQ_ENOENT);
	assert_non_null(strstr(err.msg, "no transaction 0000000000000008"));
	assert_int_equal(mq_txns_rollback(f->t, 8, NULL, MQ_TXN_BY_CLIENT, NULL, &err), -MQ_ENOENT);
}

/* Retries of every step are answered without a second copy. */
static void test_retries(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	mq_buf_t buf = {0};
	int dup = 0;
	uint64_t msgs;
	assert_int_equal(mq_txns_begin(f->t, 5, TOPIC, T0, &err), 0);
	assert_int_equal(mq_txns_begin(f->t, 5, TOPIC, T0, &err), 0);
	add(f, 5, 0, 1, "x", 3);
	make_batch(&buf, "x", 3);
	assert_int_equal(mq_txns_add(f->t, 5, 0, 1, buf.p, buf.len, 0, &dup, &err), 0);
	assert_int_equal(dup, 1);
	assert_int_equal(mq_txns_add(f->t, 5, 2, 1, buf.p, buf.len, 0, &dup, &err), -MQ_ESEQ);
	assert_int_equal(mq_txns_add(f->t, 5, 1, 3, buf.p, buf.len, 0, &dup, &err), -MQ_ENOENT);
	buf.p[40] ^= 1; /* damaged on the way: refused */
	assert_int_equal(mq_txns_add(f->t, 5, 1, 1, buf.p, buf.len, 0, &dup, &err), -MQ_ECORRUPT);
	assert_int_equal(mq_txns_commit(f->t, 5, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "is not prepared: its mq-pub --prepare has not finished"));
	assert_int_equal(mq_txns_end(f->t, 5, 1, T0, &msgs, &err), 0);
	assert_int_equal(mq_txns_end(f->t, 5, 1, T0, &msgs, &err), 0);
	assert_int_equal(msgs, 3);
	assert_int_equal(mq_txns_begin(f->t, 5, TOPIC, T0, &err), -MQ_EEXIST);
	assert_int_equal(mq_txns_commit(f->t, 5, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), 0);
	assert_int_equal(mq_txns_end(f->t, 5, 1, T0, &msgs, &err), -MQ_EINVAL);
	assert_int_equal(count(f, 1, NULL, NULL, 0), 3);
	mq_buf_free(&buf);
}

/* A prepare interrupted by a restart goes on where it was. */
static void test_prepare_across_restart(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	uint64_t msgs;
	assert_int_equal(mq_txns_begin(f->t, 9, TOPIC, T0, &err), 0);
	add(f, 9, 0, 0, "a", 2);
	reopen(f);
	add(f, 9, 1, 2, "b", 2);
	add(f, 9, 2, 0, "c", 2);
	reopen(f);
	assert_int_equal(mq_txns_end(f->t, 9, 3, T0, &msgs, &err), 0);
	reopen(f);
	assert_int_equal(mq_txns_commit(f->t, 9, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), 0);
	expect_committed(f);
}

/* A crash after the decision, before any append: finished at open. */
static void test_crash_after_decision(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	prepare(f, 11);
	assert_int_equal(mq_txns_commit(f->t, 11, NULL, MQ_TXN_BY_CLIENT, 0, NULL, &err), 0);
	assert_int_equal(count(f, 0, NULL, NULL, 0) + count(f, 2, NULL, NULL, 0), 0);
	reopen(f);
	expect_committed(f);
	reopen(f); /* and never again */
	expect_committed(f);
}

/* A crash between the partitions: the one done is not done twice. */
static void test_crash_mid_append(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	prepare(f, 12);
	assert_int_equal(mq_txns_commit(f->t, 12, NULL, MQ_TXN_BY_CLIENT, 1, NULL, &err), 0);
	assert_int_equal(count(f, 0, NULL, NULL, 0), 4);
	assert_int_equal(count(f, 2, NULL, NULL, 0), 0);
	reopen(f);
	expect_committed(f);
	/* Same, with other messages appended to the partitions in between. */
	prepare(f, 13);
	assert_int_equal(mq_txns_commit(f->t, 13, NULL, MQ_TXN_BY_CLIENT, 1, NULL, &err), 0);
	prepare(f, 14);
	assert_int_equal(mq_txns_commit(f->t, 14, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), 0);
	reopen(f);
	assert_int_equal(count(f, 0, NULL, NULL, 0), 12);
	assert_int_equal(count(f, 2, NULL, NULL, 0), 6);
	/* A commit asked again while unfinished finishes it. */
	prepare(f, 15);
	assert_int_equal(mq_txns_commit(f->t, 15, NULL, MQ_TXN_BY_CLIENT, 1, NULL, &err), 0);
	assert_int_equal(mq_txns_commit(f->t, 15, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), 0);
	assert_int_equal(count(f, 0, NULL, NULL, 0), 16);
	assert_int_equal(count(f, 2, NULL, NULL, 0), 8);
	assert_int_equal(mq_txns_pending(f->t), 0);
}

static void test_checks(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	mq_buf_t msgs = {0};
	uint64_t id = 0;
	prepare(f, 21);
	assert_int_equal(mq_txns_next_check(f->t, TOPIC), T0 + 1000);
	assert_int_equal(mq_txns_next_check(f->t, "other"), INT64_MAX);
	assert_int_equal(mq_txns_next_due(f->t), T0 + 6000); /* no checker by then: said */
	assert_int_equal(mq_txns_check_next(f->t, TOPIC, T0 + 999, &id, &msgs, &err), 0);
	assert_int_equal(mq_txns_check_next(f->t, "other", T0 + 1000, &id, &msgs, &err), 0);
	assert_int_equal(mq_txns_check_next(f->t, TOPIC, T0 + 1000, &id, &msgs, &err), 1);
	assert_int_equal(id, 21);
	/* The messages, batch after batch as they were added. */
	mq_batch_iter_t it;
	mq_record_t r;
	size_t pos = 0;
	int n = 0;
	while (pos < msgs.len) {
		assert_int_equal(mq_batch_iter_init(&it, msgs.p + pos, msgs.len - pos, &err), 0);
		while (mq_batch_iter_next(&it, &r) > 0)
			n++;
		pos += it.hdr.length;
	}
	assert_int_equal(n, 6);
	/* Next check one interval later; the count survives a restart. */
	assert_int_equal(mq_txns_check_next(f->t, TOPIC, T0 + 5999, &id, &msgs, &err), 0);
	reopen(f);
	assert_int_equal(mq_txns_next_check(f->t, TOPIC), T0 + 6000);
	assert_int_equal(mq_txns_check_next(f->t, TOPIC, T0 + 6000, &id, &msgs, &err), 1);
	assert_int_equal(mq_txns_check_next(f->t, TOPIC, T0 + 11000, &id, &msgs, &err), 1);
	/* Three checks and no verdict: rolled back one interval later. */
	assert_int_equal(mq_txns_check_next(f->t, TOPIC, T0 + 16000, &id, &msgs, &err), 0);
	assert_int_equal(mq_txns_next_check(f->t, TOPIC), INT64_MAX);
	assert_int_equal(mq_txns_next_due(f->t), T0 + 16000);
	assert_int_equal(mq_txns_tick(f->t, T0 + 15999, &err), 0);
	assert_int_equal(mq_txns_pending(f->t), 1);
	assert_int_equal(mq_txns_tick(f->t, T0 + 16000, &err), 0);
	assert_int_equal(mq_txns_pending(f->t), 0);
	assert_int_equal(f->nreports, 1);
	assert_non_null(strstr(f->reported, "no verdict after 3 checks: rolled back"));
	int st, why;
	assert_int_equal(mq_txns_state(f->t, 21, &st, &why), 0);
	assert_int_equal(st, MQ_TXN_ROLLED_BACK);
	assert_int_equal(why, MQ_TXN_BY_CHECKS);
	assert_int_equal(count(f, 0, NULL, NULL, 0) + count(f, 2, NULL, NULL, 0), 0);
	mq_buf_free(&msgs);
}

/* Nobody asks: said once, never decided silently. */
static void test_no_checker(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	prepare(f, 22);
	for (int64_t t = T0; t < T0 + 100000; t += 500)
		assert_int_equal(mq_txns_tick(f->t, t, &err), 0);
	assert_int_equal(mq_txns_pending(f->t), 1);
	/* Nothing more to do until a checker comes: no reason to wake up. */
	assert_int_equal(mq_txns_next_due(f->t), INT64_MAX);
	assert_int_equal(f->nreports, 1);
	assert_non_null(strstr(f->reported, "no checker asked for it"));
}

static void test_abandoned(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	assert_int_equal(mq_txns_begin(f->t, 31, TOPIC, T0, &err), 0);
	reopen(f); /* the prepare's mq-pub died with the broker */
	int64_t active = mq_now_ms(); /* adds are stamped with the clock */
	add(f, 31, 0, 0, "a", 1);
	assert_int_equal(mq_txns_tick(f->t, active - 1000, &err), 0);
	assert_int_equal(mq_txns_pending(f->t), 1);
	assert_int_equal(mq_txns_tick(f->t, active + 10000, &err), 0);
	assert_int_equal(mq_txns_pending(f->t), 0);
	assert_non_null(strstr(f->reported, "never finished"));
	assert_int_equal(mq_txns_commit(f->t, 31, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "because its prepare never finished"));
}

/* A count that does not match what the broker holds: rolled back. */
static void test_end_mismatch(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	uint64_t msgs;
	assert_int_equal(mq_txns_begin(f->t, 32, TOPIC, T0, &err), 0);
	add(f, 32, 0, 0, "a", 1);
	assert_int_equal(mq_txns_end(f->t, 32, 2, T0, &msgs, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "holds 1 batch of it, not 2"));
	assert_int_equal(mq_txns_commit(f->t, 32, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), -MQ_EINVAL);
}

/* The half messages damaged on disk: the transaction cannot be
 * committed, says so, and nothing reaches the topic. */
static void test_lost_halves(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	char seg[512];
	prepare(f, 41);
	mq_txns_close(f->t);
	f->t = NULL;
	/* Flip a byte in the second 'A' record (the third batch of the log). */
	snprintf(seg, sizeof(seg), "%s/txn/00000000000000000000.log", f->state);
	FILE *fp = fopen(seg, "r+b");
	assert_non_null(fp);
	uint8_t hdr[16];
	long pos = 0;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(fseek(fp, pos, SEEK_SET), 0);
		assert_int_equal(fread(hdr, 1, 16, fp), 16);
		pos += (long)mq_get_u32(hdr + 8);
	}
	fseek(fp, pos + 100, SEEK_SET);
	int c = fgetc(fp);
	fseek(fp, pos + 100, SEEK_SET);
	fputc(c ^ 0x55, fp);
	fclose(fp);
	reopen(f);
	assert_int_equal(f->nreports, 1);
	assert_non_null(strstr(f->reported, "kept the 2 records before it"));
	/* What is left of it looks like a prepare that never ended. */
	assert_int_equal(mq_txns_commit(f->t, 41, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "is not prepared: its mq-pub --prepare has not finished"));
	assert_int_equal(mq_txns_tick(f->t, mq_now_ms() + 60000, &err), 0);
	assert_int_equal(mq_txns_pending(f->t), 0);
	assert_int_equal(mq_txns_commit(f->t, 41, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), -MQ_EINVAL);
	assert_int_equal(count(f, 0, NULL, NULL, 0) + count(f, 2, NULL, NULL, 0), 0);
	/* The log was rewritten without the damage: the next open is quiet. */
	reopen(f);
	assert_int_equal(f->nreports, 0);
	prepare(f, 43);
	assert_int_equal(mq_txns_commit(f->t, 43, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), 0);
	expect_committed(f);
}

/* Compaction keeps what is live and what was decided, drops the rest. */
static void test_compaction(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	f->o.compact_bytes = 4096;
	reopen(f);
	prepare(f, 1000); /* stays prepared through every compaction */
	for (uint64_t id = 1001; id < 1200; id++) {
		prepare(f, id);
		if (id % 2)
			assert_int_equal(mq_txns_rollback(f->t, id, NULL, MQ_TXN_BY_CLIENT, NULL, &err), 0);
		else
			assert_int_equal(mq_txns_commit(f->t, id, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), 0);
		assert_int_equal(mq_txns_tick(f->t, T0, &err), 0);
	}
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/txn", f->state);
	struct stat st;
	char seg0[512];
	snprintf(seg0, sizeof(seg0), "%s/00000000000000000000.log", dir);
	assert_int_equal(stat(seg0, &st), -1); /* the first segment is gone */
	reopen(f);
	int s, why;
	assert_int_equal(mq_txns_state(f->t, 1001, &s, &why), 0);
	assert_int_equal(s, MQ_TXN_ROLLED_BACK);
	assert_int_equal(mq_txns_state(f->t, 1198, &s, &why), 0);
	assert_int_equal(s, MQ_TXN_COMMITTED);
	assert_int_equal(mq_txns_state(f->t, 1000, &s, &why), 0);
	assert_int_equal(s, MQ_TXN_PREPARED);
	uint64_t before = count(f, 0, NULL, NULL, 0);
	assert_int_equal(mq_txns_commit(f->t, 1000, NULL, MQ_TXN_BY_CLIENT, UINT32_MAX, NULL, &err), 0);
	assert_int_equal(count(f, 0, NULL, NULL, 0), before + 4);
	assert_int_equal(before, 99 * 4);
	/* Dead records from before a restart count (the replay counts them),
	 * and remembered decisions are written many to a batch. */
	f->o.compact_bytes = 256u << 10;
	reopen(f);
	for (uint64_t id = 2000; id < 3000; id++) {
		prepare(f, id);
		assert_int_equal(mq_txns_rollback(f->t, id, NULL, MQ_TXN_BY_CLIENT, NULL, &err), 0);
	}
	reopen(f);
	struct stat big;
	char seg[512];
	snprintf(seg, sizeof(seg), "%s/txn", f->state);
	assert_int_equal(mq_txns_tick(f->t, T0, &err), 0);
	assert_int_equal(mq_txns_state(f->t, 2999, &s, &why), 0);
	DIR *d = opendir(seg);
	struct dirent *e;
	uint64_t total = 0;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".log")) {
			char path[1024];
			snprintf(path, sizeof(path), "%s/%s", seg, e->d_name);
			assert_int_equal(stat(path, &big), 0);
			total += (uint64_t)big.st_size;
		}
	closedir(d);
	assert_true(total < (64u << 10)); /* compacted at the first tick */
	reopen(f);
	assert_int_equal(mq_txns_state(f->t, 2000, &s, &why), 0);
	assert_int_equal(s, MQ_TXN_ROLLED_BACK);
	assert_int_equal(mq_txns_state(f->t, 1002, &s, &why), 0);
	assert_int_equal(s, MQ_TXN_COMMITTED);
}

/* Only the last `remember` decisions are kept. */
static void test_remember(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	f->o.remember = 2;
	reopen(f);
	for (uint64_t id = 1; id <= 3; id++) {
		prepare(f, id);
		assert_int_equal(mq_txns_rollback(f->t, id, NULL, MQ_TXN_BY_CLIENT, NULL, &err), 0);
	}
	int s, why;
	assert_int_equal(mq_txns_state(f->t, 1, &s, &why), -MQ_ENOENT);
	assert_int_equal(mq_txns_state(f->t, 3, &s, &why), 0);
	reopen(f);
	assert_int_equal(mq_txns_state(f->t, 1, &s, &why), -MQ_ENOENT);
	assert_int_equal(mq_txns_state(f->t, 2, &s, &why), 0);
	assert_int_equal(mq_txns_state(f->t, 3, &s, &why), 0);
}

static void test_ids_and_verdicts(void **state)
{
	mq_err_t err;
	uint64_t id;
	assert_int_equal(mq_txn_id_parse("00000000deadBEEF", &id, &err), 0);
	assert_int_equal(id, 0xdeadbeefull);
	assert_int_equal(mq_txn_id_parse("ffffffffffffffff", &id, &err), 0);
	assert_int_equal(id, UINT64_MAX);
	const char *bad[] = {"", "0", "0000000000000000", "1ffffffffffffffff", "12g4", "-1", " 12", "12 "};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(mq_txn_id_parse(bad[i], &id, &err), -MQ_EINVAL);
		assert_non_null(strstr(err.msg, "expected the 16 hex digits"));
	}
	assert_int_not_equal(mq_txn_id_new(), 0);
	assert_int_not_equal(mq_txn_id_new(), mq_txn_id_new());
	/* Wait statuses as waitpid gives them: exit code << 8, or a signal. */
	assert_int_equal(mq_txn_verdict_of(0 << 8), MQ_VERDICT_COMMIT);
	assert_int_equal(mq_txn_verdict_of(1 << 8), MQ_VERDICT_ROLLBACK);
	assert_int_equal(mq_txn_verdict_of(2 << 8), MQ_VERDICT_UNKNOWN);
	assert_int_equal(mq_txn_verdict_of(127 << 8), MQ_VERDICT_UNKNOWN);
	assert_int_equal(mq_txn_verdict_of(9), MQ_VERDICT_UNKNOWN); /* killed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_across_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_after_decision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_mid_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_checker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abandoned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_end_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_halves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remember, setup, teardown),
		cmocka_unit_test(test_ids_and_verdicts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
