/*
 * test_batch.c -- lib/batch.c: a header's record count is bounded by its
 * length before anyone sizes anything by it, and a stored batch with any
 * byte flipped (but its base offset, which the log checks by continuity)
 * fails mq_batch_verify.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"

/* n records; empty ones are the smallest a batch can hold. */
static size_t build(mq_buf_t *buf, uint32_t n, int empty)
{
	mq_batch_builder_t b;
	buf->len = 0;
	mq_batch_begin(&b, buf);
	b.hdr.producer_id = 77;
	for (uint32_t i = 0; i < n; i++) {
		char v[32];
		int vl = empty ? 0 : snprintf(v, sizeof v, "value %u", i);
		assert_int_equal(mq_batch_add(&b, empty ? 1000 : 1000 + i, empty ? NULL : "k", empty ? 0 : 1, v, (size_t)vl, NULL, 0,
					      NULL, 0),
				 0);
	}
	return mq_batch_finish(&b);
}

static void test_smallest_records_fit_the_bound(void **state)
{
	(void)state;
	mq_buf_t buf = {0};
	mq_err_t err;
	mq_batch_hdr_t h;
	size_t len = build(&buf, 100, 1);
	assert_int_equal(len, MQ_BATCH_HEADER + 100 * MQ_RECORD_MIN_BYTES);
	assert_int_equal(mq_batch_hdr_decode(buf.p, len, &h, &err), 0);
	assert_int_equal(h.count, 100);
	assert_int_equal(mq_batch_check(buf.p, len, 0, &err), 0);
	mq_buf_free(&buf);
}

static void test_count_beyond_length(void **state)
{
	(void)state;
	mq_buf_t buf = {0};
	mq_err_t err;
	mq_batch_hdr_t h;
	size_t len = build(&buf, 2, 1);
	/* One more record than the bytes can hold, then the 2^27 of a hostile request. */
	mq_put_u32(buf.p + 20, 3);
	assert_int_equal(mq_batch_hdr_decode(buf.p, len, &h, &err), -MQ_ECORRUPT);
	assert_non_null(strstr(err.msg, "claims 3 records"));
	mq_put_u32(buf.p + 20, 1u << 27);
	assert_int_equal(mq_batch_hdr_decode(buf.p, len, &h, &err), -MQ_ECORRUPT);
	mq_put_u32(buf.p + 20, UINT32_MAX);
	assert_int_equal(mq_batch_hdr_decode(buf.p, len, &h, &err), -MQ_ECORRUPT);
	/* A header alone, with a count: no room for any record. */
	uint8_t hdr[MQ_BATCH_HEADER];
	memcpy(hdr, buf.p, sizeof hdr);
	mq_put_u32(hdr + 8, MQ_BATCH_HEADER + 11); /* the 91-byte request */
	mq_put_u32(hdr + 20, 1u << 27);
	assert_int_equal(mq_batch_hdr_decode(hdr, sizeof hdr, &h, &err), -MQ_ECORRUPT);
	mq_put_u32(hdr + 20, 1);
	assert_int_equal(mq_batch_hdr_decode(hdr, sizeof hdr, &h, &err), 0);
	mq_buf_free(&buf);
}

static void test_verify_every_flipped_byte(void **state)
{
	(void)state;
	mq_buf_t buf = {0};
	mq_err_t err;
	size_t len = build(&buf, 20, 0);
	assert_int_equal(mq_batch_verify(buf.p, len, &err), 0);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			buf.p[i] ^= (uint8_t)(1u << bit);
			int rc = mq_batch_verify(buf.p, len, &err);
			if (i < 8)
				assert_int_equal(rc, 0); /* base offset: outside the CRC */
			else if (rc != -MQ_ECORRUPT)
				fail_msg("byte %zu bit %d flipped: verify says %d", i, bit, rc);
			buf.p[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* Cut short, or with a byte too many. */
	assert_int_equal(mq_batch_verify(buf.p, len - 1, &err), -MQ_ECORRUPT);
	assert_int_equal(mq_buf_reserve(&buf, 1), 0);
	assert_int_equal(mq_batch_verify(buf.p, len + 1, &err), -MQ_ECORRUPT);
	assert_int_equal(mq_batch_verify(buf.p, 10, &err), -MQ_ECORRUPT);
	mq_buf_free(&buf);
}

static void test_iter_bounded_by_count(void **state)
{
	(void)state;
	mq_buf_t buf = {0};
	mq_err_t err;
	size_t len = build(&buf, 5, 0);
	mq_batch_iter_t it;
	mq_record_t r;
	assert_int_equal(mq_batch_iter_init(&it, buf.p, len, &err), 0);
	int n = 0, rc;
	while ((rc = mq_batch_iter_next(&it, &r)) > 0)
		n++;
	assert_int_equal(rc, 0);
	assert_int_equal(n, 5);
	mq_buf_free(&buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smallest_records_fit_the_bound),
		cmocka_unit_test(test_count_beyond_length),
		cmocka_unit_test(test_verify_every_flipped_byte),
		cmocka_unit_test(test_iter_bounded_by_count),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
