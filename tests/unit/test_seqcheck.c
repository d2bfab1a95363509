/*
 * test_seqcheck.c -- unit tests for lib/seqcheck.c: in order, gaps and
 * repeats per stream, streams kept apart by topic, partition, source and
 * producer (short and long names), 32-bit wrap of batch sequences
 * against 64-bit envelope ones, and the bound on streams (the half seen
 * least recently forgotten, the rest still checked) against a model.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqcheck.h"

static int see(mq_seqcheck_t *s, uint32_t ti, uint32_t p, int src, const char *prod, uint64_t seq,
	       mq_seq_finding_t *f)
{
	mq_err_t e = {0};
	return mq_seqcheck_see(s, ti, p, src, prod, strlen(prod), seq, f, &e);
}

static void test_gap_and_repeat(void **state)
{
	(void)state;
	mq_seqcheck_t *s;
	mq_err_t e = {0};
	mq_seq_finding_t f;
	assert_int_equal(mq_seqcheck_new(0, &s, &e), 0);
	/* The first record sets the expectation, wherever it starts. */
	assert_int_equal(see(s, 0, 0, MQ_SEQ_BATCH, "p1", 5, &f), MQ_SEQ_OK);
	for (uint64_t q = 6; q < 10; q++)
		assert_int_equal(see(s, 0, 0, MQ_SEQ_BATCH, "p1", q, &f), MQ_SEQ_OK);
	/* 10..14 never came. */
	assert_int_equal(see(s, 0, 0, MQ_SEQ_BATCH, "p1", 15, &f), MQ_SEQ_GAP);
	assert_int_equal(f.expected, 10);
	assert_int_equal(f.got, 15);
	assert_int_equal(f.missing, 5);
	assert_int_equal(see(s, 0, 0, MQ_SEQ_BATCH, "p1", 16, &f), MQ_SEQ_OK);
	/* 12 again: a repeat; the expectation stays at 17. */
	assert_int_equal(see(s, 0, 0, MQ_SEQ_BATCH, "p1", 12, &f), MQ_SEQ_REPEAT);
	assert_int_equal(f.expected, 17);
	assert_int_equal(f.got, 12);
	assert_int_equal(see(s, 0, 0, MQ_SEQ_BATCH, "p1", 16, &f), MQ_SEQ_REPEAT);
	assert_int_equal(see(s, 0, 0, MQ_SEQ_BATCH, "p1", 17, &f), MQ_SEQ_OK);
	assert_int_equal(mq_seqcheck_streams(s), 1);
	mq_seqcheck_free(s);
}

static void test_streams_apart(void **state)
{
	(void)state;
	mq_seqcheck_t *s;
	mq_err_t e = {0};
	mq_seq_finding_t f;
	assert_int_equal(mq_seqcheck_new(0, &s, &e), 0);
	char long1[300], long2[300];
	memset(long1, 'x', sizeof long1 - 1);
	long1[sizeof long1 - 1] = 0;
	memcpy(long2, long1, sizeof long2);
	long2[250] = 'y';
	const char *prods[] = {"a", "b", "", long1, long2};
	/* Interleave 5 producers x 2 topics x 3 partitions x 2 sources: each
	 * stream in order on its own, so nothing is reported. */
	for (uint64_t q = 0; q < 20; q++)
		for (int pi = 0; pi < 5; pi++)
			for (uint32_t ti = 0; ti < 2; ti++)
				for (uint32_t p = 0; p < 3; p++)
					for (int src = 1; src <= 2; src++)
						assert_int_equal(see(s, ti, p, src, prods[pi], q + (uint64_t)pi * 1000, &f),
								 MQ_SEQ_OK);
	assert_int_equal(mq_seqcheck_streams(s), 5 * 2 * 3 * 2);
	/* A gap in one long-named stream only. */
	assert_int_equal(see(s, 1, 2, MQ_SEQ_ENVELOPE, long2, 4021, &f), MQ_SEQ_GAP);
	assert_int_equal(f.expected, 4020);
	assert_int_equal(see(s, 1, 2, MQ_SEQ_ENVELOPE, long1, 3020, &f), MQ_SEQ_OK);
	mq_seqcheck_free(s);
}

static void test_wrap(void **state)
{
	(void)state;
	mq_seqcheck_t *s;
	mq_err_t e = {0};
	mq_seq_finding_t f;
	assert_int_equal(mq_seqcheck_new(0, &s, &e), 0);
	/* Batch sequences are 32-bit: after 2^32-1 comes 0. */
	assert_int_equal(see(s, 0, 0, MQ_SEQ_BATCH, "p", 0xfffffffeu, &f), MQ_SEQ_OK);
	assert_int_equal(see(s, 0, 0, MQ_SEQ_BATCH, "p", 0xffffffffu, &f), MQ_SEQ_OK);
	assert_int_equal(see(s, 0, 0, MQ_SEQ_BATCH, "p", 0, &f), MQ_SEQ_OK);
	assert_int_equal(see(s, 0, 0, MQ_SEQ_BATCH, "p", 3, &f), MQ_SEQ_GAP);
	assert_int_equal(f.missing, 2);
	assert_int_equal(see(s, 0, 0, MQ_SEQ_BATCH, "p", 0xffffffffu, &f), MQ_SEQ_REPEAT);
	/* Envelope sequences are 64-bit: no wrap. */
	assert_int_equal(see(s, 0, 0, MQ_SEQ_ENVELOPE, "p", 0xffffffffu, &f), MQ_SEQ_OK);
	assert_int_equal(see(s, 0, 0, MQ_SEQ_ENVELOPE, "p", 0x100000000ull, &f), MQ_SEQ_OK);
	assert_int_equal(see(s, 0, 0, MQ_SEQ_ENVELOPE, "p", 0, &f), MQ_SEQ_REPEAT);
	mq_seqcheck_free(s);
}

static void test_bound(void **state)
{
	(void)state;
	mq_seqcheck_t *s;
	mq_err_t e = {0};
	mq_seq_finding_t f;
	assert_int_equal(mq_seqcheck_new(64, &s, &e), 0);
	/* Stream 0 stays busy; 1000 others come and go. */
	char name[32];
	uint64_t q0 = 0;
	for (int i = 1; i <= 1000; i++) {
		snprintf(name, sizeof name, "p%d", i);
		assert_int_equal(see(s, 0, 0, MQ_SEQ_ENVELOPE, name, 0, &f), MQ_SEQ_OK);
		assert_int_equal(see(s, 0, 0, MQ_SEQ_ENVELOPE, "p0", q0++, &f), MQ_SEQ_OK);
		assert_true(mq_seqcheck_streams(s) <= 64);
	}
	/* The busy stream was never forgotten: a gap in it is still seen. */
	assert_int_equal(see(s, 0, 0, MQ_SEQ_ENVELOPE, "p0", q0 + 1, &f), MQ_SEQ_GAP);
	/* The most recent others are remembered, the oldest were forgotten. */
	assert_int_equal(see(s, 0, 0, MQ_SEQ_ENVELOPE, "p1000", 0, &f), MQ_SEQ_REPEAT);
	assert_int_equal(see(s, 0, 0, MQ_SEQ_ENVELOPE, "p1", 0, &f), MQ_SEQ_OK);
	assert_true(mq_seqcheck_forgotten(s) >= 1000 - 64);
	mq_seqcheck_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gap_and_repeat),
		cmocka_unit_test(test_streams_apart),
		cmocka_unit_test(test_wrap),
		cmocka_unit_test(test_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
