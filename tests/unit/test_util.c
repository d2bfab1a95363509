/*
 * test_util.c -- unit tests for lib/util.c and the inline helpers in
 * lib/util.h: errors, buffers, the parsers of durations, sizes and
 * integers (every accepted form and every kind of refusal), clocks,
 * little-endian and varint coding, and the system-call loops.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* ---- errors ---- */

static void test_err_set(void **state)
{
	(void)state;
	mq_err_t err;
	memset(&err, 0, sizeof err);
	err.sys = 99;
	errno = EAGAIN;
	assert_int_equal(mq_err_set(&err, MQ_ENOENT, "topic %s: no partition %d", "t", 3), -MQ_ENOENT);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(err.code, MQ_ENOENT);
	assert_int_equal(err.sys, 0);
	assert_string_equal(err.msg, "topic t: no partition 3");
	assert_int_equal(mq_err_set(NULL, MQ_EINVAL, "x"), -MQ_EINVAL);

	/* A message longer than msg is cut, not overrun. */
	char big[2000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	mq_err_set(&err, MQ_EINVAL, "%s", big);
	assert_int_equal(strlen(err.msg), sizeof err.msg - 1);

	/* The message in err may be an argument: a context put before it
	 * (vsnprintf into the buffer it reads from garbled this). */
	mq_err_set(&err, MQ_EINVAL, "broker endpoint 'x': no port");
	mq_err_set(&err, MQ_EINVAL, "-l: %s", err.msg);
	assert_string_equal(err.msg, "-l: broker endpoint 'x': no port");
	errno = EIO;
	mq_err_sys(&err, "%s, again", err.msg);
	char want[600];
	snprintf(want, sizeof want, "-l: broker endpoint 'x': no port, again: %s", strerror(EIO));
	assert_string_equal(err.msg, want);
}

static void test_err_sys(void **state)
{
	(void)state;
	mq_err_t err;
	memset(&err, 0, sizeof err);

	errno = ENOSPC;
	assert_int_equal(mq_err_sys(&err, "write %s", "f.log"), -MQ_ENOSPC);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(err.code, MQ_ENOSPC);
	assert_int_equal(err.sys, ENOSPC);
	char want[600];
	snprintf(want, sizeof want, "write f.log: %s", strerror(ENOSPC));
	assert_string_equal(err.msg, want);

	errno = EDQUOT;
	assert_int_equal(mq_err_sys(&err, "write"), -MQ_ENOSPC);
	assert_int_equal(err.sys, EDQUOT);
	assert_int_equal(errno, EDQUOT);

	errno = EIO;
	assert_int_equal(mq_err_sys(&err, "read"), -MQ_EIO);
	assert_int_equal(err.code, MQ_EIO);
	assert_int_equal(err.sys, EIO);

	errno = ENOENT;
	assert_int_equal(mq_err_sys(&err, "open %s", "x"), -MQ_EIO);
	assert_int_equal(err.sys, ENOENT);
	snprintf(want, sizeof want, "open x: %s", strerror(ENOENT));
	assert_string_equal(err.msg, want);

	errno = ENOSPC;
	assert_int_equal(mq_err_sys(NULL, "x"), -MQ_ENOSPC);
	assert_int_equal(errno, ENOSPC);

	/* Too long: the caller's text is cut, the system's reason kept. */
	char big[2000];
	memset(big, 'p', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	errno = ENOSPC;
	mq_err_sys(&err, "%s", big);
	snprintf(want, sizeof want, ": %s", strerror(ENOSPC));
	assert_int_equal(strlen(err.msg), sizeof err.msg - 1);
	assert_string_equal(err.msg + strlen(err.msg) - strlen(want), want);
	assert_int_equal(err.msg[0], 'p');
}

/* ---- buffers ---- */

static void test_buf_many_appends(void **state)
{
	(void)state;
	mq_buf_t b = { 0 };
	size_t caps = 0, last_cap = 0, total = 0;
	uint8_t chunk[300];
	for (size_t i = 0; i < sizeof chunk; i++)
		chunk[i] = (uint8_t)i;
	/* Varying sizes, including 0, so lengths hit all sorts of caps. */
	for (size_t i = 0; i < 20000; i++) {
		size_t n = (i * 7919) % sizeof chunk;
		assert_int_equal(mq_buf_append(&b, chunk, n), 0);
		total += n;
		assert_int_equal(b.len, total);
		assert_true(b.cap >= b.len);
		if (b.cap != last_cap) {
			caps++;
			last_cap = b.cap;
		}
	}
	/* Geometric growth: about log2(total) reallocations, not total/n. */
	assert_true(caps < 40);
	size_t off = 0;
	for (size_t i = 0; i < 20000; i++) {
		size_t n = (i * 7919) % sizeof chunk;
		if (n)
			assert_memory_equal(b.p + off, chunk, n);
		off += n;
	}
	assert_int_equal(off, b.len);
	mq_buf_free(&b);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	mq_buf_free(&b); /* twice is fine */
	mq_buf_free(NULL);
}

static void test_buf_single_bytes(void **state)
{
	(void)state;
	mq_buf_t b = { 0 };
	size_t reallocs = 0, last_cap = 0;
	for (size_t i = 0; i < 1000000; i++) {
		uint8_t c = (uint8_t)(i * 31);
		assert_int_equal(mq_buf_append(&b, &c, 1), 0);
		if (b.cap != last_cap) {
			reallocs++;
			last_cap = b.cap;
		}
	}
	assert_int_equal(b.len, 1000000);
	assert_true(reallocs <= 20);
	for (size_t i = 0; i < b.len; i++)
		if (b.p[i] != (uint8_t)(i * 31))
			fail_msg("byte %zu wrong", i);
	mq_buf_free(&b);
}

static void test_buf_reserve(void **state)
{
	(void)state;
	mq_buf_t b = { 0 };
	/* Empty appends on an empty buffer, even with NULL data. */
	assert_int_equal(mq_buf_append(&b, NULL, 0), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(mq_buf_reserve(&b, 0), 0);

	assert_int_equal(mq_buf_append(&b, "hello", 5), 0);
	/* A large reserve is granted at once, without copying the content away. */
	assert_int_equal(mq_buf_reserve(&b, (size_t)256 << 20), 0);
	assert_true(b.cap >= ((size_t)256 << 20) + 5);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.p, "hello", 5);
	size_t cap = b.cap;
	/* Within capacity: nothing moves. */
	uint8_t *p = b.p;
	assert_int_equal(mq_buf_reserve(&b, 1000), 0);
	assert_ptr_equal(b.p, p);
	assert_int_equal(b.cap, cap);

	/* Impossible sizes and len + extra overflowing are refused, and the
	 * buffer stays as it was. */
	assert_int_equal(mq_buf_reserve(&b, SIZE_MAX), -MQ_ENOMEM);
	assert_int_equal(mq_buf_reserve(&b, SIZE_MAX - 4), -MQ_ENOMEM);
	assert_int_equal(mq_buf_reserve(&b, (size_t)PTRDIFF_MAX), -MQ_ENOMEM);
	assert_int_equal(mq_buf_append(&b, "x", SIZE_MAX), -MQ_ENOMEM);
	assert_ptr_equal(b.p, p);
	assert_int_equal(b.len, 5);
	assert_int_equal(b.cap, cap);
	assert_memory_equal(b.p, "hello", 5);
	mq_buf_free(&b);

	mq_buf_t e = { 0 };
	assert_int_equal(mq_buf_reserve(&e, SIZE_MAX), -MQ_ENOMEM);
	assert_null(e.p);
	assert_int_equal(mq_buf_reserve(&e, 1), 0);
	assert_non_null(e.p);
	mq_buf_free(&e);
}

/* ---- durations ---- */

static void test_duration_ok(void **state)
{
	(void)state;
	static const struct { const char *s; int64_t ms; } ok[] = {
		{ "0", 0 },
		{ "1", 1000 },
		{ "30", 30000 },
		{ "0ms", 0 },
		{ "1ms", 1 },
		{ "250ms", 250 },
		{ "0s", 0 },
		{ "10s", 10000 },
		{ "5m", 300000 },
		{ "2h", 7200000 },
		{ "1d", 86400000 },
		{ "7d", 604800000 },
		{ "007s", 7000 },
		{ "9223372036854775807ms", INT64_MAX },
		{ "9223372036854775s", INT64_C(9223372036854775000) },
		{ "9223372036854775", INT64_C(9223372036854775000) },
		{ "153722867280912m", INT64_C(153722867280912) * 60000 },
		{ "2562047788015h", INT64_C(2562047788015) * 3600000 },
		{ "106751991167d", INT64_C(106751991167) * 86400000 },
		/* compounds, largest unit first, each once */
		{ "1h30m", 5400000 },
		{ "1m1s", 61000 },
		{ "1d2h3m4s5ms", 93784005 },
		{ "1s500ms", 1500 },
		{ "2h0m", 7200000 },
		{ "106751991166d86399s", INT64_C(106751991166) * 86400000 + 86399000 },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		mq_err_t err = { 0 };
		int64_t ms = -42;
		if (mq_parse_duration_ms(ok[i].s, &ms, &err) != 0)
			fail_msg("'%s' refused: %s", ok[i].s, err.msg);
		if (ms != ok[i].ms)
			fail_msg("'%s' gave %lld, want %lld", ok[i].s, (long long)ms, (long long)ok[i].ms);
	}
}

static void test_duration_bad(void **state)
{
	(void)state;
	static const char *junk[] = {
		"", "-1s", "-1", "+1s", "10x", "abc", "s", "ms", "d", " 1s", "1s ", "1 s", "1\ts",
		"10S", "1MS", "1H", "1D", "1sm", "1ss", "1msx", "0x10", "1e3", "1,000", "1h30", "1h 30m",
		"1hm", "h1", "1h-30m",
		"1us", "1ns", "1w", "1y", "1min", "1sec",
		"99999999999999999999x",
	};
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		mq_err_t err = { 0 };
		int64_t ms = -42;
		if (mq_parse_duration_ms(junk[i], &ms, &err) != -MQ_EINVAL)
			fail_msg("'%s' accepted as %lld", junk[i], (long long)ms);
		assert_int_equal(ms, -42);
		assert_int_equal(err.code, MQ_EINVAL);
		char want[300];
		snprintf(want, sizeof want,
		         "duration '%s': not understood (use e.g. 250ms, 10s, 5m, 2h, 1d or 1h30m)", junk[i]);
		assert_string_equal(err.msg, want);
	}

	static const char *frac[] = { "1.5", "1.5s", "0.5ms", "1.", "2.0h" };
	for (size_t i = 0; i < sizeof frac / sizeof frac[0]; i++) {
		mq_err_t err = { 0 };
		int64_t ms = -42;
		assert_int_equal(mq_parse_duration_ms(frac[i], &ms, &err), -MQ_EINVAL);
		assert_int_equal(ms, -42);
		assert_non_null(strstr(err.msg, frac[i]));
		assert_non_null(strstr(err.msg, "fractions are not accepted"));
		assert_non_null(strstr(err.msg, "1500ms"));
	}

	static const char *big[] = {
		"99999999999999999999d", "99999999999999999999", "99999999999999999999ms",
		"9223372036854775808ms", "9223372036854776s", "9223372036854776",
		"153722867280913m", "2562047788016h", "106751991168d", "18446744073709551615ms",
		"18446744073709551616ms",
	};
	for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
		mq_err_t err = { 0 };
		int64_t ms = -42;
		if (mq_parse_duration_ms(big[i], &ms, &err) != -MQ_EINVAL)
			fail_msg("'%s' accepted as %lld", big[i], (long long)ms);
		assert_int_equal(ms, -42);
		char want[300];
		snprintf(want, sizeof want, "duration '%s': too large", big[i]);
		assert_string_equal(err.msg, want);
	}

	static const char *order[] = { "30m1h", "1h1h", "1s1d", "5ms1s", "1m1m" };
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		mq_err_t err = { 0 };
		int64_t ms = -42;
		assert_int_equal(mq_parse_duration_ms(order[i], &ms, &err), -MQ_EINVAL);
		assert_int_equal(ms, -42);
		assert_non_null(strstr(err.msg, "from the largest unit to the smallest"));
	}
	{
		mq_err_t err = { 0 };
		int64_t ms = -42;
		assert_int_equal(mq_parse_duration_ms("106751991167d8h", &ms, &err), -MQ_EINVAL);
		assert_non_null(strstr(err.msg, "too large"));
	}

	/* err may be NULL. */
	int64_t ms = -42;
	assert_int_equal(mq_parse_duration_ms("junk", &ms, NULL), -MQ_EINVAL);
	assert_int_equal(ms, -42);
}

