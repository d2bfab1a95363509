/*
 * test_delay.c -- lib/delay.c over a real store in a temporary
 * directory: batches come out when due, in (due, arrival) order, each
 * once; the schedule is rebuilt at open; a move cut short after its copy
 * is finished without a second copy, one cut short before its copy is
 * made again; a copy a failed sync took back is moved again; a batch
 * whose topic is gone is dropped and said.
 */
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "batch.h"
#include "delay.h"
#include "log.h"
#include "store.h"

typedef struct fix {
	char tmp[64];
	char data[128], state[160];
	mq_store_t *st;
	mq_delay_t *d;
	mq_log_opts_t o;
	char said[2048];
	int nsaid;
} fix_t;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

static void on_say(void *ctx, const char *msg)
{
	fix_t *f = ctx;
	snprintf(f->said, sizeof(f->said), "%s", msg);
	f->nsaid++;
}

static void open_all(fix_t *f)
{
	mq_err_t err;
	assert_int_equal(mq_store_open(f->data, &f->o, &f->st, &err), 0);
	int rc = mq_delay_open(f->state, &f->o, f->st, on_say, f, &f->d, &err);
	if (rc)
		fail_msg("mq_delay_open: %s", err.msg);
}

static void close_all(fix_t *f)
{
	mq_delay_close(f->d);
	mq_store_close(f->st);
	f->d = NULL;
	f->st = NULL;
}

