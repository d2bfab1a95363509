/*
 * test_bucket.c -- unit tests for lib/bucket.c with a fake clock: rate
 * parsing (accepted forms, zero, negative, junk, lowest terms); the
 * exactness property over 10 simulated seconds (what a greedy taker got
 * stays within max(1, 1%) of BURST + RATE x t at every moment, and never
 * above it), for waiting and for jittery callers; oversize takes; and
 * the keyed set's LRU bound.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bucket.h"

#define S 1000000000ull

static void test_rate_parse(void **state)
{
	mq_rate_t r;
	mq_err_t err;
	assert_int_equal(mq_rate_parse("100/s", &r, NULL), 0);
	assert_true(r.tokens == 1 && r.per_ns == 10000000);
	assert_int_equal(mq_rate_parse("100", &r, NULL), 0);
	assert_true(r.tokens == 1 && r.per_ns == 10000000);
	assert_int_equal(mq_rate_parse("30/m", &r, NULL), 0);
	assert_true(r.tokens == 1 && r.per_ns == 2 * S);
	assert_int_equal(mq_rate_parse("7/h", &r, NULL), 0);
	assert_true(r.tokens == 7 && r.per_ns == 3600 * S);
	assert_int_equal(mq_rate_parse("2.5/s", &r, NULL), 0);
	assert_true(r.tokens == 1 && r.per_ns == 400000000);
	assert_int_equal(mq_rate_parse("3000000000/s", &r, NULL), 0);
	assert_true(r.tokens == 3 && r.per_ns == 1);
	assert_int_equal(mq_rate_per_second(&r), 3000000000ull);
	assert_int_equal(mq_rate_parse("1/h", &r, NULL), 0);
	assert_int_equal(mq_rate_per_second(&r), 1);
	/* Days, and sizes for --bytes. */
	assert_int_equal(mq_rate_parse("864/d", &r, NULL), 0);
	assert_true(r.tokens == 1 && r.per_ns == 100 * S);
	assert_int_equal(mq_rate_parse("1KiB/s", &r, NULL), 0);
	assert_int_equal(mq_rate_per_second(&r), 1024);
	assert_int_equal(mq_rate_parse("1kb/s", &r, NULL), 0);
	assert_int_equal(mq_rate_per_second(&r), 1000);
	assert_int_equal(mq_rate_parse("2MiB", &r, NULL), 0);
	assert_int_equal(mq_rate_per_second(&r), 2u << 20);
	assert_int_equal(mq_rate_parse("1.5K/s", &r, NULL), 0);
	assert_int_equal(mq_rate_per_second(&r), 1536);
	assert_int_equal(mq_rate_parse("3600K/h", &r, NULL), 0);
	assert_int_equal(mq_rate_per_second(&r), 1024);
	const char *bad[] = {"0", "0/s", "0.0", "-5", "-5/s", "abc", "", "/s", "10/w", "10/S", "1.5.2", "10 /s",
			     "99999999999999999999999", "0.0000000001", "KiB/s", "1KiBs", "1T/s", "1 KiB/s", "1kibb/s",
			     "99999999999999999999G/s"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(mq_rate_parse(bad[i], &r, &err), -MQ_EINVAL);
		assert_non_null(strstr(err.msg, "rate '"));
	}
}

/* units: passed * per_ns vs (burst * per_ns + tokens * t), in 128 bits. */
typedef unsigned __int128 u128;

static void check_bounds(const mq_rate_t *r, uint64_t burst, uint64_t passed, uint64_t t, int lower)
{
	u128 ideal_units = (u128)burst * r->per_ns + (u128)r->tokens * t;
	u128 got_units = (u128)passed * r->per_ns;
	assert_true(got_units <= ideal_units); /* never above the line */
	if (lower) {
		u128 ideal = ideal_units / r->per_ns;
		u128 slack = ideal / 100 > 1 ? ideal / 100 : 1;
		if (passed + slack < ideal)
			fail_msg("rate %llu/%lluns burst %llu: %llu passed at t=%llu, line %llu",
				 (unsigned long long)r->tokens, (unsigned long long)r->per_ns,
				 (unsigned long long)burst, (unsigned long long)passed, (unsigned long long)t,
				 (unsigned long long)ideal);
	}
}

