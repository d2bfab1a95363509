/*
 * test_crc32c.c -- unit tests for lib/crc32c.c: published check values,
 * the hardware path against the table path on every length 0..300 at
 * every alignment 0..7, and continuation over arbitrary splits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

/* xorshift64*: reproducible data without global state. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

static void fill(uint8_t *p, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rnd(s) >> 56);
}

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void check_vectors(crc_fn f)
{
	uint8_t b[32];
	assert_int_equal(f(0, "", 0), 0);
	assert_int_equal(f(0, NULL, 0), 0);
	assert_int_equal(f(0x12345678, NULL, 0), 0x12345678);
	assert_int_equal(f(0, "123456789", 9), 0xE3069283);
	memset(b, 0, sizeof b);
	assert_int_equal(f(0, b, 32), 0x8A9136AA);
	memset(b, 0xff, sizeof b);
	assert_int_equal(f(0, b, 32), 0x62A8AB43);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	assert_int_equal(f(0, b, 32), 0x46DD794E);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)(31 - i);
	assert_int_equal(f(0, b, 32), 0x113FDB5C);
	assert_int_equal(f(0, "a", 1), 0xC1D04330);
	assert_int_equal(f(0, "The quick brown fox jumps over the lazy dog", 43), 0x22620404);
}

static void test_vectors(void **state)
{
	(void)state;
	check_vectors(mq_crc32c);
}

static void test_vectors_sw(void **state)
{
	(void)state;
	check_vectors(mq_crc32c_sw);
}

static void test_hw_equals_sw(void **state)
{
	(void)state;
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		print_message("mq_crc32c uses the SSE4.2 path here\n");
	else
		print_message("no SSE4.2: mq_crc32c uses the table path here\n");
#endif
	uint64_t s = 0x9E3779B97F4A7C15u;
	enum { MAXLEN = 300 };
	uint8_t buf[MAXLEN + 8 + 8];
	fill(buf, sizeof buf, &s);
	for (size_t align = 0; align < 8; align++) {
		for (size_t len = 0; len <= MAXLEN; len++) {
			const uint8_t *p = buf + align;
			uint32_t seed = (uint32_t)rnd(&s);
			uint32_t a = mq_crc32c(0, p, len), b = mq_crc32c_sw(0, p, len);
			if (a != b)
				fail_msg("len %zu align %zu: %08x != %08x", len, align, a, b);
			a = mq_crc32c(seed, p, len);
			b = mq_crc32c_sw(seed, p, len);
			if (a != b)
				fail_msg("len %zu align %zu seed %08x: %08x != %08x", len, align,
				         seed, a, b);
		}
		fill(buf, sizeof buf, &s);
	}
}

static void test_hw_equals_sw_large(void **state)
{
	(void)state;
	uint64_t s = 42;
	size_t n = (size_t)1 << 20;
	uint8_t *b = malloc(n + 8);
	assert_non_null(b);
	fill(b, n + 8, &s);
	for (size_t align = 0; align < 8; align++)
		assert_int_equal(mq_crc32c(0, b + align, n), mq_crc32c_sw(0, b + align, n));
	free(b);
}

static void test_continuation(void **state)
{
	(void)state;
	uint64_t s = 7;
	enum { N = 300 };
	uint8_t b[N];
	fill(b, N, &s);
	uint32_t whole = mq_crc32c(0, b, N), whole_sw = mq_crc32c_sw(0, b, N);
	assert_int_equal(whole, whole_sw);
	/* Every two-way split. */
	for (size_t k = 0; k <= N; k++) {
		assert_int_equal(mq_crc32c(mq_crc32c(0, b, k), b + k, N - k), whole);
		assert_int_equal(mq_crc32c_sw(mq_crc32c_sw(0, b, k), b + k, N - k), whole);
		/* Mixing paths mid-stream is fine too. */
		assert_int_equal(mq_crc32c_sw(mq_crc32c(0, b, k), b + k, N - k), whole);
	}
	/* Random many-way splits. */
	for (int round = 0; round < 2000; round++) {
		uint32_t c = 0;
		size_t off = 0;
		while (off < N) {
			size_t step = (size_t)(rnd(&s) % 40);
			if (step > N - off)
				step = N - off;
			c = (round & 1) ? mq_crc32c_sw(c, b + off, step) : mq_crc32c(c, b + off, step);
			off += step;
		}
		assert_int_equal(c, whole);
	}
	/* One byte at a time. */
	uint32_t c = 0;
	for (size_t i = 0; i < N; i++)
		c = mq_crc32c(c, b + i, 1);
	assert_int_equal(c, whole);
	/* "123456789" in pieces. */
	assert_int_equal(mq_crc32c(mq_crc32c(0, "1234", 4), "56789", 5), 0xE3069283);
}

static void test_detects_flips(void **state)
{
	(void)state;
	/* Any single-bit flip changes a CRC; check it over a batch-sized buffer. */
	uint64_t s = 99;
	enum { N = 512 };
	uint8_t b[N];
	fill(b, N, &s);
	uint32_t good = mq_crc32c(0, b, N);
	for (size_t i = 0; i < N * 8; i += 7) {
		b[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_not_equal(mq_crc32c(0, b, N), good);
		b[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	assert_int_equal(mq_crc32c(0, b, N), good);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_vectors_sw),
		cmocka_unit_test(test_hw_equals_sw),
		cmocka_unit_test(test_hw_equals_sw_large),
		cmocka_unit_test(test_continuation),
		cmocka_unit_test(test_detects_flips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