static int setup(void **state)
{
	fix_t *f = calloc(1, sizeof(*f));
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/test_delay.XXXXXX");
	if (!f || !mkdtemp(f->tmp))
		return -1;
	snprintf(f->data, sizeof(f->data), "%s/data", f->tmp);
	snprintf(f->state, sizeof(f->state), "%s/state", f->data);
	mq_log_opts_default(&f->o);
	f->o.fsync = MQ_FSYNC_ALWAYS;
	open_all(f);
	mq_topic_meta_t m = {.partitions = 2};
	mq_err_t err;
	assert_int_equal(mq_store_topic_create(f->st, "t", &m, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fix_t *f = *state;
	close_all(f);
	nftw(f->tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* A batch with one record `v`, due at due, in buf. */
static void build(mq_buf_t *buf, const char *v, int64_t due)
{
	mq_batch_builder_t b;
	buf->len = 0;
	mq_batch_begin(&b, buf);
	b.hdr.deliver_at = due;
	b.hdr.producer_id = 42;
	assert_int_equal(mq_batch_add(&b, 1000, NULL, 0, v, strlen(v), NULL, 0, NULL, 0), 0);
	mq_batch_finish(&b);
}

/* Schedule one batch with one record `v`, due at due, for t/p. */
static uint64_t add(fix_t *f, uint32_t p, const char *v, int64_t due)
{
	mq_buf_t buf = {0};
	mq_err_t err;
	uint64_t x;
	build(&buf, v, due);
	assert_int_equal(mq_delay_add(f->d, "t", p, buf.p, buf.len, due, &x, &err), 0);
	mq_buf_free(&buf);
	return x;
}

static uint32_t move(fix_t *f, int64_t now)
{
	uint32_t moved;
	mq_err_t err;
	assert_int_equal(mq_delay_move(f->d, now, 1000, &moved, &err), 0);
	return moved;
}

/* Each commit a minute after the one before (compaction is rate-limited). */
static void commit(fix_t *f)
{
	static int64_t mono = 0;
	mq_err_t err;
	mono += 60000;
	assert_int_equal(mq_store_commit(f->st, mono, &err), 0);
	assert_int_equal(mq_delay_commit(f->d, 0, mono, &err), 0);
}

/* The values in t/p, in offset order, joined by spaces. */
static const char *values(fix_t *f, uint32_t p)
{
	static char out[4096];
	mq_log_t *log;
	mq_buf_t buf = {0};
	mq_err_t err;
	out[0] = 0;
	assert_int_equal(mq_store_log(f->st, "t", p, &log, &err), 0);
	for (uint64_t off = mq_log_start(log); off < mq_log_end(log);) {
		size_t at = buf.len;
		mq_batch_hdr_t h;
		assert_true(mq_log_read(log, off, 1 << 20, &buf, &err) > 0);
		for (; at < buf.len && mq_batch_hdr_decode(buf.p + at, buf.len - at, &h, &err) == 0; at += h.length)
			off = h.base_offset + h.count;
	}
	for (size_t pos = 0; pos < buf.len;) {
		mq_batch_iter_t it;
		mq_record_t r;
		assert_int_equal(mq_batch_iter_init(&it, buf.p + pos, buf.len - pos, &err), 0);
		while (mq_batch_iter_next(&it, &r) > 0)
			snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%.*s", out[0] ? " " : "", (int)r.value_len,
				 (const char *)r.value);
		pos += it.hdr.length;
	}
	mq_buf_free(&buf);
	return out;
}

static void test_due_order(void **state)
{
	fix_t *f = *state;
	add(f, 0, "c", 300);
	add(f, 0, "a", 100);
	add(f, 0, "b2", 200);
	add(f, 0, "b1", 200); /* same due: arrival order... */
	add(f, 1, "p1", 150);
	assert_int_equal(mq_delay_pending(f->d), 5);
	assert_int_equal(mq_delay_next_due(f->d), 100);
	assert_int_equal(move(f, 99), 0);
	assert_int_equal(move(f, 100), 1);
	commit(f);
	assert_string_equal(values(f, 0), "a");
	assert_int_equal(mq_delay_next_due(f->d), 150);
	assert_int_equal(move(f, 250), 3);
	commit(f);
	assert_string_equal(values(f, 0), "a b2 b1");
	assert_string_equal(values(f, 1), "p1");
	assert_int_equal(move(f, 1000), 1);
	commit(f);
	assert_string_equal(values(f, 0), "a b2 b1 c");
	assert_int_equal(mq_delay_pending(f->d), 0);
	assert_int_equal(mq_delay_next_due(f->d), INT64_MAX);
	/* Nothing comes back at the next open. */
	close_all(f);
	open_all(f);
	assert_int_equal(mq_delay_pending(f->d), 0);
	assert_int_equal(move(f, 5000), 0);
	assert_string_equal(values(f, 0), "a b2 b1 c");
	assert_int_equal(f->nsaid, 0);
}

/* A turn whose commit did not run (its state log failed first): the
 * next move copies only what is newly due, and one commit settles both. */
static void test_two_moves_one_commit(void **state)
{
	fix_t *f = *state;
	add(f, 0, "a", 100);
	add(f, 0, "b", 200);
	assert_int_equal(move(f, 100), 1);
	assert_int_equal(move(f, 200), 1);
	commit(f);
	assert_string_equal(values(f, 0), "a b");
	assert_int_equal(move(f, 300), 0);
	close_all(f);
	open_all(f);
	assert_int_equal(mq_delay_pending(f->d), 0);
	assert_string_equal(values(f, 0), "a b");
}

/* The copy carries the due time as its timestamp (distances kept). */
static void test_timestamp_is_due_time(void **state)
{
	fix_t *f = *state;
	mq_buf_t buf = {0};
	mq_batch_builder_t b;
	mq_batch_iter_t it;
	mq_record_t r;
	mq_log_t *log;
	mq_err_t err;
	uint64_t x;
	mq_batch_begin(&b, &buf);
	b.hdr.deliver_at = 50000;
	assert_int_equal(mq_batch_add(&b, 1000, NULL, 0, "a", 1, NULL, 0, NULL, 0), 0);
	assert_int_equal(mq_batch_add(&b, 1250, NULL, 0, "b", 1, NULL, 0, NULL, 0), 0);
	mq_batch_finish(&b);
	assert_int_equal(mq_delay_add(f->d, "t", 0, buf.p, buf.len, 50000, &x, &err), 0);
	assert_int_equal(move(f, 50000), 1);
	commit(f);
	buf.len = 0;
	assert_int_equal(mq_store_log(f->st, "t", 0, &log, &err), 0);
	assert_true(mq_log_read(log, 0, 1 << 20, &buf, &err) > 0);
	assert_int_equal(mq_batch_verify(buf.p, buf.len, &err), 0);
	assert_int_equal(mq_batch_iter_init(&it, buf.p, buf.len, &err), 0);
	assert_int_equal(it.hdr.first_ts, 50000);
	assert_int_equal(it.hdr.max_ts, 50250);
	assert_int_equal(mq_batch_iter_next(&it, &r), 1);
	assert_int_equal(r.timestamp, 50000);
	assert_int_equal(mq_batch_iter_next(&it, &r), 1);
	assert_int_equal(r.timestamp, 50250);
	mq_buf_free(&buf);
}

static void test_rebuilt_at_open(void **state)
{
	fix_t *f = *state;
	add(f, 0, "late", 500);
	add(f, 0, "early", 100);
	add(f, 0, "gone", 50);
	assert_int_equal(move(f, 60), 1);
	commit(f);
	close_all(f);
	open_all(f);
	assert_int_equal(mq_delay_pending(f->d), 2);
	assert_int_equal(mq_delay_next_due(f->d), 100);
	assert_int_equal(move(f, 1000), 2);
	commit(f);
	assert_string_equal(values(f, 0), "gone early late");
}

static void test_cut_after_copy(void **state)
{
	fix_t *f = *state;
	add(f, 0, "once", 100);
	add(f, 0, "later", 900);
	assert_int_equal(move(f, 100), 1);
	/* mq-serve dies here: copied, not marked done. */
	mq_err_t err;
	assert_int_equal(mq_store_commit(f->st, 0, &err), 0);
	close_all(f);
	open_all(f);
	assert_non_null(strstr(f->said, "1 move to its partition cut short when mq-serve stopped was found complete"));
	assert_int_equal(mq_delay_pending(f->d), 1);
	assert_int_equal(move(f, 1000), 1);
	commit(f);
	assert_string_equal(values(f, 0), "once later");
}

static void test_cut_before_copy(void **state)
{
	fix_t *f = *state;
	mq_log_t *log;
	mq_err_t err;
	add(f, 0, "x", 100);
	assert_int_equal(move(f, 100), 1);
	/* The copy never reached the disk: take it away again, as if mq-serve
	 * had died between the intent and the append. */
	assert_int_equal(mq_store_log(f->st, "t", 0, &log, &err), 0);
	assert_int_equal(mq_log_truncate_all(log, 0, &err), 0);
	assert_string_equal(values(f, 0), "");
	close_all(f);
	open_all(f);
	assert_int_equal(mq_delay_pending(f->d), 1);
	assert_int_equal(move(f, 1000), 1);
	commit(f);
	assert_string_equal(values(f, 0), "x");
}

/* Segment files of the schedule; *oldest: the lowest base offset. */
static int segments(fix_t *f, uint64_t *oldest)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/delay", f->state);
	DIR *dir = opendir(path);
	struct dirent *e;
	int n = 0;
	assert_non_null(dir);
	*oldest = UINT64_MAX;
	while ((e = readdir(dir)))
		if (mq_log_is_segment(e->d_name)) {
			uint64_t base = strtoull(e->d_name, NULL, 10);
			if (base < *oldest)
				*oldest = base;
			n++;
		}
	closedir(dir);
	return n;
}

static void test_done_segments_deleted(void **state)
{
	fix_t *f = *state;
	char v[16];
	close_all(f);
	f->o.segment_bytes = 4096; /* a few batches a segment */
	open_all(f);
	for (int i = 0; i < 200; i++) {
		snprintf(v, sizeof(v), "m%d", i);
		add(f, 0, v, 1000 + i);
	}
	add(f, 0, "last", 5000);
	commit(f);
	uint64_t oldest;
	assert_true(segments(f, &oldest) > 5);
	assert_int_equal(oldest, 0);
	assert_int_equal(move(f, 1100), 101);
	commit(f);
	/* m0..m100 are at offsets 1, 3, ... 201 (each after its T record):
	 * the segments that held only those are gone, m101's stays. */
	segments(f, &oldest);
	assert_true(oldest > 150);
	assert_true(oldest <= 202);
	assert_int_equal(move(f, 2000), 99);
	commit(f);
	close_all(f);
	open_all(f);
	assert_int_equal(mq_delay_pending(f->d), 1);
	assert_int_equal(move(f, 5000), 1);
	commit(f);
	/* Only the segments from the last batch's on remain. */
	segments(f, &oldest);
	assert_true(oldest > 390);
	close_all(f);
	open_all(f);
	assert_int_equal(mq_delay_pending(f->d), 0);
	const char *all = values(f, 0);
	assert_non_null(strstr(all, "m0 m1 m2 "));
	assert_non_null(strstr(all, " m199 last"));
}

static void test_retry_found(void **state)
{
	fix_t *f = *state;
	mq_buf_t buf = {0};
	uint64_t x, got;
	for (int i = 0; i < 300; i++) { /* enough to grow the index a few times */
		char v[16];
		snprintf(v, sizeof(v), "n%d", i);
		add(f, 0, v, 100 + i);
	}
	x = add(f, 1, "r", 500);
	build(&buf, "r", 500);
	assert_int_equal(mq_delay_find(f->d, "t", 1, buf.p, buf.len, &got), 1);
	assert_int_equal(got, x);
	/* Another partition, another byte: not the same batch. */
	assert_int_equal(mq_delay_find(f->d, "t", 0, buf.p, buf.len, &got), 0);
	build(&buf, "s", 500);
	assert_int_equal(mq_delay_find(f->d, "t", 1, buf.p, buf.len, &got), 0);
	/* Still known after a restart, gone once moved. */
	close_all(f);
	open_all(f);
	build(&buf, "r", 500);
	assert_int_equal(mq_delay_find(f->d, "t", 1, buf.p, buf.len, &got), 1);
	assert_int_equal(got, x);
	assert_int_equal(move(f, 450), 300);
	commit(f);
	assert_int_equal(mq_delay_find(f->d, "t", 1, buf.p, buf.len, &got), 1);
	assert_int_equal(move(f, 500), 1);
	commit(f);
	assert_int_equal(mq_delay_find(f->d, "t", 1, buf.p, buf.len, &got), 0);
	build(&buf, "n7", 107);
	assert_int_equal(mq_delay_find(f->d, "t", 0, buf.p, buf.len, &got), 0);
	mq_buf_free(&buf);
}

static void test_topic_gone(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	add(f, 1, "lost", 100);
	add(f, 0, "kept", 100);
	assert_int_equal(mq_store_topic_delete(f->st, "t", &err), 0);
	mq_topic_meta_t m = {.partitions = 1};
	assert_int_equal(mq_store_topic_create(f->st, "t", &m, &err), 0);
	assert_int_equal(move(f, 100), 1);
	commit(f);
	assert_non_null(strstr(f->said, "partition 1 of topic 't' was dropped when due"));
	assert_string_equal(values(f, 0), "kept");
	assert_int_equal(mq_delay_pending(f->d), 0);
	close_all(f);
	open_all(f);
	assert_int_equal(mq_delay_pending(f->d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_due_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_moves_one_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timestamp_is_due_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuilt_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut_after_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut_before_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topic_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_done_segments_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_found, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