/* A caller that waits exactly as told: the line is met within one token. */
static void run_waiting(const char *rate, uint64_t burst)
{
	mq_rate_t r;
	mq_bucket_t b;
	assert_int_equal(mq_rate_parse(rate, &r, NULL), 0);
	uint64_t t0 = 123456789, now = t0, passed = 0;
	mq_bucket_init(&b, &r, burst, now);
	while (now - t0 < 10 * S) {
		uint64_t w = mq_bucket_wait_ns(&b, 1, now);
		if (w) {
			/* blocked: the line is met now and just before it is due */
			check_bounds(&r, burst, passed, now - t0, 1);
			assert_int_equal(mq_bucket_take(&b, 1, now + w - 1), 0);
			check_bounds(&r, burst, passed, now + w - 1 - t0, 1);
			now += w;
		}
		assert_int_equal(mq_bucket_take(&b, 1, now), 1);
		passed++;
		check_bounds(&r, burst, passed, now - t0, 0);
	}
}

static void test_exact_waiting(void **state)
{
	run_waiting("100/s", 100);
	run_waiting("100/s", 1);
	run_waiting("2.5/s", 3);
	run_waiting("7/m", 2);
	run_waiting("1000000/s", 1000);
	run_waiting("333333/s", 1);
}

/* A caller whose clock readings jump around (late wake-ups, big gaps):
 * never above the line at any moment, and (the bucket never filling up
 * between readings) within 1% of it at the end. */
static void test_exact_jitter(void **state)
{
	mq_rate_t r;
	mq_bucket_t b;
	srand(42);
	assert_int_equal(mq_rate_parse("1000/s", &r, NULL), 0);
	uint64_t now = 5, t0 = 5, passed = 0;
	mq_bucket_init(&b, &r, 50, now);
	while (now - t0 < 10 * S) {
		uint64_t n = (uint64_t)(rand() % 3) + 1;
		if (mq_bucket_take(&b, n, now))
			passed += n;
		check_bounds(&r, 50, passed, now - t0, 0);
		now += (uint64_t)(rand() % 3000000); /* 0..3 ms */
	}
	/* and it kept up: within 1% of the line */
	uint64_t ideal = 50 + (now - t0) / 1000000;
	assert_true(passed + ideal / 100 + 3 >= ideal);
}

static void test_oversize_take(void **state)
{
	mq_rate_t r;
	mq_bucket_t b;
	assert_int_equal(mq_rate_parse("100/s", &r, NULL), 0);
	mq_bucket_init(&b, &r, 10, 0);
	assert_int_equal(mq_bucket_take(&b, 1, 0), 1);
	assert_int_equal(mq_bucket_wait_ns(&b, 25, 0), 10000000); /* until full again */
	assert_int_equal(mq_bucket_take(&b, 25, 9999999), 0);
	assert_int_equal(mq_bucket_take(&b, 25, 10000000), 1); /* 15 in debt */
	assert_int_equal(b.tokens, -15);
	assert_int_equal(mq_bucket_wait_ns(&b, 1, 10000000), 160000000);
	/* a clock going back changes nothing */
	assert_int_equal(mq_bucket_take(&b, 1, 5), 0);
}

/* take_upto: all there up to want when at least min are, else nothing. */
static void test_take_upto(void **state)
{
	mq_rate_t r = {1, 10000000}; /* 100/s */
	mq_bucket_t b;
	mq_bucket_init(&b, &r, 10, 0);
	assert_int_equal(mq_bucket_take_upto(&b, 4, 1, 0), 4);
	assert_int_equal(mq_bucket_take_upto(&b, 100, 1, 0), 6);
	assert_int_equal(mq_bucket_take_upto(&b, 5, 1, 0), 0);
	assert_int_equal(mq_bucket_wait_ns(&b, 1, 0), 10000000);
	assert_int_equal(mq_bucket_take_upto(&b, 5, 3, 29999999), 0); /* 2 there, 3 needed */
	assert_int_equal(b.tokens, 2);
	assert_int_equal(mq_bucket_take_upto(&b, 5, 3, 30000000), 3);
	assert_int_equal(b.tokens, 0);
}