static void test_duration_long_input(void **state)
{
	(void)state;
	/* A huge input is quoted in part so that the hint still fits. */
	char s[2000];
	memset(s, 'z', sizeof s - 1);
	s[sizeof s - 1] = '\0';
	mq_err_t err = { 0 };
	int64_t ms;
	assert_int_equal(mq_parse_duration_ms(s, &ms, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "(use e.g. 250ms, 10s, 5m, 2h, 1d or 1h30m)"));
}

/* ---- sizes ---- */

static void test_size_ok(void **state)
{
	(void)state;
	static const struct { const char *s; uint64_t v; } ok[] = {
		{ "0", 0 },
		{ "1", 1 },
		{ "512", 512 },
		{ "0KiB", 0 },
		{ "1b", 1 },
		{ "512B", 512 },
		{ "64KiB", 65536 },
		{ "64kib", 65536 },
		{ "64KIB", 65536 },
		{ "64K", 65536 },
		{ "64k", 65536 },
		{ "64KB", 64000 },
		{ "64kB", 64000 },
		{ "64kb", 64000 },
		{ "1MiB", 1048576 },
		{ "1M", 1048576 },
		{ "1m", 1048576 },
		{ "1MB", 1000000 },
		{ "1mb", 1000000 },
		{ "1GiB", 1073741824 },
		{ "1G", 1073741824 },
		{ "1GB", 1000000000 },
		{ "1TiB", UINT64_C(1099511627776) },
		{ "1T", UINT64_C(1099511627776) },
		{ "1TB", UINT64_C(1000000000000) },
		{ "3tib", UINT64_C(3) << 40 },
		{ "0010MiB", 10485760 },
		{ "18446744073709551615", UINT64_MAX },
		{ "18446744073709551615b", UINT64_MAX },
		{ "16777215TiB", UINT64_C(16777215) << 40 },
		{ "17179869183GiB", UINT64_C(17179869183) << 30 },
		{ "18446744073709551KB", UINT64_C(18446744073709551000) },
		{ "18446744TB", UINT64_C(18446744000000000000) },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		mq_err_t err = { 0 };
		uint64_t v = 42;
		if (mq_parse_size(ok[i].s, &v, &err) != 0)
			fail_msg("'%s' refused: %s", ok[i].s, err.msg);
		if (v != ok[i].v)
			fail_msg("'%s' gave %llu, want %llu", ok[i].s, (unsigned long long)v,
			         (unsigned long long)ok[i].v);
	}
}

