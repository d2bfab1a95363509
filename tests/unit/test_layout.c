/*
 * test_layout.c -- the offline walk of a data directory: which paths it
 * takes for a data, topic or partition directory, what it reports as a
 * fault, and the DIR/TOPIC/PARTITION shorthand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "layout.h"
#include "store.h"

typedef struct fix {
	char dir[64];
	char faults[4096];
} fix_t;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb, (void)flag, (void)f;
	return remove(p);
}

static void on_fault(void *ctx, const char *msg)
{
	fix_t *f = ctx;
	size_t n = strlen(f->faults);
	snprintf(f->faults + n, sizeof(f->faults) - n, "%s\n", msg);
}

/* A data directory with topic "t" of two partitions, one batch in each. */
static int setup(void **state)
{
	fix_t *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/mq-test-layout-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	mq_store_t *st;
	mq_err_t err;
	char data[PATH_MAX];
	snprintf(data, sizeof(data), "%s/data", f->dir);
	if (mq_store_open(data, NULL, &st, &err))
		fail_msg("%s", err.msg);
	mq_topic_meta_t m = {.partitions = 2};
	assert_int_equal(mq_store_topic_create(st, "t", &m, &err), 0);
	for (uint32_t p = 0; p < 2; p++) {
		mq_log_t *log;
		mq_buf_t buf = {0};
		mq_batch_builder_t b;
		uint64_t base;
		assert_int_equal(mq_store_log(st, "t", p, &log, &err), 0);
		mq_batch_begin(&b, &buf);
		mq_batch_add(&b, 1, NULL, 0, "v", 1, NULL, 0, NULL, 0);
		size_t len = mq_batch_finish(&b);
		assert_int_equal(mq_log_append(log, buf.p, len, &base, &err), 0);
		mq_buf_free(&buf);
	}
	mq_store_close(st);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fix_t *f = *state;
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void walk(fix_t *f, const char *sub, int want_rc, int parts, int faults)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", f->dir, sub);
	mq_layout_counts_t n;
	mq_err_t err;
	f->faults[0] = 0;
	assert_int_equal(mq_layout_verify(p, on_fault, f, &n, &err), want_rc);
	if (want_rc)
		return;
	assert_int_equal(n.partitions, parts);
	assert_int_equal(n.faults, faults);
}

static void test_kinds(void **state)
{
	fix_t *f = *state;
	walk(f, "data", 0, 2, 0);
	walk(f, "data/topics/t", 0, 2, 0);
	walk(f, "data/topics/t/1", 0, 1, 0);
	walk(f, "missing", -MQ_ENOENT, 0, 0);
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/file", f->dir);
	FILE *fp = fopen(p, "w");
	fclose(fp);
	walk(f, "file", -MQ_EINVAL, 0, 0);
}

static void test_faults(void **state)
{
	fix_t *f = *state;
	char p[PATH_MAX];
	/* a stray file in a topic, a partition number that cannot be one, a
	 * bad topic name, a deletion in progress (passed over) */
	snprintf(p, sizeof(p), "%s/data/topics/t/junk", f->dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/data/topics/t/%d", f->dir, MQ_PARTITIONS_MAX);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/data/topics/bad name", f->dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/data/topics/.deleting~x~1~1", f->dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/data/topics/t/topic.meta", f->dir);
	assert_int_equal(unlink(p), 0);
	walk(f, "data", 0, 2, 4);
	assert_non_null(strstr(f->faults, "bad name: not a topic directory"));
	assert_non_null(strstr(f->faults, "/t/junk: unexpected entry in topic 't'"));
	assert_non_null(strstr(f->faults, "/t/10000: unexpected entry in topic 't'"));
	assert_non_null(strstr(f->faults, "topic.meta: missing or unreadable"));
	assert_null(strstr(f->faults, "deleting"));
	/* a damaged batch is counted once, through mq_log_verify */
	snprintf(p, sizeof(p), "%s/data/topics/t/0/00000000000000000000.log", f->dir);
	FILE *fp = fopen(p, "r+b");
	assert_non_null(fp);
	fseek(fp, MQ_BATCH_HEADER, SEEK_SET);
	fputc(0x7f, fp);
	fclose(fp);
	walk(f, "data/topics/t/0", 0, 1, 1);
}

static void test_partition_path(void **state)
{
	(void)state;
	char out[PATH_MAX];
	mq_err_t err;
	assert_int_equal(mq_layout_partition_path("d/t/3/", out, sizeof(out), &err), 0);
	assert_string_equal(out, "d/topics/t/3");
	assert_int_equal(mq_layout_partition_path("t/0", out, sizeof(out), &err), 0);
	assert_string_equal(out, "./topics/t/0");
	assert_int_equal(mq_layout_partition_path("/t/0", out, sizeof(out), &err), 0);
	assert_string_equal(out, "/topics/t/0");
	assert_int_equal(mq_layout_partition_path("d/t/x", out, sizeof(out), &err), -MQ_EINVAL);
	assert_int_equal(mq_layout_partition_path("d/a b/0", out, sizeof(out), &err), -MQ_EINVAL);
	assert_int_equal(mq_layout_partition_path("0", out, sizeof(out), &err), -MQ_EINVAL);
	char small[8];
	assert_int_equal(mq_layout_partition_path("d/t/0", small, sizeof(small), &err), -MQ_EINVAL);
}

static void test_segments(void **state)
{
	fix_t *f = *state;
	char p[PATH_MAX];
	mq_err_t err;
	snprintf(p, sizeof(p), "%s/data/topics/t/0", f->dir);
	assert_int_equal(mq_layout_segments(p, &err), 1);
	snprintf(p, sizeof(p), "%s/data", f->dir);
	assert_int_equal(mq_layout_segments(p, &err), 0);
	snprintf(p, sizeof(p), "%s/none", f->dir);
	assert_int_equal(mq_layout_segments(p, &err), -MQ_ENOENT);
	assert_non_null(strstr(err.msg, "No such file or directory"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
		cmocka_unit_test(test_partition_path),
		cmocka_unit_test_setup_teardown(test_segments, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
