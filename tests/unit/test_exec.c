/*
 * test_exec.c -- runs of a command per message: environment and
 * standard input, retries with backoff then a dead message with its
 * status and first stderr line, timeouts, signals, order within a slot,
 * the concurrency limit, whole output lines, and dropping a slot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "batch.h"
#include "exec.h"

typedef struct done_log {
	int n;
	mq_exec_result_t r[64];
	char value[64][64];
	int fail_next; /* the next done() fails */
} done_log_t;

static int on_done(void *ctx, const mq_exec_result_t *r, mq_err_t *err)
{
	done_log_t *d = ctx;
	if (d->fail_next) {
		d->fail_next = 0;
		return mq_err_set(err, MQ_EIO, "cannot dead-letter");
	}
	if (d->n < 64) {
		d->r[d->n] = *r;
		snprintf(d->value[d->n], sizeof(d->value[0]), "%.*s", (int)r->rec->value_len, r->rec->value);
		d->r[d->n].rec = NULL;
	}
	d->n++;
	return 0;
}

typedef struct fix {
	char dir[64];
	char out[96], err[96];
	int out_fd, err_fd;
	done_log_t d;
	mq_exec_t *x;
	uint32_t max_running;
} fix_t;

static int setup(void **state)
{
	fix_t *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/mq-test-exec-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->out, sizeof(f->out), "%s/out", f->dir);
	snprintf(f->err, sizeof(f->err), "%s/err", f->dir);
	f->out_fd = open(f->out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	f->err_fd = open(f->err, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fix_t *f = *state;
	mq_exec_free(f->x);
	close(f->out_fd);
	close(f->err_fd);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void make(fix_t *f, const char *cmd, uint32_t conc, uint32_t attempts, int64_t timeout_ms)
{
	mq_exec_opts_t o = {.cmd = cmd, .concurrency = conc, .max_attempts = attempts, .backoff_min_ms = 1,
			    .backoff_max_ms = 20, .timeout_ms = timeout_ms, .out_fd = f->out_fd, .err_fd = f->err_fd};
	mq_err_t err;
	assert_int_equal(mq_exec_new(&o, on_done, &f->d, &f->x, &err), 0);
}

static void push(fix_t *f, uint32_t slot, uint64_t off, const char *value, const char *key, const char *id,
		 const char *hname, const char *hval)
{
	mq_buf_t buf = {0};
	mq_batch_builder_t b;
	mq_batch_begin(&b, &buf);
	mq_header_t h = {(const uint8_t *)hname, hname ? strlen(hname) : 0, (const uint8_t *)hval,
			 hval ? strlen(hval) : 0};
	assert_int_equal(mq_batch_add(&b, 1700000000123, key, key ? strlen(key) : 0, value, strlen(value), id,
				      id ? strlen(id) : 0, hname ? &h : NULL, hname ? 1u : 0u),
			 0);
	assert_true(mq_batch_finish(&b) > 0);
	mq_batch_iter_t it;
	mq_record_t rec;
	mq_err_t err;
	assert_int_equal(mq_batch_iter_init(&it, buf.p, buf.len, &err), 0);
	assert_int_equal(mq_batch_iter_next(&it, &rec), 1);
	rec.offset = off;
	assert_int_equal(mq_exec_push(f->x, slot, "t", slot, &rec, &err), 0);
	mq_buf_free(&buf);
}

/* Poll until nothing is queued or running (at most ~10 s). */
static void run_all(fix_t *f)
{
	mq_err_t err;
	int64_t until = mq_mono_ms() + 10000;
	while ((mq_exec_total(f->x) || mq_exec_nrunning(f->x)) && mq_mono_ms() < until) {
		int rc = mq_exec_poll(f->x, 50, &err);
		if (rc)
			fail_msg("poll: %s", err.msg);
		if (mq_exec_nrunning(f->x) > f->max_running)
			f->max_running = mq_exec_nrunning(f->x);
	}
	assert_int_equal(mq_exec_total(f->x), 0);
	assert_int_equal(mq_exec_nrunning(f->x), 0);
}

static char *slurp(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static void test_env_and_stdin(void **state)
{
	fix_t *f = *state;
	make(f, "printf '%s|%s|%s|%s|%s|%s|%s|%s|%s\\n' \"$MQ_TOPIC\" \"$MQ_PARTITION\" \"$MQ_OFFSET\" \"$MQ_KEY\" "
		"\"$MQ_ID\" \"$MQ_ATTEMPT\" \"$MQ_TIMESTAMP\" \"$MQ_HEADERS\" \"$MQ_HEADER_TRACE_ID\"; cat",
	     1, 1, 0);
	push(f, 3, 7, "hello", "k1", "id-9", "trace-id", "abc");
	run_all(f);
	assert_int_equal(f->d.n, 1);
	assert_true(f->d.r[0].ok);
	assert_int_equal(f->d.r[0].offset, 7);
	assert_int_equal(f->d.r[0].attempts, 1);
	assert_string_equal(slurp(f->out), "t|3|7|k1|id-9|1|1700000000123|1|abc\nhello\n");
}

static void test_retry_then_dead(void **state)
{
	fix_t *f = *state;
	make(f, "echo \"boom $MQ_ATTEMPT\" >&2; echo second >&2; exit 3", 1, 3, 0);
	push(f, 0, 0, "v", NULL, NULL, NULL, NULL);
	run_all(f);
	assert_int_equal(f->d.n, 1);
	assert_false(f->d.r[0].ok);
	assert_int_equal(f->d.r[0].attempts, 3);
	assert_string_equal(f->d.r[0].status, "exit 3");
	assert_string_equal(f->d.r[0].first_err, "boom 3");
	assert_string_equal(slurp(f->err), "t/0/0: boom 1\nt/0/0: second\nt/0/0: boom 2\nt/0/0: second\n"
					   "t/0/0: boom 3\nt/0/0: second\n");
}

static void test_success_on_second_attempt(void **state)
{
	fix_t *f = *state;
	make(f, "[ \"$MQ_ATTEMPT\" -ge 2 ]", 1, 5, 0);
	push(f, 0, 0, "v", NULL, NULL, NULL, NULL);
	run_all(f);
	assert_int_equal(f->d.n, 1);
	assert_true(f->d.r[0].ok);
	assert_int_equal(f->d.r[0].attempts, 2);
}

static void test_timeout_and_signal(void **state)
{
	fix_t *f = *state;
	make(f, "if [ \"$MQ_OFFSET\" = 0 ]; then sleep 30; else kill -9 $$; fi", 2, 1, 300);
	push(f, 0, 0, "v", NULL, NULL, NULL, NULL);
	push(f, 1, 1, "v", NULL, NULL, NULL, NULL);
	int64_t t0 = mq_mono_ms();
	run_all(f);
	assert_true(mq_mono_ms() - t0 < 5000); /* the sleep was killed, not waited for */
	assert_int_equal(f->d.n, 2);
	for (int i = 0; i < 2; i++) {
		assert_false(f->d.r[i].ok);
		if (f->d.r[i].offset == 0)
			assert_string_equal(f->d.r[i].status, "timeout after 300 ms");
		else
			assert_non_null(strstr(f->d.r[i].status, "signal 9"));
	}
}

/* 3 slots x 6 messages, 2 at once: each slot in order, one run per slot
 * at a time, never more than 2 runs. */
static void test_order_and_concurrency(void **state)
{
	fix_t *f = *state;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "echo \"$MQ_PARTITION $MQ_OFFSET s\" >>%s/log; sleep 0.02; "
				   "echo \"$MQ_PARTITION $MQ_OFFSET e\" >>%s/log", f->dir, f->dir);
	make(f, cmd, 2, 1, 0);
	for (uint64_t o = 0; o < 6; o++)
		for (uint32_t s = 0; s < 3; s++)
			push(f, s, o, "v", NULL, NULL, NULL, NULL);
	run_all(f);
	assert_int_equal(f->d.n, 18);
	assert_int_equal(f->max_running, 2);
	int64_t last[3] = {-1, -1, -1};
	for (int i = 0; i < 18; i++) {
		uint32_t s = f->d.r[i].partition;
		assert_int_equal((int64_t)f->d.r[i].offset, last[s] + 1);
		last[s] = (int64_t)f->d.r[i].offset;
	}
	char path[96];
	snprintf(path, sizeof(path), "%s/log", f->dir);
	char *log = slurp(path), *line = strtok(log, "\n");
	int open[3] = {-1, -1, -1}, running = 0;
	while (line) {
		unsigned p, o;
		char k;
		assert_int_equal(sscanf(line, "%u %u %c", &p, &o, &k), 3);
		if (k == 's') {
			assert_int_equal(open[p], -1); /* never two runs of one slot */
			open[p] = (int)o;
			running++;
			assert_true(running <= 2);
		} else {
			assert_int_equal(open[p], (int)o);
			open[p] = -1;
			running--;
		}
		line = strtok(NULL, "\n");
	}
}

/* Output of runs at the same time: whole lines, never mixed. */
static void test_whole_lines(void **state)
{
	fix_t *f = *state;
	make(f, "printf 'aaa%s' \"$MQ_PARTITION\"; sleep 0.1; printf 'bbb\\nccc'", 2, 1, 0);
	push(f, 0, 0, "v", NULL, NULL, NULL, NULL);
	push(f, 1, 0, "v", NULL, NULL, NULL, NULL);
	run_all(f);
	char *out = slurp(f->out);
	int a0 = strstr(out, "aaa0bbb\n") != NULL, a1 = strstr(out, "aaa1bbb\n") != NULL;
	assert_true(a0 && a1);
	assert_int_equal(strlen(out), 2 * strlen("aaa0bbb\nccc\n"));
}

/* A dropped slot keeps the run going on and forgets the rest; a done()
 * that fails leaves its message unfinished and queued. */
static void test_drop_and_failed_done(void **state)
{
	fix_t *f = *state;
	make(f, "sleep 0.2", 1, 1, 0);
	for (uint64_t o = 0; o < 4; o++)
		push(f, 0, o, "v", NULL, NULL, NULL, NULL);
	mq_err_t err;
	assert_int_equal(mq_exec_poll(f->x, 0, &err), 0);
	assert_true(mq_exec_running(f->x, 0));
	mq_exec_drop(f->x, 0);
	assert_int_equal(mq_exec_queued(f->x, 0), 1);
	f->d.fail_next = 1;
	int64_t until = mq_mono_ms() + 5000;
	int rc = 0;
	while (rc == 0 && mq_mono_ms() < until)
		rc = mq_exec_poll(f->x, 50, &err);
	assert_int_equal(rc, -MQ_EIO);
	assert_int_equal(f->d.n, 0);
	assert_int_equal(mq_exec_queued(f->x, 0), 1); /* still there, to run again */
	run_all(f);
	assert_int_equal(f->d.n, 1);
	assert_int_equal(f->d.r[0].offset, 0);
}

static void test_parse_backoff(void **state)
{
	(void)state;
	int64_t a, b;
	mq_err_t err;
	assert_int_equal(mq_exec_parse_backoff("100ms,5s", &a, &b, &err), 0);
	assert_int_equal(a, 100);
	assert_int_equal(b, 5000);
	assert_int_equal(mq_exec_parse_backoff("2s", &a, &b, &err), 0);
	assert_int_equal(a, 2000);
	assert_int_equal(b, 120000);
	assert_int_equal(mq_exec_parse_backoff("5s,1s", &a, &b, &err), -MQ_EINVAL);
	assert_int_equal(mq_exec_parse_backoff("x", &a, &b, &err), -MQ_EINVAL);
	assert_int_equal(mq_exec_parse_backoff(",1s", &a, &b, &err), -MQ_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_env_and_stdin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_then_dead, setup, teardown),
		cmocka_unit_test_setup_teardown(test_success_on_second_attempt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_and_signal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_order_and_concurrency, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whole_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_and_failed_done, setup, teardown),
		cmocka_unit_test(test_parse_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