static void test_size_bad(void **state)
{
	(void)state;
	static const char *junk[] = {
		"", "12XB", "-1", "+1", "-1KiB", "KiB", "K", "B", " 1", "1 ", "1 KiB", "1KiBB",
		"1.5MiB", "1.5", "0x10", "1e6", "1Ki", "1kbit", "1PiB", "1P", "1EiB", "1bb",
		"1KiB1", "1,024",
		"99999999999999999999XB",
	};
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		mq_err_t err = { 0 };
		uint64_t v = 42;
		if (mq_parse_size(junk[i], &v, &err) != -MQ_EINVAL)
			fail_msg("'%s' accepted as %llu", junk[i], (unsigned long long)v);
		assert_int_equal(v, 42);
		assert_int_equal(err.code, MQ_EINVAL);
		char want[300];
		snprintf(want, sizeof want,
		         "size '%s': not understood (use e.g. 512, 64KiB, 1MiB, 1GiB)", junk[i]);
		assert_string_equal(err.msg, want);
	}

	static const char *big[] = {
		"18446744073709551616", "99999999999999999999", "99999999999999999999KiB",
		"16777216TiB", "16777216T", "17179869184GiB", "18446744073709552KB",
		"18446745TB", "18446744073709551616b",
	};
	for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
		mq_err_t err = { 0 };
		uint64_t v = 42;
		if (mq_parse_size(big[i], &v, &err) != -MQ_EINVAL)
			fail_msg("'%s' accepted as %llu", big[i], (unsigned long long)v);
		assert_int_equal(v, 42);
		char want[300];
		snprintf(want, sizeof want, "size '%s': too large", big[i]);
		assert_string_equal(err.msg, want);
	}

	uint64_t v = 42;
	assert_int_equal(mq_parse_size("12XB", &v, NULL), -MQ_EINVAL);
	assert_int_equal(v, 42);
}

