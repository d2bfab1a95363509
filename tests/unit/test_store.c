/*
 * test_store.c -- unit tests for lib/store.c: name rules, the data
 * directory layout and lock, topic metadata round trips, recovery of what
 * a crash or a user can leave in DIR/topics, and data through the logs.
 * Each test gets a fresh temporary directory (setup/teardown).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "batch.h"
#include "log.h"
#include "store.h"
#include "util.h"

struct fix {
	char tmp[256];       /* mkdtemp root */
	char data[PATH_MAX]; /* tmp/data: the data directory */
};

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/test_store.XXXXXX");
	if (!mkdtemp(f->tmp))
		return -1;
	snprintf(f->data, sizeof(f->data), "%s/data", f->tmp);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	nftw(f->tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static void pathf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < cap);
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static int exists(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0;
}

static int is_dir(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static char *slurp(const char *path)
{
	static char buf[4096];
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static mq_store_t *open_ok(const struct fix *f)
{
	mq_store_t *st = NULL;
	mq_err_t err = { 0 };
	int rc = mq_store_open(f->data, NULL, &st, &err);

	if (rc != 0)
		fail_msg("mq_store_open: %d %s", rc, err.msg);
	assert_non_null(st);
	return st;
}

static void create_ok(mq_store_t *st, const char *name, uint32_t parts, int64_t ret_ms, int64_t ret_bytes)
{
	mq_topic_meta_t m = { .partitions = parts, .retention_ms = ret_ms, .retention_bytes = ret_bytes };
	mq_err_t err = { 0 };
	int rc = mq_store_topic_create(st, name, &m, &err);

	if (rc != 0)
		fail_msg("create %s: %d %s", name, rc, err.msg);
}

/* Open must fail with code; returns the message. */
static const char *open_fails(const struct fix *f, int code)
{
	static mq_err_t err;
	mq_store_t *st = NULL;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = mq_store_open(f->data, NULL, &st, &err);
	if (rc != -code)
		fail_msg("open: expected %d, got %d (%s)", -code, rc, err.msg);
	assert_null(st);
	assert_int_equal(err.code, code);
	return err.msg;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("'%s' does not contain '%s'", hay, needle);
}

/* ---- names ---- */

static void name_ok(const char *name, int reserved)
{
	mq_err_t err = { 0 };
	int rc = mq_name_check("topic", name, reserved, &err);

	if (rc != 0)
		fail_msg("'%s' refused: %s", name, err.msg);
}

static const char *name_bad(const char *name, int reserved)
{
	static mq_err_t err;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = mq_name_check("topic", name, reserved, &err);
	if (rc != -MQ_EINVAL)
		fail_msg("'%s' accepted (rc %d)", name ? name : "(null)", rc);
	assert_int_equal(err.code, MQ_EINVAL);
	return err.msg;
}

static void test_name_check(void **state)
{
	char n200[MQ_NAME_MAX + 1], n201[MQ_NAME_MAX + 2];
	const char *msg;
	mq_err_t err;

	(void)state;
	memset(n200, 'x', MQ_NAME_MAX);
	n200[MQ_NAME_MAX] = '\0';
	memset(n201, 'y', MQ_NAME_MAX + 1);
	n201[MQ_NAME_MAX + 1] = '\0';

	name_ok("a", 0);
	name_ok("Orders.EU_2024-01", 0);
	name_ok(n200, 0);
	name_ok("_x", 0);
	name_ok("x__", 0);
	name_ok("...", 0);
	name_ok(".hidden", 0);
	name_ok("-", 0);
	name_ok("__x", 1);

	assert_string_equal(name_bad("a/b", 0), "topic 'a/b': invalid name (use A-Z a-z 0-9 . _ -)");
	assert_string_equal(name_bad("", 0), "topic '': empty name");
	assert_string_equal(name_bad(NULL, 0), "topic '': empty name");
	msg = name_bad(n201, 0);
	assert_contains(msg, "name longer than 200 characters");
	assert_contains(msg, "topic 'yyyy");
	assert_contains(msg, "\xe2\x80\xa6'"); /* cut with an ellipsis */
	assert_true(strlen(msg) < 100);
	assert_string_equal(name_bad("__x", 0), "topic '__x': names starting with __ are reserved");
	assert_string_equal(name_bad("__", 0), "topic '__': names starting with __ are reserved");
	assert_contains(name_bad(".", 0), "topic '.': invalid name");
	assert_contains(name_bad("..", 1), "topic '..': invalid name");
	assert_contains(name_bad("a b", 0), "invalid name");
	assert_contains(name_bad("caf\xc3\xa9", 0), "invalid name");
	assert_contains(name_bad("\xff", 0), "invalid name");
	assert_contains(name_bad("a:b", 0), "invalid name");
	assert_contains(name_bad("a~b", 0), "invalid name");
	/* Control bytes are shown escaped, never raw. */
	msg = name_bad("a\nb\x1b", 0);
	assert_string_equal(msg, "topic 'a\\x0ab\\x1b': invalid name (use A-Z a-z 0-9 . _ -)");
	/* what names the kind of thing. */
	memset(&err, 0, sizeof(err));
	assert_int_equal(mq_name_check("group", "g/1", 0, &err), -MQ_EINVAL);
	assert_string_equal(err.msg, "group 'g/1': invalid name (use A-Z a-z 0-9 . _ -)");
	/* err may be NULL. */
	assert_int_equal(mq_name_check("topic", "a/b", 0, NULL), -MQ_EINVAL);
	assert_int_equal(mq_name_check("topic", "ab", 0, NULL), 0);
}

/* ---- open, layout, lock ---- */

static void test_open_layout(void **state)
{
	struct fix *f = *state;
	char p[PATH_MAX], pid[32];
	mq_store_t *st;

	/* mkdir -p: two levels that do not exist yet. */
	pathf(f->data, sizeof(f->data), "%s/a/b/data", f->tmp);
	st = open_ok(f);
	assert_string_equal(mq_store_dir(st), f->data);
	pathf(p, sizeof(p), "%s/format", f->data);
	assert_string_equal(slurp(p), "mq-data 1\n");
	pathf(p, sizeof(p), "%s/mq.lock", f->data);
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	assert_string_equal(slurp(p), pid);
	pathf(p, sizeof(p), "%s/topics", f->data);
	assert_true(is_dir(p));
	pathf(p, sizeof(p), "%s/state", f->data);
	assert_true(is_dir(p));
	pathf(p, sizeof(p), "%s/format.tmp", f->data);
	assert_false(exists(p));
	mq_store_close(st);
	mq_store_close(NULL);

	/* Reopen, with a trailing slash too. */
	st = open_ok(f);
	mq_store_close(st);
	strcat(f->data, "/");
	st = open_ok(f);
	assert_string_equal(mq_store_dir(st), f->data);
	mq_store_close(st);
}

static void test_open_not_a_dir(void **state)
{
	struct fix *f = *state;

	write_file(f->data, "x");
	assert_contains(open_fails(f, MQ_EINVAL), "is not a directory");
}

/* A data directory that cannot be made because its parent refuses
 * writes says so for that directory, not "No such file or directory".
 * Run as an unprivileged user (root may write anywhere): as root the
 * check runs in a child that drops to nobody. */
static void test_open_parent_unwritable(void **state)
{
	struct fix *f = *state;
	char ro[PATH_MAX], sub[PATH_MAX + 8];

	snprintf(ro, sizeof(ro), "%s/ro", f->tmp);
	snprintf(sub, sizeof(sub), "%s/sub", ro);
	assert_int_equal(mkdir(ro, 0555), 0);
	assert_int_equal(chmod(ro, 0555), 0);
	assert_int_equal(chmod(f->tmp, 0755), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(3);
		mq_store_t *st = NULL;
		mq_err_t err;
		int rc = mq_store_open(sub, NULL, &st, &err);
		if (rc == 0)
			_exit(4);
		int ok = err.sys == EACCES && strstr(err.msg, sub) && strstr(err.msg, strerror(EACCES));
		if (!ok)
			fprintf(stderr, "got: %s\n", err.msg);
		_exit(ok ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	chmod(ro, 0755);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 3)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_lock_same_process(void **state)
{
	struct fix *f = *state;
	char want[PATH_MAX + 100];
	mq_store_t *st = open_ok(f), *st2;
	const char *msg;

	/* flock belongs to the open file description: a second open in the
	 * same process conflicts too. */
	msg = open_fails(f, MQ_EBUSY);
	snprintf(want, sizeof(want),
		 "data directory '%s' is in use by pid %ld (stop that mq-serve, or use another -d DIR)", f->data,
		 (long)getpid());
	assert_string_equal(msg, want);
	mq_store_close(st);
	/* Released on close. */
	st2 = open_ok(f);
	mq_store_close(st2);
}

static void test_lock_fork(void **state)
{
	struct fix *f = *state;
	mq_store_t *st = open_ok(f);
	long parent = (long)getpid();
	int status = 0;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* No cmocka asserts in the child: report through the exit code. */
		char want[64];
		mq_store_t *cst = NULL;
		mq_err_t err = { 0 };
		int rc = mq_store_open(f->data, NULL, &cst, &err);
		snprintf(want, sizeof(want), "in use by pid %ld ", parent);
		if (rc != -MQ_EBUSY || cst)
			_exit(1);
		if (err.code != MQ_EBUSY || !strstr(err.msg, want))
			_exit(2);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	mq_store_close(st);

	/* Once the parent lets go, a child can take it. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		mq_store_t *cst = NULL;
		mq_err_t err = { 0 };
		if (mq_store_open(f->data, NULL, &cst, &err) != 0)
			_exit(1);
		mq_store_close(cst);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_format_mismatch(void **state)
{
	struct fix *f = *state;
	char p[PATH_MAX];
	const char *msg;

	mq_store_close(open_ok(f));
	pathf(p, sizeof(p), "%s/format", f->data);
	write_file(p, "mq-data 2\n");
	msg = open_fails(f, MQ_ECORRUPT);
	assert_contains(msg, "mq-data 2");
	assert_contains(msg, "format");
	/* The same line without its newline is still ours. */
	write_file(p, "mq-data 1");
	mq_store_close(open_ok(f));
}

static void test_foreign_dir(void **state)
{
	struct fix *f = *state;
	char p[PATH_MAX];

	assert_int_equal(mkdir(f->data, 0755), 0);
	pathf(p, sizeof(p), "%s/notes.txt", f->data);
	write_file(p, "mine\n");
	assert_contains(open_fails(f, MQ_EINVAL), "not an mq data directory");
	/* Nothing was written into someone else's directory. */
	pathf(p, sizeof(p), "%s/mq.lock", f->data);
	assert_false(exists(p));
	pathf(p, sizeof(p), "%s/topics", f->data);
	assert_false(exists(p));
}

/* ---- topics ---- */

static void test_topic_roundtrip(void **state)
{
	struct fix *f = *state;
	mq_store_t *st = open_ok(f);
	mq_topic_meta_t m = { 0 }, m2;
	mq_err_t err = { 0 };
	char **names = NULL, p[PATH_MAX];
	int count = -1;
	int64_t before = mq_now_ms();

	/* Empty list: still one allocation to free. */
	assert_int_equal(mq_store_topic_list(st, &names, &count, &err), 0);
	assert_int_equal(count, 0);
	free(names);

	create_ok(st, "orders", 3, 60000, 1 << 20);
	create_ok(st, "b", 1, 0, 0);
	create_ok(st, "a", 2, 0, 0);
	create_ok(st, "__internal", 1, 0, 0); /* the store itself takes reserved names */

	assert_int_equal(mq_store_topic_meta(st, "orders", &m, &err), 0);
	assert_int_equal(m.partitions, 3);
	assert_int_equal(m.retention_ms, 60000);
	assert_int_equal(m.retention_bytes, 1 << 20);
	assert_true(m.created_ms >= before && m.created_ms <= mq_now_ms());

	pathf(p, sizeof(p), "%s/topics/orders/topic.meta", f->data);
	assert_true(exists(p));
	pathf(p, sizeof(p), "%s/topics/orders/topic.meta.tmp", f->data);
	assert_false(exists(p));
	pathf(p, sizeof(p), "%s/topics/orders/2", f->data);
	assert_true(is_dir(p));
	pathf(p, sizeof(p), "%s/topics/orders/3", f->data);
	assert_false(exists(p));

	m2 = (mq_topic_meta_t){ .partitions = 1 };
	assert_int_equal(mq_store_topic_create(st, "orders", &m2, &err), -MQ_EEXIST);
	assert_contains(err.msg, "topic 'orders' already exists");

	assert_int_equal(mq_store_topic_list(st, &names, &count, &err), 0);
	assert_int_equal(count, 4);
	assert_string_equal(names[0], "__internal");
	assert_string_equal(names[1], "a");
	assert_string_equal(names[2], "b");
	assert_string_equal(names[3], "orders");
	free(names);

	/* Retention changes, created_ms stays. */
	m2 = m;
	m2.retention_ms = 5000;
	m2.retention_bytes = 0;
	m2.created_ms = 1;
	assert_int_equal(mq_store_topic_update(st, "orders", &m2, &err), 0);
	assert_int_equal(mq_store_topic_meta(st, "orders", &m2, &err), 0);
	assert_int_equal(m2.retention_ms, 5000);
	assert_int_equal(m2.retention_bytes, 0);
	assert_int_equal(m2.created_ms, m.created_ms);
	assert_int_equal(m2.partitions, 3);

	/* Never shrink; bounds. */
	m2.partitions = 2;
	assert_int_equal(mq_store_topic_update(st, "orders", &m2, &err), -MQ_EINVAL);
	assert_contains(err.msg, "can only grow");
	m2.partitions = 0;
	assert_int_equal(mq_store_topic_update(st, "orders", &m2, &err), -MQ_EINVAL);
	m2.partitions = 10001;
	assert_int_equal(mq_store_topic_update(st, "orders", &m2, &err), -MQ_EINVAL);
	assert_int_equal(mq_store_topic_update(st, "nope", &m2, &err), -MQ_ENOENT);

	/* Create: bounds and names, refused before touching the disk. */
	m2 = (mq_topic_meta_t){ .partitions = 0 };
	assert_int_equal(mq_store_topic_create(st, "zero", &m2, &err), -MQ_EINVAL);
	assert_contains(err.msg, "partitions must be 1-10000");
	m2.partitions = 10001;
	assert_int_equal(mq_store_topic_create(st, "big", &m2, &err), -MQ_EINVAL);
	m2.partitions = 1;
	assert_int_equal(mq_store_topic_create(st, "a/b", &m2, &err), -MQ_EINVAL);
	assert_string_equal(err.msg, "topic 'a/b': invalid name (use A-Z a-z 0-9 . _ -)");
	assert_int_equal(mq_store_topic_create(st, "..", &m2, &err), -MQ_EINVAL);
	pathf(p, sizeof(p), "%s/topics/zero", f->data);
	assert_false(exists(p));
	pathf(p, sizeof(p), "%s/topics/a/b", f->data);
	assert_false(exists(p));

	/* Delete. */
	assert_int_equal(mq_store_topic_delete(st, "b", &err), 0);
	assert_int_equal(mq_store_topic_meta(st, "b", &m2, &err), -MQ_ENOENT);
	assert_string_equal(err.msg, "topic 'b' does not exist");
	assert_int_equal(mq_store_topic_delete(st, "b", &err), -MQ_ENOENT);
	assert_int_equal(mq_store_topic_delete(st, "a/b", &err), -MQ_EINVAL);
	pathf(p, sizeof(p), "%s/topics/b", f->data);
	assert_false(exists(p));
	assert_int_equal(mq_store_topic_list(st, &names, &count, &err), 0);
	assert_int_equal(count, 3);
	assert_string_equal(names[0], "__internal");
	assert_string_equal(names[1], "a");
	assert_string_equal(names[2], "orders");
	free(names);

	/* Nothing left in topics/ but the three. */
	{
		char cmd[PATH_MAX + 64];
		FILE *fp;
		int n = 0;
		pathf(cmd, sizeof(cmd), "ls -A '%s/topics' | wc -l", f->data);
		fp = popen(cmd, "r");
		assert_non_null(fp);
		assert_int_equal(fscanf(fp, "%d", &n), 1);
		pclose(fp);
		assert_int_equal(n, 3);
	}

	/* Recreate a deleted name: a fresh topic. */
	create_ok(st, "b", 4, 0, 0);
	assert_int_equal(mq_store_topic_meta(st, "b", &m2, &err), 0);
	assert_int_equal(m2.partitions, 4);
	mq_store_close(st);
}

static void test_reopen_keeps_topics(void **state)
{
	struct fix *f = *state;
	mq_store_t *st = open_ok(f);
	mq_topic_meta_t m = { .partitions = 7, .retention_ms = 3600000, .retention_bytes = 123456789012LL,
			      .created_ms = 1700000000123LL };
	mq_topic_meta_t got;
	mq_err_t err = { 0 };
	char **names;
	int count, i;
	char name[16];

	assert_int_equal(mq_store_topic_create(st, "kept", &m, &err), 0);
	for (i = 20; i > 0; i--) {
		snprintf(name, sizeof(name), "t%02d", i);
		create_ok(st, name, 1, 0, 0);
	}
	mq_store_close(st);

	st = open_ok(f);
	assert_int_equal(mq_store_topic_meta(st, "kept", &got, &err), 0);
	assert_int_equal(got.partitions, m.partitions);
	assert_int_equal(got.retention_ms, m.retention_ms);
	assert_int_equal(got.retention_bytes, m.retention_bytes);
	assert_int_equal(got.created_ms, m.created_ms);
	assert_int_equal(mq_store_topic_list(st, &names, &count, &err), 0);
	assert_int_equal(count, 21);
	assert_string_equal(names[0], "kept");
	for (i = 1; i < count; i++) {
		snprintf(name, sizeof(name), "t%02d", i);
		assert_string_equal(names[i], name);
	}
	free(names);
	for (i = 1; i <= 20; i++) {
		snprintf(name, sizeof(name), "t%02d", i);
		assert_int_equal(mq_store_topic_meta(st, name, &got, &err), 0);
		assert_int_equal(got.partitions, 1);
	}
	mq_store_close(st);
}

/* ---- what open finds in DIR/topics ---- */

static void put_meta(const struct fix *f, const char *topic, const char *text)
{
	char p[PATH_MAX];

	pathf(p, sizeof(p), "%s/topics/%s", f->data, topic);
	assert_int_equal(mkdir(p, 0755), 0);
	pathf(p, sizeof(p), "%s/topics/%s/topic.meta", f->data, topic);
	write_file(p, text);
}

static void test_meta_parse(void **state)
{
	struct fix *f = *state;
	mq_topic_meta_t m;
	mq_err_t err = { 0 };
	mq_store_t *st;

	mq_store_close(open_ok(f));
	/* Unknown keys, comments, blank lines, no final newline: fine. */
	put_meta(f, "fwd", "# written by a newer mq\npartitions=2\n\nfuture_key=whatever=x\nretention_ms=-1\n"
			   "created_ms=42");
	st = open_ok(f);
	assert_int_equal(mq_store_topic_meta(st, "fwd", &m, &err), 0);
	assert_int_equal(m.partitions, 2);
	assert_int_equal(m.retention_ms, -1);
	assert_int_equal(m.retention_bytes, 0);
	assert_int_equal(m.created_ms, 42);
	mq_store_close(st);
}

static void corrupt_case(const struct fix *f, const char *text, const char *want)
{
	char p[PATH_MAX];
	const char *msg;

	put_meta(f, "bad", text);
	msg = open_fails(f, MQ_ECORRUPT);
	pathf(p, sizeof(p), "'%s/topics/bad/topic.meta'", f->data);
	assert_contains(msg, p);
	assert_contains(msg, want);
	pathf(p, sizeof(p), "%s/topics/bad/topic.meta", f->data);
	assert_int_equal(unlink(p), 0);
	pathf(p, sizeof(p), "%s/topics/bad", f->data);
	assert_int_equal(rmdir(p), 0);
}

static void test_meta_corrupt(void **state)
{
	struct fix *f = *state;

	mq_store_close(open_ok(f));
	corrupt_case(f, "partitions=abc\n", "line 1");
	corrupt_case(f, "created_ms=1\npartitions=0\n", "line 2");
	corrupt_case(f, "partitions=10001\n", "line 1");
	corrupt_case(f, "partitions=3\nretention_ms=12x\n", "line 2");
	corrupt_case(f, "partitions=3\nretention_bytes=99999999999999999999\n", "line 2");
	corrupt_case(f, "partitions=3\ngarbage\n", "line 2");
	corrupt_case(f, "partitions=-3\n", "line 1");
	corrupt_case(f, "retention_ms=5\n", "no partitions=");
	corrupt_case(f, "", "no partitions=");
	/* After removing the bad one, the directory opens again. */
	mq_store_close(open_ok(f));
}

static void test_unknown_entries(void **state)
{
	struct fix *f = *state;
	char p[PATH_MAX], want[PATH_MAX + 100];
	const char *msg;

	mq_store_close(open_ok(f));

	/* Invalid topic name. */
	pathf(p, sizeof(p), "%s/topics/x y", f->data);
	assert_int_equal(mkdir(p, 0755), 0);
	msg = open_fails(f, MQ_ECORRUPT);
	snprintf(want, sizeof(want), "'%s/topics/x y': not a topic directory (move it out of the data directory)",
		 f->data);
	assert_string_equal(msg, want);
	assert_true(is_dir(p)); /* left alone */
	assert_int_equal(rmdir(p), 0);

	/* A plain file with a valid name. */
	pathf(p, sizeof(p), "%s/topics/README", f->data);
	write_file(p, "hello\n");
	assert_contains(open_fails(f, MQ_ECORRUPT), "topics/README': not a topic directory");
	assert_int_equal(unlink(p), 0);

	/* A symlink, even to a real directory. */
	pathf(p, sizeof(p), "%s/topics/link", f->data);
	assert_int_equal(symlink(f->tmp, p), 0);
	assert_contains(open_fails(f, MQ_ECORRUPT), "topics/link': not a topic directory");
	assert_int_equal(unlink(p), 0);

	/* A topic directory holding data but no topic.meta: never removed. */
	pathf(p, sizeof(p), "%s/topics/lost", f->data);
	assert_int_equal(mkdir(p, 0755), 0);
	pathf(p, sizeof(p), "%s/topics/lost/0", f->data);
	assert_int_equal(mkdir(p, 0755), 0);
	pathf(p, sizeof(p), "%s/topics/lost/0/00000000000000000000.log", f->data);
	write_file(p, "data");
	msg = open_fails(f, MQ_ECORRUPT);
	assert_contains(msg, "topics/lost': topic directory without topic.meta");
	assert_true(exists(p));

	/* Same with an unknown file instead of data. */
	assert_int_equal(unlink(p), 0);
	pathf(p, sizeof(p), "%s/topics/lost/notes", f->data);
	write_file(p, "x");
	assert_contains(open_fails(f, MQ_ECORRUPT), "without topic.meta");
	assert_true(exists(p));
	pathf(p, sizeof(p), "%s/topics/lost/0", f->data);
	assert_true(is_dir(p)); /* the check pass did not remove the empty one */
}

static void test_half_created(void **state)
{
	struct fix *f = *state;
	char p[PATH_MAX];
	mq_store_t *st;
	char **names;
	int count;
	mq_err_t err = { 0 };

	st = open_ok(f);
	create_ok(st, "whole", 2, 0, 0);
	mq_store_close(st);

	/* Crash after the partition dirs, before or during the meta. */
	pathf(p, sizeof(p), "%s/topics/half", f->data);
	assert_int_equal(mkdir(p, 0755), 0);
	pathf(p, sizeof(p), "%s/topics/half/0", f->data);
	assert_int_equal(mkdir(p, 0755), 0);
	pathf(p, sizeof(p), "%s/topics/half/1", f->data);
	assert_int_equal(mkdir(p, 0755), 0);
	pathf(p, sizeof(p), "%s/topics/half/topic.meta.tmp", f->data);
	write_file(p, "partitions=2\n");
	/* Crash right after the topic dir. */
	pathf(p, sizeof(p), "%s/topics/bare", f->data);
	assert_int_equal(mkdir(p, 0755), 0);
	/* An interrupted meta rewrite in a whole topic. */
	pathf(p, sizeof(p), "%s/topics/whole/topic.meta.tmp", f->data);
	write_file(p, "partitions=9\n");

	st = open_ok(f);
	pathf(p, sizeof(p), "%s/topics/half", f->data);
	assert_false(exists(p));
	pathf(p, sizeof(p), "%s/topics/bare", f->data);
	assert_false(exists(p));
	pathf(p, sizeof(p), "%s/topics/whole/topic.meta.tmp", f->data);
	assert_false(exists(p));
	assert_int_equal(mq_store_topic_list(st, &names, &count, &err), 0);
	assert_int_equal(count, 1);
	assert_string_equal(names[0], "whole");
	free(names);
	mq_store_close(st);
}

static void test_deleting_leftovers(void **state)
{
	struct fix *f = *state;
	char p[PATH_MAX], outside[PATH_MAX], base[PATH_MAX];
	mq_store_t *st;
	mq_topic_meta_t m;
	mq_err_t err = { 0 };

	st = open_ok(f);
	/* A legal topic name that looks like the old-style leftover. */
	create_ok(st, ".deleting-x-1-0", 1, 0, 0);
	mq_store_close(st);

	pathf(outside, sizeof(outside), "%s/outside", f->tmp);
	assert_int_equal(mkdir(outside, 0755), 0);
	pathf(p, sizeof(p), "%s/keep", outside);
	write_file(p, "precious");

	pathf(base, sizeof(base), "%s/topics/.deleting~gone~123~0", f->data);
	assert_int_equal(mkdir(base, 0755), 0);
	pathf(p, sizeof(p), "%s/topic.meta", base);
	write_file(p, "partitions=1\n");
	pathf(p, sizeof(p), "%s/0", base);
	assert_int_equal(mkdir(p, 0755), 0);
	pathf(p, sizeof(p), "%s/0/00000000000000000000.log", base);
	write_file(p, "data");
	/* Links out of the data directory are removed, never followed. */
	pathf(p, sizeof(p), "%s/0/link", base);
	assert_int_equal(symlink(outside, p), 0);
	pathf(p, sizeof(p), "%s/filelink", base);
	pathf(outside, sizeof(outside), "%s/outside/keep", f->tmp);
	assert_int_equal(symlink(outside, p), 0);
	/* A leftover that is itself a link. */
	pathf(p, sizeof(p), "%s/topics/.deleting~l~1~1", f->data);
	pathf(outside, sizeof(outside), "%s/outside", f->tmp);
	assert_int_equal(symlink(outside, p), 0);

	st = open_ok(f);
	assert_false(exists(base));
	assert_false(exists(p));
	pathf(p, sizeof(p), "%s/outside/keep", f->tmp);
	assert_string_equal(slurp(p), "precious");
	assert_int_equal(mq_store_topic_meta(st, ".deleting-x-1-0", &m, &err), 0);
	mq_store_close(st);
}

/* ---- partitions and data ---- */

static void test_partition_range(void **state)
{
	struct fix *f = *state;
	mq_store_t *st = open_ok(f);
	mq_log_t *log = NULL, *log2 = NULL;
	mq_err_t err = { 0 };

	create_ok(st, "x", 3, 0, 0);
	create_ok(st, "one", 1, 0, 0);
	assert_int_equal(mq_store_log(st, "x", 7, &log, &err), -MQ_ENOENT);
	assert_string_equal(err.msg, "topic 'x' has 3 partitions (0-2); partition 7 does not exist");
	assert_int_equal(mq_store_log(st, "x", 3, &log, &err), -MQ_ENOENT);
	assert_int_equal(mq_store_log(st, "one", 1, &log, &err), -MQ_ENOENT);
	assert_string_equal(err.msg, "topic 'one' has 1 partition (0); partition 1 does not exist");
	assert_int_equal(mq_store_log(st, "nope", 0, &log, &err), -MQ_ENOENT);
	assert_string_equal(err.msg, "topic 'nope' does not exist");
	assert_int_equal(mq_store_log(st, "a/b", 0, &log, &err), -MQ_EINVAL);

	assert_int_equal(mq_store_log(st, "x", 2, &log, &err), 0);
	assert_non_null(log);
	assert_int_equal(mq_store_log(st, "x", 2, &log2, &err), 0);
	assert_ptr_equal(log, log2); /* opened once, then shared */
	assert_int_equal(mq_log_end(log), 0);
	mq_store_close(st);
}

static void test_grow_partitions(void **state)
{
	struct fix *f = *state;
	mq_store_t *st = open_ok(f);
	mq_topic_meta_t m;
	mq_log_t *log = NULL, *l0 = NULL;
	mq_err_t err = { 0 };
	char p[PATH_MAX];
	uint32_t i;

	create_ok(st, "g", 2, 0, 0);
	assert_int_equal(mq_store_log(st, "g", 0, &l0, &err), 0); /* logs array exists */
	assert_int_equal(mq_store_log(st, "g", 4, &log, &err), -MQ_ENOENT);
	/* A partition dir left by an earlier interrupted grow is reused. */
	pathf(p, sizeof(p), "%s/topics/g/3", f->data);
	assert_int_equal(mkdir(p, 0755), 0);

	assert_int_equal(mq_store_topic_meta(st, "g", &m, &err), 0);
	m.partitions = 5;
	m.retention_ms = 1000;
	assert_int_equal(mq_store_topic_update(st, "g", &m, &err), 0);
	for (i = 2; i < 5; i++) {
		pathf(p, sizeof(p), "%s/topics/g/%u", f->data, (unsigned)i);
		assert_true(is_dir(p));
	}
	for (i = 0; i < 5; i++)
		assert_int_equal(mq_store_log(st, "g", i, &log, &err), 0);
	assert_int_equal(mq_store_log(st, "g", 0, &log, &err), 0);
	assert_ptr_equal(log, l0); /* growing keeps open logs */
	assert_int_equal(mq_store_log(st, "g", 5, &log, &err), -MQ_ENOENT);
	assert_contains(err.msg, "has 5 partitions (0-4)");

	/* Grow a topic whose logs were never opened. */
	create_ok(st, "h", 1, 0, 0);
	assert_int_equal(mq_store_topic_meta(st, "h", &m, &err), 0);
	m.partitions = 3;
	assert_int_equal(mq_store_topic_update(st, "h", &m, &err), 0);
	assert_int_equal(mq_store_log(st, "h", 2, &log, &err), 0);
	mq_store_close(st);

	st = open_ok(f);
	assert_int_equal(mq_store_topic_meta(st, "g", &m, &err), 0);
	assert_int_equal(m.partitions, 5);
	assert_int_equal(m.retention_ms, 1000);
	assert_int_equal(mq_store_log(st, "g", 4, &log, &err), 0);
	mq_store_close(st);
}

static size_t make_batch(mq_buf_t *buf, int first, int n)
{
	mq_batch_builder_t b;
	char key[32], val[64];
	int i;

	mq_batch_begin(&b, buf);
	for (i = first; i < first + n; i++) {
		int kl = snprintf(key, sizeof(key), "k%d", i);
		int vl = snprintf(val, sizeof(val), "value number %d", i);
		assert_int_equal(mq_batch_add(&b, 1700000000000LL + i, key, (size_t)kl, val, (size_t)vl, NULL, 0,
					      NULL, 0), 0);
	}
	return mq_batch_finish(&b);
}

static void test_append_read_reopen(void **state)
{
	struct fix *f = *state;
	mq_store_t *st = open_ok(f);
	mq_log_t *log = NULL;
	mq_err_t err = { 0 };
	mq_buf_t buf = { 0 }, out = { 0 };
	mq_batch_iter_t it;
	mq_record_t rec;
	uint64_t base = 99;
	size_t n, pos;
	int i = 0, r;
	long long got;
	char want[64];

	create_ok(st, "data", 2, 0, 0);
	assert_int_equal(mq_store_log(st, "data", 1, &log, &err), 0);
	n = make_batch(&buf, 0, 3);
	assert_true(n > MQ_BATCH_HEADER);
	assert_int_equal(mq_log_append(log, buf.p, n, &base, &err), 0);
	assert_int_equal(base, 0);
	buf.len = 0;
	n = make_batch(&buf, 3, 2);
	assert_int_equal(mq_log_append(log, buf.p, n, &base, &err), 0);
	assert_int_equal(base, 3);
	assert_int_equal(mq_store_commit(st, mq_mono_ms(), &err), 0);
	assert_true(mq_store_retain(st, mq_now_ms(), &err) >= 0);
	mq_store_close(st);

	st = open_ok(f);
	assert_int_equal(mq_store_log(st, "data", 1, &log, &err), 0);
	assert_int_equal(mq_log_end(log), 5);
	got = mq_log_read(log, 0, 1 << 20, &out, &err);
	assert_true(got > 0);
	for (pos = 0; pos < out.len;) {
		assert_int_equal(mq_batch_iter_init(&it, out.p + pos, out.len - pos, &err), 0);
		while ((r = mq_batch_iter_next(&it, &rec)) == 1) {
			assert_int_equal(rec.offset, (uint64_t)i);
			assert_int_equal(rec.timestamp, 1700000000000LL + i);
			snprintf(want, sizeof(want), "value number %d", i);
			assert_int_equal(rec.value_len, strlen(want));
			assert_memory_equal(rec.value, want, rec.value_len);
			snprintf(want, sizeof(want), "k%d", i);
			assert_int_equal(rec.key_len, strlen(want));
			assert_memory_equal(rec.key, want, rec.key_len);
			assert_null(rec.id);
			i++;
		}
		assert_int_equal(r, 0);
		pos += it.hdr.length;
	}
	assert_int_equal(i, 5);
	/* The other partition is untouched. */
	assert_int_equal(mq_store_log(st, "data", 0, &log, &err), 0);
	assert_int_equal(mq_log_end(log), 0);

	/* Delete with open logs, recreate: starts empty. */
	assert_int_equal(mq_store_topic_delete(st, "data", &err), 0);
	create_ok(st, "data", 2, 0, 0);
	assert_int_equal(mq_store_log(st, "data", 1, &log, &err), 0);
	assert_int_equal(mq_log_end(log), 0);
	mq_store_close(st);
	mq_buf_free(&buf);
	mq_buf_free(&out);
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Read partition p of topic and check it holds exactly records [0, n)
 * as make_batch wrote them. */
static void expect_records(mq_store_t *st, const char *topic, uint32_t p, int n)
{
	mq_log_t *log = NULL;
	mq_err_t err = { 0 };
	mq_buf_t out = { 0 };
	mq_batch_iter_t it;
	mq_record_t rec;
	int i = 0;

	if (mq_store_log(st, topic, p, &log, &err))
		fail_msg("%s/%u: %s", topic, (unsigned)p, err.msg);
	assert_int_equal(mq_log_end(log), (uint64_t)n);
	if (mq_log_read(log, 0, 1 << 20, &out, &err) < 0)
		fail_msg("read %s/%u: %s", topic, (unsigned)p, err.msg);
	for (size_t pos = 0; pos < out.len; pos += it.hdr.length) {
		assert_int_equal(mq_batch_iter_init(&it, out.p + pos, out.len - pos, &err), 0);
		while (mq_batch_iter_next(&it, &rec) == 1)
			assert_int_equal(rec.offset, (uint64_t)i++);
	}
	assert_int_equal(i, n);
	mq_buf_free(&out);
}

/* Hundreds of partitions under a descriptor limit of 64: every one is
 * written, synced and read back, before and after a reopen, and the
 * process never holds more descriptors than the limit allows. */
static void test_many_partitions_few_descriptors(void **state)
{
	struct fix *f = *state;
	struct rlimit old, low;
	mq_log_opts_t o;
	mq_store_t *st = NULL;
	mq_log_t *log = NULL;
	mq_err_t err = { 0 };
	mq_buf_t buf = { 0 };
	char name[32];
	uint64_t base;
	int topics = 300, most = 0;

	mq_log_opts_default(&o);
	o.fsync = MQ_FSYNC_ALWAYS;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = 64;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	if (mq_store_open(f->data, &o, &st, &err))
		fail_msg("open: %s", err.msg);
	for (int t = 0; t < topics; t++) {
		snprintf(name, sizeof(name), "t%03d", t);
		create_ok(st, name, 2, 0, 0);
		for (uint32_t p = 0; p < 2; p++) {
			if (mq_store_log(st, name, p, &log, &err))
				fail_msg("log %s/%u: %s", name, (unsigned)p, err.msg);
			buf.len = 0;
			make_batch(&buf, 0, 1 + t % 3);
			if (mq_log_append(log, buf.p, buf.len, &base, &err))
				fail_msg("append %s/%u: %s", name, (unsigned)p, err.msg);
		}
		if (t % 25 == 0 && mq_store_commit(st, mq_mono_ms(), &err))
			fail_msg("commit: %s", err.msg);
		if (count_fds() > most)
			most = count_fds();
	}
	assert_int_equal(mq_store_commit(st, mq_mono_ms(), &err), 0);
	for (int t = 0; t < topics; t++) {
		snprintf(name, sizeof(name), "t%03d", t);
		expect_records(st, name, t % 2, 1 + t % 3);
	}
	assert_true(mq_store_retain(st, mq_now_ms(), &err) >= 0);
	mq_store_close(st);
	st = open_ok(f);
	for (int t = topics - 1; t >= 0; t--) {
		snprintf(name, sizeof(name), "t%03d", t);
		expect_records(st, name, 0, 1 + t % 3);
		expect_records(st, name, 1, 1 + t % 3);
		if (count_fds() > most)
			most = count_fds();
	}
	mq_store_close(st);
	setrlimit(RLIMIT_NOFILE, &old);
	assert_true(most < 64);
	mq_buf_free(&buf);
}

/* A create that fails half way leaves nothing behind and says so. */
static void test_failed_create_leaves_nothing(void **state)
{
	struct fix *f = *state;
	mq_store_t *st = open_ok(f);
	mq_topic_meta_t m = { .partitions = 4 };
	mq_err_t err = { 0 };
	struct rlimit old, tiny;
	char path[PATH_MAX];
	struct stat sb;

	/* topic.meta cannot be written: the file size limit is 4 bytes. */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	tiny = old;
	tiny.rlim_cur = 4;
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &tiny), 0);
	int rc = mq_store_topic_create(st, "half", &m, &err);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, prev);
	assert_true(rc < 0);
	assert_non_null(strstr(err.msg, "was not created (nothing of it was kept)"));
	pathf(path, sizeof(path), "%s/topics/half", f->data);
	assert_int_equal(stat(path, &sb), -1);
	assert_int_equal(mq_store_topic_meta(st, "half", &m, &err), -MQ_ENOENT);
	create_ok(st, "half", 4, 0, 0);
	mq_store_close(st);
}

/* A topic's retention overrides the defaults, and an update reaches logs
 * that are already open. */
static void test_retention_override(void **state)
{
	struct fix *f = *state;
	mq_store_t *st = NULL;
	mq_topic_meta_t m;
	mq_log_opts_t o;
	mq_log_t *log = NULL;
	mq_err_t err = { 0 };
	mq_buf_t buf = { 0 };
	uint64_t base;
	size_t n;
	int i;

	mq_log_opts_default(&o);
	o.segment_bytes = 4096;
	assert_int_equal(mq_store_open(f->data, &o, &st, &err), 0);
	create_ok(st, "r", 1, 0, 0);
	assert_int_equal(mq_store_log(st, "r", 0, &log, &err), 0);
	for (i = 0; i < 200; i++) {
		buf.len = 0;
		n = make_batch(&buf, i * 10, 10);
		assert_int_equal(mq_log_append(log, buf.p, n, &base, &err), 0);
	}
	assert_true(mq_log_segments(log) > 3);
	assert_int_equal(mq_store_retain(st, mq_now_ms(), &err), 0);
	assert_int_equal(mq_log_start(log), 0);

	assert_int_equal(mq_store_topic_meta(st, "r", &m, &err), 0);
	m.retention_bytes = 4096;
	assert_int_equal(mq_store_topic_update(st, "r", &m, &err), 0);
	assert_true(mq_store_retain(st, mq_now_ms(), &err) > 0);
	assert_true(mq_log_start(log) > 0);
	assert_int_equal(mq_log_end(log), 2000);
	mq_store_close(st);
	mq_buf_free(&buf);
}

static void test_commit_retain_empty(void **state)
{
	struct fix *f = *state;
	mq_store_t *st = open_ok(f);
	mq_err_t err = { 0 };
	mq_log_opts_t o;
	mq_log_t *log;

	/* No topics, topics without open logs: nothing to do, no error. */
	assert_int_equal(mq_store_commit(st, mq_mono_ms(), &err), 0);
	assert_int_equal(mq_store_retain(st, mq_now_ms(), &err), 0);
	create_ok(st, "t", 3, 0, 0);
	assert_int_equal(mq_store_commit(st, mq_mono_ms(), &err), 0);
	assert_int_equal(mq_store_retain(st, mq_now_ms(), &err), 0);
	mq_store_close(st);

	/* With explicit defaults and always-fsync. */
	mq_log_opts_default(&o);
	o.fsync = MQ_FSYNC_ALWAYS;
	assert_int_equal(mq_store_open(f->data, &o, &st, &err), 0);
	assert_int_equal(mq_store_log(st, "t", 0, &log, &err), 0);
	assert_int_equal(mq_store_commit(st, mq_mono_ms(), &err), 0);
	mq_store_close(st);
}

/* Group commit: one sync per dirty partition and commit, however many
 * batches it took; nothing under NEVER. */
static void test_commit_counts_syncs(void **state)
{
	struct fix *f = *state;
	mq_err_t err = { 0 };
	mq_log_opts_t o;
	mq_store_t *st;
	mq_log_t *l0, *l1;
	mq_buf_t buf = { 0 };
	uint64_t base;
	size_t n;

	mq_log_opts_default(&o);
	o.fsync = MQ_FSYNC_ALWAYS;
	assert_int_equal(mq_store_open(f->data, &o, &st, &err), 0);
	create_ok(st, "t", 2, 0, 0);
	assert_int_equal(mq_store_log(st, "t", 0, &l0, &err), 0);
	assert_int_equal(mq_store_log(st, "t", 1, &l1, &err), 0);
	assert_int_equal(mq_store_syncs(st), 0);
	n = make_batch(&buf, 0, 3);
	assert_int_equal(mq_log_append(l0, buf.p, n, &base, &err), 0);
	buf.len = 0;
	n = make_batch(&buf, 3, 2);
	assert_int_equal(mq_log_append(l0, buf.p, n, &base, &err), 0);
	buf.len = 0;
	n = make_batch(&buf, 0, 1);
	assert_int_equal(mq_log_append(l1, buf.p, n, &base, &err), 0);
	assert_int_equal(mq_store_commit(st, mq_mono_ms(), &err), 0);
	assert_int_equal(mq_store_syncs(st), 2);
	assert_int_equal(mq_store_commit(st, mq_mono_ms(), &err), 0);
	assert_int_equal(mq_store_syncs(st), 2);
	buf.len = 0;
	n = make_batch(&buf, 5, 1);
	assert_int_equal(mq_log_append(l0, buf.p, n, &base, &err), 0);
	assert_int_equal(mq_store_commit(st, mq_mono_ms(), &err), 0);
	assert_int_equal(mq_store_syncs(st), 3);
	mq_store_close(st);

	o.fsync = MQ_FSYNC_NEVER;
	assert_int_equal(mq_store_open(f->data, &o, &st, &err), 0);
	assert_int_equal(mq_store_log(st, "t", 1, &l1, &err), 0);
	buf.len = 0;
	n = make_batch(&buf, 1, 1);
	assert_int_equal(mq_log_append(l1, buf.p, n, &base, &err), 0);
	assert_int_equal(mq_store_commit(st, mq_mono_ms(), &err), 0);
	assert_int_equal(mq_store_syncs(st), 0);
	mq_store_close(st);
	mq_buf_free(&buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_check),
		cmocka_unit_test_setup_teardown(test_open_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_not_a_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_parent_unwritable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_same_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_fork, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topic_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_topics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_created, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleting_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partition_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grow_partitions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_read_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_override, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_retain_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_counts_syncs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_partitions_few_descriptors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_create_leaves_nothing, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
