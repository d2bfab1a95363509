/*
 * test_cli.c -- the options every client program shares: -w in all its
 * forms (durations, 0 and inf for waiting forever) and -b taken as given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timeout_forms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