/* ---- plain integers ---- */

static void test_u64(void **state)
{
	(void)state;
	static const struct { const char *s; uint64_t v; } ok[] = {
		{ "0", 0 },
		{ "1", 1 },
		{ "42", 42 },
		{ "000123", 123 },
		{ "4294967296", UINT64_C(4294967296) },
		{ "18446744073709551614", UINT64_MAX - 1 },
		{ "18446744073709551615", UINT64_MAX },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		mq_err_t err = { 0 };
		uint64_t v = 7;
		if (mq_parse_u64(ok[i].s, &v, &err) != 0)
			fail_msg("'%s' refused: %s", ok[i].s, err.msg);
		assert_true(v == ok[i].v);
	}

	static const char *bad[] = {
		"", "-1", "-0", "+1", " 1", "1 ", "1a", "a1", "0x1", "1.0", "1e3", "1KiB", "1,000",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		mq_err_t err = { 0 };
		uint64_t v = 7;
		if (mq_parse_u64(bad[i], &v, &err) != -MQ_EINVAL)
			fail_msg("'%s' accepted as %llu", bad[i], (unsigned long long)v);
		assert_int_equal(v, 7);
		assert_int_equal(err.code, MQ_EINVAL);
		char want[300];
		snprintf(want, sizeof want, "number '%s': not understood (use digits only, e.g. 42)",
		         bad[i]);
		assert_string_equal(err.msg, want);
	}

	static const char *big[] = {
		"18446744073709551616", "18446744073709551620", "99999999999999999999",
		"100000000000000000000000000000",
	};
	for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
		mq_err_t err = { 0 };
		uint64_t v = 7;
		assert_int_equal(mq_parse_u64(big[i], &v, &err), -MQ_EINVAL);
		assert_int_equal(v, 7);
		assert_non_null(strstr(err.msg, "too large"));
		assert_non_null(strstr(err.msg, big[i]));
	}
	/* Overflowing digits followed by junk are junk, not "too large". */
	mq_err_t err = { 0 };
	uint64_t v;
	assert_int_equal(mq_parse_u64("99999999999999999999x", &v, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "not understood"));
	assert_int_equal(mq_parse_u64("x", &v, NULL), -MQ_EINVAL);
}

