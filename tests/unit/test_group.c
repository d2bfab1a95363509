/*
 * test_group.c -- the consumer-group coordinator's state files: the
 * offsets log and the lag history, damaged the ways a disk or a person
 * damages them (a flipped byte, a cut, garbage, an empty file), then
 * reopened: what came before the damage is kept, the loss is reported
 * once through the report callback, and the next open is clean.
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
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "group.h"
#include "log.h"
#include "store.h"

typedef struct fix {
	char dir[256];
	char state[300];
	char seg[400];  /* the offsets log's first segment */
	char hist[400]; /* the lag history */
	mq_store_t *store;
	mq_groups_t *g;
	int nreports;
	char reported[2048];
} fix_t;

static void on_report(void *ctx, const char *msg)
{
	fix_t *f = ctx;
	f->nreports++;
	snprintf(f->reported, sizeof(f->reported), "%s", msg);
}

static int setup(void **state)
{
	fix_t *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_group.XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
	snprintf(f->seg, sizeof(f->seg), "%s/offsets/00000000000000000000.log", f->state);
	snprintf(f->hist, sizeof(f->hist), "%s/lag-history", f->state);
	mq_err_t err;
	if (mq_store_open(f->dir, NULL, &f->store, &err))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fix_t *f = *state;
	char cmd[400];
	mq_groups_close(f->g);
	mq_store_close(f->store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	int rc = system(cmd);
	free(f);
	return rc;
}

/* (Re)open the coordinator; expect `reports` lines about damage. */
static void reopen(fix_t *f, int reports)
{
	mq_err_t err;
	mq_log_opts_t o;
	mq_log_opts_default(&o);
	mq_groups_close(f->g);
	f->g = NULL;
	f->nreports = 0;
	f->reported[0] = 0;
	if (mq_groups_open(f->state, &o, f->store, on_report, f, &f->g, &err))
		fail_msg("open: %s", err.msg);
	if (f->nreports != reports)
		fail_msg("%d reports, expected %d; last: %s", f->nreports, reports, f->reported);
}

static void commit(fix_t *f, uint64_t off)
{
	uint32_t p = 0;
	mq_err_t err;
	if (mq_groups_set_offsets(f->g, "g", "t", &p, &off, 1, &err))
		fail_msg("commit: %s", err.msg);
}

/* The committed offset of g/t/0, or -1. */
static int64_t committed(fix_t *f)
{
	uint64_t off;
	return mq_groups_committed(f->g, "g", "t", 0, &off) ? (int64_t)off : -1;
}

static off_t size_of(const char *p)
{
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	return st.st_size;
}

static void flip(const char *p, off_t at)
{
	FILE *fp = fopen(p, "r+");
	assert_non_null(fp);
	assert_int_equal(fseeko(fp, at, SEEK_SET), 0);
	int c = fgetc(fp);
	assert_int_equal(fseeko(fp, at, SEEK_SET), 0);
	fputc(c ^ 0x20, fp);
	fclose(fp);
}

static void garbage(const char *p, size_t n)
{
	FILE *fp = fopen(p, "w");
	assert_non_null(fp);
	for (size_t i = 0; i < n; i++)
		fputc((int)((i * 7919 + 13) & 0xff), fp);
	fclose(fp);
}

/* The number after "kept the " in the report. */
static int64_t kept(const fix_t *f)
{
	const char *k = strstr(f->reported, "kept the ");
	if (!k)
		fail_msg("no 'kept the N' in: %s", f->reported);
	return strtoll(k + 9, NULL, 10);
}

/* 100 commits (offsets 1..100), each its own batch; closed. */
static void hundred_commits(fix_t *f)
{
	reopen(f, 0);
	for (uint64_t i = 1; i <= 100; i++)
		commit(f, i);
	reopen(f, 0); /* a clean log says nothing */
	assert_int_equal(committed(f), 100);
	mq_groups_close(f->g);
	f->g = NULL;
}

/* After damage: reported once, naming the file; the group resumes from
 * the last commit before the damage; the next open is silent; commits
 * go on. */
static void check_resumes(fix_t *f, int64_t at_least)
{
	assert_non_null(strstr(f->reported, f->seg));
	int64_t k = kept(f);
	assert_true(k >= at_least && k < 100);
	assert_int_equal(committed(f), k ? k : -1);
	reopen(f, 0);
	assert_int_equal(committed(f), k ? k : -1);
	commit(f, 500);
	reopen(f, 0);
	assert_int_equal(committed(f), 500);
}

static void test_offsets_flipped(void **state)
{
	fix_t *f = *state;
	hundred_commits(f);
	flip(f->seg, size_of(f->seg) / 2);
	reopen(f, 1);
	check_resumes(f, 40);
}

static void test_offsets_cut(void **state)
{
	fix_t *f = *state;
	hundred_commits(f);
	assert_int_equal(truncate(f->seg, size_of(f->seg) / 2 + 3), 0);
	reopen(f, 1);
	check_resumes(f, 40);
}

static void test_offsets_garbage(void **state)
{
	fix_t *f = *state;
	hundred_commits(f);
	garbage(f->seg, (size_t)size_of(f->seg));
	reopen(f, 1);
	check_resumes(f, 0);
}

static void test_offsets_emptied(void **state)
{
	fix_t *f = *state;
	hundred_commits(f);
	assert_int_equal(truncate(f->seg, 0), 0);
	reopen(f, 1);
	assert_non_null(strstr(f->reported, "offsets"));
	assert_int_equal(committed(f), -1);
	reopen(f, 0);
	commit(f, 500);
	reopen(f, 0);
	assert_int_equal(committed(f), 500);
}

static int64_t end_of(void *ctx, const char *topic, uint32_t p)
{
	(void)topic;
	(void)p;
	return *(int64_t *)ctx;
}

static uint32_t history_len(fix_t *f)
{
	mq_lag_point_t pt[MQ_GROUP_HISTORY];
	return mq_groups_history(f->g, "g", "t", 0, pt);
}

/* 20 samples of g/t/0, saved; closed. */
static void twenty_samples(fix_t *f)
{
	mq_err_t err;
	unlink(f->hist);
	reopen(f, 0);
	assert_int_equal(history_len(f), 0);
	commit(f, 5);
	for (int64_t i = 0; i < 20; i++) {
		int64_t end = 100 + i;
		mq_groups_sample(f->g, 1000 * i, end_of, &end);
	}
	assert_int_equal(mq_groups_history_save(f->g, &err), 0);
	reopen(f, 0);
	assert_int_equal(history_len(f), 20);
	mq_groups_close(f->g);
	f->g = NULL;
}

static void check_history(fix_t *f, int64_t at_most)
{
	assert_non_null(strstr(f->reported, f->hist));
	int64_t k = kept(f);
	assert_true(k <= at_most);
	assert_int_equal(history_len(f), k);
	assert_int_equal(committed(f), 5); /* the offsets are another file */
	reopen(f, 0);
	assert_int_equal(history_len(f), k);
}

/* A commit past the end of its partition (a power cut took the tail it
 * was made on, the offsets log kept it): the group has read all that is
 * left, so it resumes at the end, where new messages go, and says so
 * once; otherwise it would skip the messages published until the end
 * passed the old commit again. */
static void test_commit_past_end(void **state)
{
	fix_t *f = *state;
	mq_err_t err;
	mq_topic_meta_t m = {.partitions = 1};
	mq_log_t *log;
	mq_buf_t buf = {0};
	mq_batch_builder_t b;
	uint64_t base;
	assert_int_equal(mq_store_topic_create(f->store, "t", &m, &err), 0);
	assert_int_equal(mq_store_log(f->store, "t", 0, &log, &err), 0);
	mq_batch_begin(&b, &buf);
	for (int i = 0; i < 10; i++)
		assert_int_equal(mq_batch_add(&b, 1700000000000LL, NULL, 0, "v", 1, NULL, 0, NULL, 0), 0);
	assert_true(mq_batch_finish(&b) > 0);
	assert_int_equal(mq_log_append(log, buf.p, buf.len, &base, &err), 0);
	mq_buf_free(&buf);
	reopen(f, 0);
	commit(f, 10);
	reopen(f, 0);
	assert_int_equal(committed(f), 10);
	commit(f, 50); /* as if the partition lost offsets 10-49 */
	reopen(f, 1);
	assert_non_null(strstr(f->reported, "past the end"));
	assert_int_equal(committed(f), 10);
	reopen(f, 0); /* written down: said once */
	assert_int_equal(committed(f), 10);
}

static void test_history_damage(void **state)
{
	fix_t *f = *state;
	twenty_samples(f);
	/* a changed digit: only the line's checksum can tell */
	FILE *fp = fopen(f->hist, "r+");
	char text[4096];
	size_t n = fread(text, 1, sizeof(text) - 1, fp);
	text[n] = 0;
	char *line = strstr(text, " 110 "); /* the sample with end 110 */
	assert_non_null(line);
	fclose(fp);
	flip(f->hist, line - text + 2);
	reopen(f, 1);
	check_history(f, 10);
	assert_int_equal(history_len(f), 10);

	twenty_samples(f);
	assert_int_equal(truncate(f->hist, size_of(f->hist) / 2), 0);
	reopen(f, 1);
	check_history(f, 19);
	assert_true(history_len(f) >= 5);

	twenty_samples(f);
	garbage(f->hist, 300);
	reopen(f, 1);
	check_history(f, 0);

	twenty_samples(f);
	assert_int_equal(truncate(f->hist, 0), 0);
	reopen(f, 1);
	check_history(f, 0);
}

/* Format 1, without checksums, is still read. */
/* The broker sleeps until the first session runs out: the next expiry
 * is the earliest member's, and tick expires nobody a moment before it. */
static void test_next_expiry(void **state)
{
	fix_t *f = *state;
	const char *topics[] = {"t"};
	char m1[256], m2[256];
	mq_assignment_t a = {0};
	mq_err_t err;
	reopen(f, 0);
	assert_true(mq_groups_next_expiry(f->g) == INT64_MAX);
	assert_int_equal(mq_groups_join(f->g, "g", topics, 1, "", 10000, 1000, m1, &a, &err), 0);
	assert_int_equal(mq_groups_join(f->g, "h", topics, 1, "", 3000, 2000, m2, &a, &err), 0);
	assert_int_equal(mq_groups_next_expiry(f->g), 2000 + 3000 + 1);
	assert_int_equal(mq_groups_tick(f->g, 2000 + 3000), 0);
	assert_int_equal(mq_groups_tick(f->g, 2000 + 3000 + 1), 1);
	assert_int_equal(mq_groups_next_expiry(f->g), 1000 + 10000 + 1);
	assert_int_equal(mq_groups_heartbeat(f->g, "g", m1, 0, 9000, &a, &err), 0);
	assert_int_equal(mq_groups_next_expiry(f->g), 9000 + 10000 + 1);
	mq_assignment_free(&a);
}

static void test_history_format1(void **state)
{
	fix_t *f = *state;
	reopen(f, 0);
	mq_groups_close(f->g);
	f->g = NULL;
	FILE *fp = fopen(f->hist, "w");
	fputs("mq-lag-history 1\ng t 0 1000 5 100\ng t 0 2000 5 101\nend 2\n", fp);
	fclose(fp);
	reopen(f, 0);
	assert_int_equal(history_len(f), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_offsets_flipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offsets_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offsets_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offsets_emptied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_past_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_format1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_expiry, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
