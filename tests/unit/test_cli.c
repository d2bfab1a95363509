/*
 * test_cli.c -- unit tests for lib/cli.c: the options every client
 * program shares (-w in all its forms: durations, 0 and inf for waiting
 * forever; -b taken as given) and what a mistyped command word is taken
 * to mean (mq_cli_suggest).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"

static int parse_w(const char *arg, mq_cli_t *cli, mq_err_t *err)
{
	char *argv[] = {"mq-test", "-w", (char *)arg, NULL};
	mq_cli_init(cli);
	return mq_cli_option(cli, 'w', arg, argv, err);
}

static void test_timeout_forms(void **state)
{
	(void)state;
	mq_cli_t cli;
	mq_err_t err;
	mq_cli_init(&cli);
	assert_int_equal(mq_cli_timeout(&cli), MQ_DEFAULT_TIMEOUT_MS);
	assert_int_equal(parse_w("250ms", &cli, &err), MQ_CLI_DONE);
	assert_int_equal(mq_cli_timeout(&cli), 250);
	assert_int_equal(parse_w("2", &cli, &err), MQ_CLI_DONE);
	assert_int_equal(mq_cli_timeout(&cli), 2000);
	assert_int_equal(parse_w("5m", &cli, &err), MQ_CLI_DONE);
	assert_int_equal(mq_cli_timeout(&cli), 300000);
	/* 0 keeps its own value (mq-bucket --take: one try), and waits forever
	 * as a client timeout, like inf */
	assert_int_equal(parse_w("0", &cli, &err), MQ_CLI_DONE);
	assert_int_equal(cli.timeout_ms, 0);
	assert_true(mq_cli_timeout(&cli) == MQ_TIMEOUT_FOREVER);
	const char *forever[] = {"inf", "infinity"};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(parse_w(forever[i], &cli, &err), MQ_CLI_DONE);
		assert_true(cli.timeout_ms == MQ_TIMEOUT_FOREVER);
		assert_true(mq_cli_timeout(&cli) == MQ_TIMEOUT_FOREVER);
	}
	const char *bad[] = {"soon", "never", "-1s", "10x", ""};
	for (int i = 0; i < 5; i++) {
		assert_int_equal(parse_w(bad[i], &cli, &err), -MQ_EINVAL);
		assert_non_null(strstr(err.msg, "0 or inf"));
	}
}

static const char *const words[] = {"topic", "group", "ping", "stats", "verify", "dump", "keygen"};
static const char *const subs[] = {"list", "create", "describe", "delete", "partitions"};
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void expect(const char *word, const char *const *cands, size_t n, const char *want)
{
	const char *got = mq_cli_suggest(word, cands, n);
	print_message("%s -> %s\n", word, got ? got : "(none)");
	if (!want)
		assert_null(got);
	else
		assert_string_equal(got ? got : "(none)", want);
}

static void test_suggest(void **state)
{
	expect("topik", words, N(words), "topic");   /* changed */
	expect("topics", words, N(words), "topic");  /* added */
	expect("grup", words, N(words), "group");    /* dropped */
	expect("pnig", words, N(words), "ping");     /* swapped */
	expect("stat", words, N(words), "stats");
	expect("keyegn", words, N(words), "keygen");
	expect("vrefiy", words, N(words), "verify"); /* two edits in a longer word */
	expect("frobnicate", words, N(words), NULL);
	expect("pong", words, N(words), "ping");
	expect("pang", words, N(words), "ping");
	expect("dmp", words, N(words), "dump");
	expect("top", words, N(words), "topic");     /* a start */
	expect("to", words, N(words), NULL);         /* too short to mean anything */
	expect("x", words, N(words), NULL);
	expect("", words, N(words), NULL);
	expect("topic", words, N(words), NULL);      /* known: nothing to suggest */
	expect("desc", subs, N(subs), "describe");
	expect("del", subs, N(subs), "delete");      /* the first of two that start so */
	expect("lst", subs, N(subs), "list");
	expect("crate", subs, N(subs), "create");
	expect("delte", subs, N(subs), "delete");
	expect("partition", subs, N(subs), "partitions");
	expect("remove", subs, N(subs), NULL);
	char longw[200];
	memset(longw, 'a', sizeof longw - 1);
	longw[sizeof longw - 1] = 0;
	expect(longw, words, N(words), NULL);
	expect("topik", words, 0, NULL);
}

static void test_common_options(void **state)
{
	mq_cli_t cli;
	mq_err_t err;
	char *argv[] = {"prog", NULL};
	mq_cli_init(&cli);
	assert_int_equal(cli.timeout_ms, MQ_DEFAULT_TIMEOUT_MS);
	assert_int_equal(mq_cli_option(&cli, 'w', "250ms", argv, &err), MQ_CLI_DONE);
	assert_int_equal(cli.timeout_ms, 250);
	assert_int_equal(mq_cli_option(&cli, 'q', NULL, argv, &err), MQ_CLI_DONE);
	assert_true(cli.quiet);
	assert_int_equal(mq_cli_option(&cli, 'x', NULL, argv, &err), MQ_CLI_NOT_MINE);
}

static volatile sig_atomic_t got;

/* mq_cli_sleep_until ends at its deadline, at once when the flag is up,
 * and as soon as a signal sets it: a SIGTERM 100 ms into a 20 s sleep. */
static void test_sleep_until(void **state)
{
	(void)state;
	mq_cli_signals(&got);
	int64_t t0 = mq_mono_ms();
	mq_cli_sleep_until(t0 + 60, &got);
	assert_true(mq_mono_ms() - t0 >= 60);
	got = 1;
	t0 = mq_mono_ms();
	mq_cli_sleep_until(t0 + 20000, &got);
	assert_true(mq_mono_ms() - t0 < 10000);
	got = 0;
	pid_t parent = getpid(), child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		usleep(100000);
		kill(parent, SIGTERM);
		_exit(0);
	}
	t0 = mq_mono_ms();
	mq_cli_sleep_until(t0 + 20000, &got);
	assert_int_equal(got, 1); /* counted: a second signal would make it 2 */
	assert_true(mq_mono_ms() - t0 < 10000);
	waitpid(child, NULL, 0);
	/* Each signal also leaves a byte in the self-pipe, for waits that
	 * cannot let signals in atomically; read empty, it waits again. */
	int fd = mq_cli_signal_fd();
	assert_true(fd >= 0);
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&pf, 1, 0), 1);
	mq_drain_fd(fd);
	assert_int_equal(poll(&pf, 1, 0), 0);
	raise(SIGINT);
	assert_int_equal(got, 2);
	assert_int_equal(poll(&pf, 1, 0), 1);
	mq_drain_fd(fd);
	/* The signals are let in again afterwards. */
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	assert_false(sigismember(&now, SIGTERM));
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timeout_forms),
		cmocka_unit_test(test_suggest),
		cmocka_unit_test(test_common_options),
		cmocka_unit_test(test_sleep_until),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