/* ---- clocks ---- */

static void test_clocks(void **state)
{
	(void)state;
	int64_t now = mq_now_ms();
	assert_true(now > INT64_C(1577836800000));  /* after 2020-01-01 */
	assert_true(now < INT64_C(4102444800000));  /* before 2100-01-01 */

	int64_t m0 = mq_mono_ms();
	uint64_t n0 = mq_mono_ns();
	int64_t m1 = mq_mono_ms();
	assert_true(m0 >= 0);
	assert_true(m1 >= m0);
	/* The two monotonic readings agree to the millisecond. */
	assert_true((int64_t)(n0 / 1000000) >= m0);
	assert_true((int64_t)(n0 / 1000000) <= m1);

	uint64_t prev = mq_mono_ns();
	for (int i = 0; i < 10000; i++) {
		uint64_t t = mq_mono_ns();
		assert_true(t >= prev);
		prev = t;
	}
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	int64_t before = mq_mono_ms();
	nanosleep(&ts, NULL);
	assert_true(mq_mono_ms() - before >= 19);
}

/* ---- little-endian and varints ---- */

static void test_le(void **state)
{
	(void)state;
	uint8_t buf[32];
	for (size_t off = 0; off < 8; off++) {
		memset(buf, 0xee, sizeof buf);
		mq_put_u16(buf + off, 0x1234);
		assert_int_equal(buf[off], 0x34);
		assert_int_equal(buf[off + 1], 0x12);
		assert_int_equal(buf[off + 2], 0xee);
		assert_int_equal(mq_get_u16(buf + off), 0x1234);

		memset(buf, 0xee, sizeof buf);
		mq_put_u32(buf + off, 0x89abcdefu);
		static const uint8_t w32[] = { 0xef, 0xcd, 0xab, 0x89, 0xee };
		assert_memory_equal(buf + off, w32, sizeof w32);
		assert_int_equal(mq_get_u32(buf + off), 0x89abcdefu);

		memset(buf, 0xee, sizeof buf);
		mq_put_u64(buf + off, UINT64_C(0x0123456789abcdef));
		static const uint8_t w64[] = { 0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, 0xee };
		assert_memory_equal(buf + off, w64, sizeof w64);
		assert_true(mq_get_u64(buf + off) == UINT64_C(0x0123456789abcdef));
	}
	mq_put_u16(buf, 0xffff);
	assert_int_equal(mq_get_u16(buf), 0xffff);
	mq_put_u32(buf, UINT32_MAX);
	assert_int_equal(mq_get_u32(buf), UINT32_MAX);
	mq_put_u64(buf, UINT64_MAX);
	assert_true(mq_get_u64(buf) == UINT64_MAX);
	mq_put_u64(buf, 0);
	assert_true(mq_get_u64(buf) == 0);
}

