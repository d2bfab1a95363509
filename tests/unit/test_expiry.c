/*
 * test_expiry.c -- lib/expiry.c: a fetch's batches are cut at the first
 * expired one and the run of expired batches after it is reported with
 * its records and end; counts per topic take each record once however
 * often it is skipped, and start again for a topic made anew.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "batch.h"
#include "expiry.h"

/* Append a batch of n records at base with this expire_at. */
static void add(mq_buf_t *buf, uint64_t base, uint32_t n, int64_t expire_at)
{
	mq_batch_builder_t b;
	size_t at = buf->len;
	mq_batch_begin(&b, buf);
	b.hdr.expire_at = expire_at;
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(mq_batch_add(&b, 1000, NULL, 0, "v", 1, NULL, 0, NULL, 0), 0);
	assert_true(mq_batch_finish(&b) > 0);
	mq_batch_set_base(buf->p + at, base);
}

static void test_nothing_expired_keeps_all(void **state)
{
	mq_buf_t buf = {0};
	mq_expiry_cut_t c;
	add(&buf, 0, 3, 0);
	add(&buf, 3, 2, 5000); /* expires later */
	mq_expiry_cut(buf.p, buf.len, 4999, &c);
	assert_int_equal(c.keep, buf.len);
	assert_int_equal(c.expired, 0);
	mq_buf_free(&buf);
}

static void test_cut_at_first_expired_run(void **state)
{
	mq_buf_t buf = {0};
	mq_expiry_cut_t c;
	add(&buf, 10, 3, 0);
	size_t first = buf.len;
	add(&buf, 13, 2, 5000);
	add(&buf, 15, 4, 4000);
	add(&buf, 19, 1, 0); /* after the run: waits for the next fetch */
	add(&buf, 20, 1, 10);
	mq_expiry_cut(buf.p, buf.len, 5000, &c); /* expire_at == now: expired */
	assert_int_equal(c.keep, first);
	assert_int_equal(c.from, 13);
	assert_int_equal(c.next, 19);
	assert_int_equal(c.expired, 6);
	mq_buf_free(&buf);
}

static void test_all_expired_and_cut_tail(void **state)
{
	mq_buf_t buf = {0};
	mq_expiry_cut_t c;
	add(&buf, 0, 2, 1);
	add(&buf, 2, 2, 1);
	/* The last batch cut short, as a fetch's budget may cut it. */
	mq_expiry_cut(buf.p, buf.len - 1, 100, &c);
	assert_int_equal(c.keep, 0);
	assert_int_equal(c.from, 0);
	assert_int_equal(c.next, 2);
	assert_int_equal(c.expired, 2);
	mq_expiry_cut(buf.p, 0, 100, &c);
	assert_int_equal(c.keep, 0);
	assert_int_equal(c.expired, 0);
	mq_buf_free(&buf);
}

static void test_counts_each_record_once(void **state)
{
	mq_expiry_t *x;
	mq_err_t err;
	uint64_t n;
	assert_int_equal(mq_expiry_new(&x, &err), 0);
	assert_int_equal(mq_expiry_note(x, "a", 0, 5, 10, 100), 5);
	/* The same offsets fetched again (another group, a rewind): not again. */
	assert_int_equal(mq_expiry_note(x, "a", 0, 5, 10, 100), 0);
	assert_int_equal(mq_expiry_note(x, "a", 0, 0, 12, 100), 2);
	assert_int_equal(mq_expiry_note(x, "a", 1, 5, 10, 100), 5);
	assert_int_equal(mq_expiry_note(x, "b", 0, 0, 1, 100), 1);
	assert_int_equal(mq_expiry_topics(x), 2);
	assert_string_equal(mq_expiry_topic(x, 0, &n), "a");
	assert_int_equal(n, 12);
	assert_string_equal(mq_expiry_topic(x, 1, &n), "b");
	assert_int_equal(n, 1);
	assert_int_equal(mq_expiry_total(x), 13);
	/* Topic a deleted and made again: its offsets start at 0 again. */
	assert_int_equal(mq_expiry_note(x, "a", 0, 0, 3, 3), 3);
	assert_int_equal(mq_expiry_total(x), 16);
	mq_expiry_free(x);
	mq_expiry_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nothing_expired_keeps_all),
		cmocka_unit_test(test_cut_at_first_expired_run),
		cmocka_unit_test(test_all_expired_and_cut_tail),
		cmocka_unit_test(test_counts_each_record_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
