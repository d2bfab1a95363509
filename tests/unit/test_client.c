/*
 * test_client.c -- the pure parts of lib/client.c: points in time given
 * by people (mq-pub --at, mq-sub -o @TIME) and the due and expiry times
 * a producer writes into each batch header (--at, --delay, --ttl), and
 * broker endpoints as people write them (-b, MQ_BROKER).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"

static void test_time_parse_forms(void **state)
{
	int64_t ms;
	mq_err_t err;
	const int64_t now = 1800000000000;
	assert_int_equal(mq_time_parse("1764000000000", now, &ms, &err), 0);
	assert_int_equal(ms, 1764000000000);
	assert_int_equal(mq_time_parse("@1764000000000", now, &ms, &err), 0);
	assert_int_equal(ms, 1764000000000);
	assert_int_equal(mq_time_parse("2026-11-24T10:00:00Z", now, &ms, &err), 0);
	assert_int_equal(ms, 1795514400000);
	assert_int_equal(mq_time_parse("2026-11-24T11:00:00.250+01:00", now, &ms, &err), 0);
	assert_int_equal(ms, 1795514400250);
	assert_int_equal(mq_time_parse("-1h", now, &ms, &err), 0);
	assert_int_equal(ms, now - 3600000);
	assert_int_equal(mq_time_parse("+10m", now, &ms, &err), 0);
	assert_int_equal(ms, now + 600000);
	assert_int_equal(mq_time_parse("tomorrow", now, &ms, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "'tomorrow'"));
	assert_int_equal(mq_time_parse("2026-13-01T00:00:00Z", now, &ms, &err), -MQ_EINVAL);
	assert_int_equal(mq_time_parse("+", now, &ms, &err), -MQ_EINVAL);
	/* Seconds as date +%s prints them, below 10^11; milliseconds above. */
	assert_int_equal(mq_time_parse("@1796221413", now, &ms, &err), 0);
	assert_int_equal(ms, 1796221413000);
	assert_int_equal(mq_time_parse("99999999999", now, &ms, &err), 0);
	assert_int_equal(ms, 99999999999000);
	assert_int_equal(mq_time_parse("100000000000", now, &ms, &err), 0);
	assert_int_equal(ms, 100000000000);
	assert_int_equal(mq_time_parse("0", now, &ms, &err), 0);
	assert_int_equal(ms, 0);
	/* Compound durations. */
	assert_int_equal(mq_time_parse("@-1h30m", now, &ms, &err), 0);
	assert_int_equal(ms, now - 5400000);
	/* Impossible dates, and junk after a date. */
	static const char *bad[] = {"2026-02-30", "2026-02-29T00:00", "2026-04-31", "2026-11-24T24:00",
				    "2026-11-24T10:60", "2026-11-24T10", "2026-11-24Z", "2026-11-24T10:00:00+1",
				    "2026-1-24", "26-11-24", "2026-11-24T10:00:00.Z", "2026-11-24x", "1969-12-31"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (mq_time_parse(bad[i], now, &ms, &err) != -MQ_EINVAL)
			fail_msg("'%s' accepted as %lld", bad[i], (long long)ms);
	assert_int_equal(mq_time_parse("2028-02-29T00:00Z", now, &ms, &err), 0);
	assert_int_equal(ms, 1835395200000);
	assert_int_equal(mq_time_parse("2026-11-24T10:00Z", now, &ms, &err), 0);
	assert_int_equal(ms, 1795514400000);
}

/* Without a zone, a calendar time is local time. */
static void test_time_parse_local(void **state)
{
	int64_t ms;
	mq_err_t err;
	char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
	setenv("TZ", "XYZ-1", 1); /* POSIX: one hour east of UTC, no summer time */
	tzset();
	assert_int_equal(mq_time_parse("@2026-11-24", 0, &ms, &err), 0);
	assert_int_equal(ms, 1795474800000); /* 2026-11-23T23:00:00Z */
	assert_int_equal(mq_time_parse("2026-11-24T10:00", 0, &ms, &err), 0);
	assert_int_equal(ms, 1795510800000);
	assert_int_equal(mq_time_parse("2026-11-24 10:00:30", 0, &ms, &err), 0);
	assert_int_equal(ms, 1795510830000);
	assert_int_equal(mq_time_parse("2026-11-24T10:00:00Z", 0, &ms, &err), 0);
	assert_int_equal(ms, 1795514400000); /* a zone wins over TZ */
	if (old) {
		setenv("TZ", old, 1);
		free(old);
	} else {
		unsetenv("TZ");
	}
	tzset();
}