static void varint_roundtrip(uint64_t v, size_t want_len)
{
	uint8_t buf[16];
	memset(buf, 0xaa, sizeof buf);
	size_t n = mq_put_varint(buf, v);
	if (n != want_len || mq_varint_len(v) != want_len)
		fail_msg("varint %llu: put %zu, len %zu, want %zu", (unsigned long long)v, n,
		         mq_varint_len(v), want_len);
	assert_int_equal(buf[n], 0xaa); /* nothing written past the end */
	for (size_t i = 0; i + 1 < n; i++)
		assert_true(buf[i] & 0x80);
	assert_false(buf[n - 1] & 0x80);

	uint64_t got = ~v;
	assert_int_equal(mq_get_varint(buf, buf + n, &got), n);
	assert_true(got == v);
	/* Trailing bytes are not consumed. */
	got = ~v;
	assert_int_equal(mq_get_varint(buf, buf + sizeof buf, &got), n);
	assert_true(got == v);
	/* Every truncation is refused, and leaves *v alone. */
	for (size_t cut = 0; cut < n; cut++) {
		got = 12345;
		assert_int_equal(mq_get_varint(buf, buf + cut, &got), 0);
		assert_true(got == 12345);
	}
}

static void test_varint(void **state)
{
	(void)state;
	varint_roundtrip(0, 1);
	varint_roundtrip(1, 1);
	varint_roundtrip(127, 1);
	varint_roundtrip(128, 2);
	varint_roundtrip(16383, 2);
	varint_roundtrip(16384, 3);
	varint_roundtrip(UINT64_C(1) << 63, 10);
	varint_roundtrip((UINT64_C(1) << 63) - 1, 9);
	varint_roundtrip(UINT64_MAX, 10);
	/* Both sides of every 7-bit boundary. */
	for (unsigned k = 1; k <= 9; k++) {
		uint64_t edge = UINT64_C(1) << (7 * k);
		varint_roundtrip(edge - 1, k);
		varint_roundtrip(edge, k + 1);
	}
	/* Known encodings. */
	uint8_t b[16];
	assert_int_equal(mq_put_varint(b, 300), 2);
	assert_int_equal(b[0], 0xac);
	assert_int_equal(b[1], 0x02);
	static const uint8_t max[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
	assert_int_equal(mq_put_varint(b, UINT64_MAX), 10);
	assert_memory_equal(b, max, sizeof max);
}

static void test_varint_overlong(void **state)
{
	(void)state;
	uint8_t b[16];
	uint64_t v = 777;
	/* Ten bytes that all say "more follows": longer than any u64. */
	memset(b, 0x80, sizeof b);
	assert_int_equal(mq_get_varint(b, b + 10, &v), 0);
	assert_int_equal(mq_get_varint(b, b + sizeof b, &v), 0);
	/* Eleven bytes ending properly: still too long. */
	memset(b, 0x80, 10);
	b[10] = 0x00;
	assert_int_equal(mq_get_varint(b, b + 11, &v), 0);
	memset(b, 0xff, 10);
	b[10] = 0x01;
	assert_int_equal(mq_get_varint(b, b + 11, &v), 0);
	assert_int_equal(v, 777);
	/* An empty input. */
	assert_int_equal(mq_get_varint(b, b, &v), 0);
	assert_int_equal(v, 777);
}

/* ---- system-call loops ---- */

static int temp_file(char *path, size_t n)
{
	const char *dir = getenv("TMPDIR");
	snprintf(path, n, "%s/mq_test_util.XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	return fd;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static void test_write_read_file(void **state)
{
	(void)state;
	char path[512];
	int fd = temp_file(path, sizeof path);
	size_t n = (size_t)3 << 20;
	uint8_t *a = malloc(n), *r = malloc(n + 100);
	assert_non_null(a);
	assert_non_null(r);
	fill(a, n, 1);

	assert_int_equal(mq_write_all(fd, a, n), 0);
	assert_int_equal(mq_write_all(fd, a, 0), 0);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), (off_t)n);
	assert_int_equal(mq_pread_full(fd, r, n, 0), (long long)n);
	assert_memory_equal(r, a, n);

	/* Overwrite a stretch in the middle with pwrite; the file position stays. */
	uint8_t patch[5000];
	fill(patch, sizeof patch, 2);
	assert_int_equal(mq_pwrite_all(fd, patch, sizeof patch, 12345), 0);
	memcpy(a + 12345, patch, sizeof patch);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), (off_t)n);
	assert_int_equal(mq_pread_full(fd, r, n, 0), (long long)n);
	assert_memory_equal(r, a, n);

	/* Reads at odd offsets, short only at end of file. */
	assert_int_equal(mq_pread_full(fd, r, 777, 1001), 777);
	assert_memory_equal(r, a + 1001, 777);
	assert_int_equal(mq_pread_full(fd, r, n + 100, 0), (long long)n);
	assert_int_equal(mq_pread_full(fd, r, 100, n - 10), 10);
	assert_memory_equal(r, a + n - 10, 10);
	assert_int_equal(mq_pread_full(fd, r, 100, n), 0);
	assert_int_equal(mq_pread_full(fd, r, 100, n + 1000000), 0);
	assert_int_equal(mq_pread_full(fd, r, 0, 0), 0);

	/* pwrite past the end leaves a hole of zeros. */
	assert_int_equal(mq_pwrite_all(fd, "end", 3, n + 10), 0);
	assert_int_equal(mq_pread_full(fd, r, 13, n), 13);
	assert_memory_equal(r, "\0\0\0\0\0\0\0\0\0\0end", 13);

	/* Offsets beyond off_t are refused, not wrapped. */
	errno = 0;
	assert_int_equal(mq_pwrite_all(fd, "x", 1, UINT64_MAX), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(mq_pwrite_all(fd, "xy", 2, (uint64_t)INT64_MAX), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(mq_pread_full(fd, r, 1, UINT64_MAX), -1);
	assert_int_equal(errno, EINVAL);

	close(fd);
	unlink(path);

	/* Errors come back as -1 with errno. */
	errno = 0;
	assert_int_equal(mq_write_all(-1, a, 10), -1);
	assert_int_equal(errno, EBADF);
	errno = 0;
	assert_int_equal(mq_pwrite_all(-1, a, 10, 0), -1);
	assert_int_equal(errno, EBADF);
	errno = 0;
	assert_int_equal(mq_pread_full(-1, r, 10, 0), -1);
	assert_int_equal(errno, EBADF);
	free(a);
	free(r);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* A pipe with a slow reader and a timer firing every 200us without
 * SA_RESTART: the writer sees short writes and EINTR and must carry on. */
static void test_write_all_interrupted(void **state)
{
	(void)state;
	size_t n = (size_t)4 << 20;
	uint8_t *a = malloc(n);
	assert_non_null(a);
	fill(a, n, 3);
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[1]);
		uint8_t r[3000];
		size_t got = 0;
		for (;;) {
			ssize_t k = read(pfd[0], r, sizeof r);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				break;
			if (got + (size_t)k > n || memcmp(r, a + got, (size_t)k) != 0)
				_exit(1);
			got += (size_t)k;
			if (got % 64 == 0)
				usleep(10);
		}
		_exit(got == n ? 0 : 2);
	}
	close(pfd[0]);
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: interrupted calls fail with EINTR */
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	struct itimerval it = { { 0, 200 }, { 0, 200 } }, off = { { 0, 0 }, { 0, 0 } };
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);

	int rc = mq_write_all(pfd[1], a, n);
	int saved = errno;

	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	close(pfd[1]);
	if (rc != 0)
		fail_msg("mq_write_all: %s", strerror(saved));
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(a);
}

