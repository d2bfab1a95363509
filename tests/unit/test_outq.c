/*
 * test_outq.c -- unit tests for lib/outq.c with a fake clock: a reader
 * that takes a block and leaves before the next tick gets nothing ready
 * (head -3); one that stays gets it at the second tick and not before;
 * a message cut by the reader's read is not taken; slots interleave and
 * start again (a reset forgets the old marks); ticks closer than the
 * window change nothing; and with many tiny messages the ring stays
 * bounded while what becomes ready never passes what was taken.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "outq.h"

#define W 500

/* n messages of len bytes each into slot, offsets from off; returns the
 * byte position after them. */
static uint64_t put(mq_outq_t *q, uint64_t pos, uint32_t slot, uint64_t off, uint64_t n, uint64_t len)
{
	for (uint64_t i = 0; i < n; i++) {
		pos += len;
		assert_int_equal(mq_outq_mark(q, pos, slot, off + i + 1, NULL), 0);
	}
	return pos;
}

static void test_head_leaves_before_the_next_tick(void **state)
{
	mq_outq_t q;
	mq_outq_init(&q, W);
	assert_int_equal(mq_outq_reset(&q, 0, 0, NULL), 0);
	uint64_t end = put(&q, 0, 0, 0, 1000, 4); /* 4,000 bytes of "NNN\n" */
	mq_outq_taken(&q, end);                   /* head read them all at once */
	assert_int_equal(mq_outq_tick(&q, 1000), 0);
	assert_int_equal(mq_outq_ready(&q, 0), 0);
	assert_int_equal(mq_outq_due(&q), 1000 + W);
	/* head exits: no more ticks, nothing ever becomes ready */
	assert_int_equal(mq_outq_ready(&q, 0), 0);
	mq_outq_free(&q);
}

static void test_ready_after_two_ticks(void **state)
{
	mq_outq_t q;
	mq_outq_init(&q, W);
	assert_int_equal(mq_outq_reset(&q, 0, 10, NULL), 0);
	assert_int_equal(mq_outq_ready(&q, 0), 10);
	uint64_t end = put(&q, 100, 0, 10, 20, 5);
	mq_outq_taken(&q, 100 + 7 * 5 + 3); /* seven messages and part of the eighth */
	mq_outq_tick(&q, 0);
	assert_int_equal(mq_outq_ready(&q, 0), 10);
	assert_int_equal(mq_outq_tick(&q, W - 1), 0); /* too soon: nothing */
	assert_int_equal(mq_outq_ready(&q, 0), 10);
	assert_int_equal(mq_outq_tick(&q, W), 1);
	assert_int_equal(mq_outq_ready(&q, 0), 17);
	/* the rest is taken; the snapshot (of time 0) is old: the next tick
	 * takes a new one, and the tick a window after that makes it ready */
	mq_outq_taken(&q, end);
	assert_int_equal(mq_outq_due(&q), W);
	assert_int_equal(mq_outq_tick(&q, W + 1), 0);
	assert_int_equal(mq_outq_due(&q), 2 * W + 1);
	assert_int_equal(mq_outq_tick(&q, 2 * W), 0);
	assert_int_equal(mq_outq_ready(&q, 0), 17);
	assert_int_equal(mq_outq_tick(&q, 2 * W + 1), 1);
	assert_int_equal(mq_outq_ready(&q, 0), 30);
	assert_int_equal(mq_outq_due(&q), 0);
	mq_outq_free(&q);
}

static void test_quiet_reader_keeps_old_snapshot(void **state)
{
	mq_outq_t q;
	mq_outq_init(&q, W);
	assert_int_equal(mq_outq_reset(&q, 0, 0, NULL), 0);
	uint64_t end = put(&q, 0, 0, 0, 3, 10);
	mq_outq_taken(&q, end);
	mq_outq_tick(&q, 0);
	/* nothing taken since: one tick a window later makes it ready */
	assert_int_equal(mq_outq_tick(&q, 5 * W), 1);
	assert_int_equal(mq_outq_ready(&q, 0), 3);
	assert_int_equal(mq_outq_due(&q), 0);
	mq_outq_free(&q);
}