/* redefine keeps what was earned, caps at the new burst, never adds. */
static void test_redefine(void **state)
{
	mq_rate_t slow = {1, 1000000000}, fast = {1, 1000000}; /* 1/s, 1000/s */
	mq_bucket_t b;
	mq_bucket_init(&b, &slow, 10, 0);
	assert_int_equal(mq_bucket_take_upto(&b, 10, 10, 0), 10);
	/* half a token earned at 1/s, then 1000/s: half a token in new units */
	mq_bucket_redefine(&b, &fast, 100, 500000000);
	assert_int_equal(b.tokens, 0);
	assert_int_equal(b.frac, 500000);
	assert_int_equal(mq_bucket_wait_ns(&b, 1, 500000000), 500000);
	assert_int_equal(mq_bucket_take_upto(&b, 1000, 1, 600000000), 100); /* capped at the new burst */
	/* a smaller burst caps what is there */
	mq_bucket_init(&b, &fast, 100, 0);
	mq_bucket_redefine(&b, &slow, 5, 1);
	assert_int_equal(b.tokens, 5);
	assert_int_equal(b.frac, 0);
	/* wire rates are checked and reduced */
	mq_rate_t w = {10, 1000};
	assert_int_equal(mq_rate_check(&w, NULL), 0);
	assert_true(w.tokens == 1 && w.per_ns == 100);
	mq_err_t err;
	w = (mq_rate_t){0, 5};
	assert_int_equal(mq_rate_check(&w, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "more than 0"));
	w = (mq_rate_t){5, 0};
	assert_int_equal(mq_rate_check(&w, NULL), -MQ_EINVAL);
}

static void test_set_lru(void **state)
{
	mq_rate_t r;
	mq_bucket_set_t *s;
	mq_err_t err;
	assert_int_equal(mq_rate_parse("1/s", &r, NULL), 0);
	assert_int_equal(mq_bucket_set_new(&r, 1, 0, &s, &err), -MQ_EINVAL);
	assert_int_equal(mq_bucket_set_new(&r, 1, 3, &s, &err), 0);
	assert_int_equal(mq_bucket_take(mq_bucket_set_get(s, "a", 1, 0), 1, 0), 1);
	assert_int_equal(mq_bucket_take(mq_bucket_set_get(s, "a", 1, 0), 1, 0), 0);
	assert_int_equal(mq_bucket_take(mq_bucket_set_get(s, "b", 1, 0), 1, 0), 1);
	assert_int_equal(mq_bucket_take(mq_bucket_set_get(s, "c", 1, 0), 1, 0), 1);
	assert_int_equal(mq_bucket_set_count(s), 3);
	/* touch a: b is now the least recently used */
	assert_int_equal(mq_bucket_take(mq_bucket_set_get(s, "a", 1, 0), 1, 0), 0);
	assert_int_equal(mq_bucket_take(mq_bucket_set_get(s, "d", 1, 0), 1, 0), 1);
	assert_int_equal(mq_bucket_set_count(s), 3);
	assert_int_equal(mq_bucket_set_early(s), 1);
	assert_int_equal(mq_bucket_take(mq_bucket_set_get(s, "a", 1, 0), 1, 0), 0); /* kept */
	assert_int_equal(mq_bucket_take(mq_bucket_set_get(s, "c", 1, 0), 1, 0), 0); /* kept */
	assert_int_equal(mq_bucket_take(mq_bucket_set_get(s, "b", 1, 0), 1, 0), 1); /* forgotten: new */
	mq_bucket_set_free(s);
	mq_bucket_set_free(NULL);

	/* Many keys through a small set: the index stays consistent. */
	assert_int_equal(mq_bucket_set_new(&r, 1, 1000, &s, &err), 0);
	for (uint32_t i = 0; i < 200000; i++) {
		uint32_t k = (uint32_t)rand() % 1500;
		mq_bucket_set_get(s, &k, sizeof k, i);
	}
	assert_int_equal(mq_bucket_set_count(s), 1000);
	for (uint32_t k = 0; k < 100; k++) { /* the 100 most recent are found, not new */
		mq_bucket_t *b1 = mq_bucket_set_get(s, &k, sizeof k, 300000);
		mq_bucket_take(b1, 1, 300000);
		assert_ptr_equal(mq_bucket_set_get(s, &k, sizeof k, 300000), b1);
		assert_int_equal(mq_bucket_take(b1, 1, 300000), 0);
	}
	mq_bucket_set_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_parse),
		cmocka_unit_test(test_exact_waiting),
		cmocka_unit_test(test_exact_jitter),
		cmocka_unit_test(test_oversize_take),
		cmocka_unit_test(test_take_upto),
		cmocka_unit_test(test_redefine),
		cmocka_unit_test(test_set_lru),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