static void test_offset_spec_keeps_time_forms(void **state)
{
	mq_offset_spec_t o;
	mq_err_t err;
	assert_int_equal(mq_offset_spec_parse("@-1s", 5000, &o, &err), 0);
	assert_int_equal(o.kind, MQ_OFF_TIME);
	assert_int_equal(o.v, 4000);
	assert_int_equal(mq_offset_spec_parse("@x", 5000, &o, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "offset '@x'"));
}

static void test_times_apply(void **state)
{
	int64_t d, e;
	const int64_t now = 1000000;
	mq_times_t none = {0};
	mq_times_apply(&none, now, &d, &e);
	assert_int_equal(d, 0);
	assert_int_equal(e, 0);
	/* TTL alone: from now. */
	mq_times_apply(&(mq_times_t){.ttl_ms = 500}, now, &d, &e);
	assert_int_equal(d, 0);
	assert_int_equal(e, now + 500);
	/* Delay: due later, the TTL counts from the due time. */
	mq_times_apply(&(mq_times_t){.delay_ms = 2000, .ttl_ms = 500}, now, &d, &e);
	assert_int_equal(d, now + 2000);
	assert_int_equal(e, now + 2500);
	/* --at in the future, and in the past (delivered at once). */
	mq_times_apply(&(mq_times_t){.at_ms = now + 7}, now, &d, &e);
	assert_int_equal(d, now + 7);
	mq_times_apply(&(mq_times_t){.at_ms = now - 7, .ttl_ms = 1}, now, &d, &e);
	assert_int_equal(d, 0);
	assert_int_equal(e, now + 1);
	mq_times_apply(&(mq_times_t){.at_ms = now}, now, &d, &e);
	assert_int_equal(d, 0);
}

static void check_ep(const char *in, const char *want)
{
	char out[128];
	mq_err_t err;
	if (mq_endpoint_normalize(in, out, sizeof out, &err))
		fail_msg("'%s': %s", in, err.msg);
	assert_string_equal(out, want);
}

static void check_ep_bad(const char *in, const char *says)
{
	char out[128];
	mq_err_t err;
	assert_int_equal(mq_endpoint_normalize(in, out, sizeof out, &err), -MQ_EINVAL);
	if (!strstr(err.msg, says) || !strstr(err.msg, "HOST:PORT"))
		fail_msg("'%s': '%s' does not say '%s' and the forms", in, err.msg, says);
}

static void test_endpoint_forms(void **state)
{
	(void)state;
	check_ep("tcp://127.0.0.1:7733", "tcp://127.0.0.1:7733");
	check_ep("ipc:///run/mq.sock", "ipc:///run/mq.sock");
	check_ep("localhost:7733", "tcp://localhost:7733");
	check_ep("mq.example.org:9", "tcp://mq.example.org:9");
	check_ep("10.1.2.3:65535", "tcp://10.1.2.3:65535");
	check_ep(":7734", "tcp://127.0.0.1:7734");
	check_ep("[::1]:7733", "tcp://[::1]:7733");
	check_ep("*:7733", "tcp://*:7733");
	check_ep_bad("localhost", "no port");
	check_ep_bad("localhost:", "port ''");
	check_ep_bad("localhost:0", "port '0'");
	check_ep_bad("localhost:65536", "port '65536'");
	check_ep_bad("localhost:77x", "port '77x'");
	check_ep_bad("host:-1", "port '-1'");
	check_ep_bad("::1:7733", "brackets");
	char small[16];
	mq_err_t err;
	assert_int_equal(mq_endpoint_normalize("a-long-host-name:7733", small, sizeof small, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "too long"));
	assert_int_equal(mq_endpoint_normalize("tcp://a-long-host-name:7733", small, sizeof small, &err), -MQ_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time_parse_forms),
		cmocka_unit_test(test_time_parse_local),
		cmocka_unit_test(test_offset_spec_keeps_time_forms),
		cmocka_unit_test(test_times_apply),
		cmocka_unit_test(test_endpoint_forms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