static void test_fsync_dir(void **state)
{
	(void)state;
	const char *tmp = getenv("TMPDIR");
	char dir[512];
	snprintf(dir, sizeof dir, "%s/mq_test_dir.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(dir));
	mq_err_t err = { 0 };
	assert_int_equal(mq_fsync_dir(dir, &err), 0);
	assert_int_equal(mq_fsync_dir(dir, NULL), 0);

	char path[600], want[800];
	snprintf(path, sizeof path, "%s/missing", dir);
	assert_int_equal(mq_fsync_dir(path, &err), -MQ_EIO);
	assert_int_equal(err.code, MQ_EIO);
	assert_int_equal(err.sys, ENOENT);
	snprintf(want, sizeof want, "open directory %s: %s", path, strerror(ENOENT));
	assert_string_equal(err.msg, want);

	/* A plain file is not a directory. */
	snprintf(path, sizeof path, "%s/file", dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mq_fsync_dir(path, &err), -MQ_EIO);
	assert_int_equal(err.sys, ENOTDIR);
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(mq_fsync_dir(path, NULL), -MQ_EIO);

	unlink(path);
	rmdir(dir);
}

static void test_unescape(void **state)
{
	(void)state;
	uint8_t out[64];
	size_t n = 99;
	mq_err_t err;
	assert_int_equal(mq_unescape("a\\n\\t\\r\\0\\\\\\x1e\\xFFz", out, &n, &err), 0);
	assert_int_equal(n, 9);
	assert_memory_equal(out, "a\n\t\r\0\\\x1e\xffz", 9);
	assert_int_equal(mq_unescape("", out, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(mq_unescape("--", out, &n, &err), 0);
	assert_int_equal(n, 2);
	static const char *bad[] = {"\\", "\\q", "\\x", "\\x1", "\\xg0", "a\\"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(mq_unescape(bad[i], out, &n, &err), -MQ_EINVAL);
}

static void test_printable(void **state)
{
	(void)state;
	char out[16];
	assert_string_equal(mq_printable(out, sizeof out, "abc", 3), "abc");
	assert_string_equal(mq_printable(out, sizeof out, "a\n\\\xff", 4), "a\\x0a\\x5c\\xff");
	/* Cut to fit, with "..." */
	assert_string_equal(mq_printable(out, sizeof out, "0123456789abcdefghij", 20), "0123456789ab...");
	assert_string_equal(mq_printable(out, 8, "\x01\x02\x03", 3), "\\x01...");
	assert_string_equal(mq_printable(out, sizeof out, "", 0), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_unescape),
		cmocka_unit_test(test_err_set),
		cmocka_unit_test(test_err_sys),
		cmocka_unit_test(test_buf_many_appends),
		cmocka_unit_test(test_buf_single_bytes),
		cmocka_unit_test(test_buf_reserve),
		cmocka_unit_test(test_duration_ok),
		cmocka_unit_test(test_duration_bad),
		cmocka_unit_test(test_duration_long_input),
		cmocka_unit_test(test_size_ok),
		cmocka_unit_test(test_size_bad),
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_clocks),
		cmocka_unit_test(test_le),
		cmocka_unit_test(test_varint),
		cmocka_unit_test(test_varint_overlong),
		cmocka_unit_test(test_write_read_file),
		cmocka_unit_test(test_write_all_interrupted),
		cmocka_unit_test(test_fsync_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