static void test_slots_interleave_and_reset(void **state)
{
	mq_outq_t q;
	mq_outq_init(&q, W);
	assert_int_equal(mq_outq_reset(&q, 0, 0, NULL), 0);
	assert_int_equal(mq_outq_reset(&q, 5, 100, NULL), 0);
	assert_int_equal(mq_outq_ready(&q, 3), 0);   /* never reset */
	assert_int_equal(mq_outq_ready(&q, 99), 0); /* beyond the table */
	uint64_t pos = put(&q, 0, 0, 0, 4, 8);      /* slot 0: 1..4, bytes 0..32 */
	pos = put(&q, pos, 5, 100, 4, 8);           /* slot 5: 101..104, to 64 */
	pos = put(&q, pos, 0, 4, 4, 8);             /* slot 0: 5..8, to 96 */
	mq_outq_taken(&q, 40);                      /* slot 0's 1..4, slot 5's 101 */
	/* slot 5 is given up and taken again from 102: its old marks go */
	assert_int_equal(mq_outq_reset(&q, 5, 102, NULL), 0);
	mq_outq_taken(&q, 64);
	mq_outq_tick(&q, 0);
	mq_outq_tick(&q, W);
	assert_int_equal(mq_outq_ready(&q, 0), 4);
	assert_int_equal(mq_outq_ready(&q, 5), 102);
	pos = put(&q, pos, 5, 102, 2, 8); /* 103, 104 to 112 */
	mq_outq_taken(&q, pos - 1);       /* all but the last byte */
	mq_outq_tick(&q, 2 * W);
	mq_outq_tick(&q, 3 * W);
	assert_int_equal(mq_outq_ready(&q, 0), 8);
	assert_int_equal(mq_outq_ready(&q, 5), 103);
	/* a mark for a slot never started is refused */
	mq_err_t err;
	assert_int_equal(mq_outq_mark(&q, pos + 1, 7, 1, &err), -MQ_EINVAL);
	mq_outq_free(&q);
}

static void test_taken_before_mark(void **state)
{
	mq_outq_t q;
	mq_outq_init(&q, W);
	assert_int_equal(mq_outq_reset(&q, 0, 0, NULL), 0);
	mq_outq_taken(&q, 50);
	assert_int_equal(mq_outq_mark(&q, 40, 0, 1, NULL), 0);
	assert_int_equal(q.n, 0);
	mq_outq_tick(&q, 0);
	mq_outq_tick(&q, W);
	assert_int_equal(mq_outq_ready(&q, 0), 1);
	mq_outq_free(&q);
}

/* A million one-byte messages in flight: the ring stays small, and for
 * any byte count taken, what becomes ready is at most what was taken
 * and at most one grain short of it. */
static void test_bounded_and_conservative(void **state)
{
	mq_outq_t q;
	mq_outq_init(&q, W);
	assert_int_equal(mq_outq_reset(&q, 0, 0, NULL), 0);
	const uint64_t n = 1000000;
	put(&q, 0, 0, 0, n, 1); /* message i (offset i) ends at byte i + 1 */
	assert_true(q.n <= MQ_OUTQ_EXACT + n / MQ_OUTQ_GRAIN + 1);
	assert_true(q.cap * sizeof *q.m <= 512 * 1024);
	int64_t t = 0;
	uint64_t takes[] = {3, MQ_OUTQ_EXACT, MQ_OUTQ_EXACT + 1, 10000, 123457, n - 1, n};
	for (size_t i = 0; i < sizeof takes / sizeof takes[0]; i++) {
		mq_outq_taken(&q, takes[i]);
		mq_outq_tick(&q, t += W);
		mq_outq_tick(&q, t += W);
		uint64_t r = mq_outq_ready(&q, 0);
		assert_true(r <= takes[i]);
		assert_true(r + MQ_OUTQ_GRAIN >= takes[i]);
		if (takes[i] < MQ_OUTQ_EXACT || takes[i] == n)
			assert_int_equal(r, takes[i]);
	}
	mq_outq_free(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_head_leaves_before_the_next_tick),
		cmocka_unit_test(test_ready_after_two_ticks),
		cmocka_unit_test(test_quiet_reader_keeps_old_snapshot),
		cmocka_unit_test(test_slots_interleave_and_reset),
		cmocka_unit_test(test_taken_before_mark),
		cmocka_unit_test(test_bounded_and_conservative),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
