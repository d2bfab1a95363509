/*
 * test_consumer.c -- the consumer engine against a real broker (run in
 * a thread, over ipc://), with sinks of the test's own: the commit rule
 * (never past what the sink acked, nor past its bound), acks beyond
 * what was handed over refused, at-most-once committing before the
 * hand-over, a held partition resumed without loss or repeat, and a
 * partition taken away only after the sink let go of it.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include "batch.h"
#include "broker.h"
#include "client.h"
#include "consumer.h"

typedef struct fix {
	char dir[512];
	char ep[600];
	mq_broker_t *b;
	pthread_t th;
	volatile sig_atomic_t stop;
	mq_client_t *c;
	mq_client_t *pc; /* publishes: a client's data socket carries a producer or fetches, not both */
} fix_t;

static void *run(void *arg)
{
	fix_t *f = arg;
	mq_err_t err;
	mq_broker_run(f->b, &f->stop, &err);
	return NULL;
}

static int setup(void **state)
{
	fix_t *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/mq-test-consumer-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->ep, sizeof(f->ep), "ipc://%s/sock", f->dir);
	mq_broker_opts_t o;
	memset(&o, 0, sizeof(o));
	mq_log_opts_default(&o.log);
	o.data_dir = f->dir;
	o.listen[0] = f->ep;
	o.nlisten = 1;
	o.partitions = 1;
	mq_err_t err;
	if (mq_broker_open(&o, &f->b, &err))
		return -1;
	pthread_create(&f->th, NULL, run, f);
	mq_client_opts_t co = {.endpoint = f->ep, .timeout_ms = 5000, .name = "test"};
	if (mq_client_open(&co, &f->c, &err) || mq_client_open(&co, &f->pc, &err))
		return -1;
	*state = f;
	return 0;
}

static void on_wake(int sig)
{
	(void)sig;
}

static int teardown(void **state)
{
	fix_t *f = *state;
	mq_client_close(f->c);
	mq_client_close(f->pc);
	/* The broker sleeps until a socket or a deadline wakes it (a parked
	 * fetch may wait 30 s): a signal cuts its wait, as SIGTERM would. */
	f->stop = 1;
	struct sigaction sa = {.sa_handler = on_wake};
	sigaction(SIGUSR1, &sa, NULL);
	for (;;) {
		pthread_kill(f->th, SIGUSR1);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000;
		if (ts.tv_nsec >= 1000000000)
			ts.tv_sec++, ts.tv_nsec -= 1000000000;
		if (pthread_timedjoin_np(f->th, NULL, &ts) == 0)
			break;
	}
	mq_broker_close(f->b);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* Publish values "0".."n-1" to topic t, partition p (made with parts). */
static void publish(fix_t *f, const char *t, uint32_t parts, uint32_t p, int n)
{
	mq_err_t err;
	uint32_t have;
	if (mq_client_meta(f->pc, t, 0, &have, &err))
		assert_int_equal(mq_client_topic_create(f->pc, t, parts, 0, 0, &err), 0);
	mq_producer_t *pr;
	assert_int_equal(mq_producer_new(f->pc, t, parts, 8, &pr, &err), 0);
	mq_buf_t buf = {0};
	for (int i = 0; i < n;) {
		mq_batch_builder_t b;
		mq_producer_begin(pr, p, &b, &buf);
		for (int j = 0; j < 7 && i < n; j++, i++) {
			char v[16];
			int len = snprintf(v, sizeof(v), "%d", i);
			mq_batch_add(&b, mq_now_ms(), NULL, 0, v, (size_t)len, NULL, 0, NULL, 0);
		}
		assert_int_equal(mq_producer_send(pr, &b, p, &err), 0);
	}
	assert_int_equal(mq_producer_flush(pr, &err), 0);
	mq_buf_free(&buf);
	mq_producer_free(pr);
}

static int64_t committed(fix_t *f, const char *g, const char *t, uint32_t p)
{
	int64_t off[8];
	mq_err_t err;
	for (int i = 0; i < 8; i++)
		off[i] = -1;
	assert_int_equal(mq_client_committed(f->c, g, t, off, 8, &err), 0);
	return off[p];
}

/* A sink that records what it got and acks what the test says. */
typedef struct rec_sink {
	fix_t *f;
	mq_consumer_t *k;
	int n;             /* records taken */
	int64_t last[4];   /* per partition, last offset taken (-1: none) */
	int order_broken;  /* an offset not following the last one */
	int ack_on_flush;  /* flush acks everything handed over */
	uint64_t bound;    /* UINT64_MAX: none */
	int hold_after;    /* hold partition 0 after this many records (0: never) */
	int64_t amo_seen;  /* at-most-once: the smallest committed - offset seen at a put */
	int release_calls, release_after; /* release says 1 from this call on */
	int puts_fetching; /* records handed over while a fetch was outstanding */
} rec_sink_t;

static int s_put(void *ctx, uint32_t ti, const char *topic, uint32_t p, const mq_consumer_part_t *part,
		 const mq_record_t *rec, mq_err_t *err)
{
	rec_sink_t *s = ctx;
	(void)ti;
	(void)part;
	(void)err;
	if (s->last[p] >= 0 && (int64_t)rec->offset != s->last[p] + 1)
		s->order_broken = 1;
	s->last[p] = (int64_t)rec->offset;
	char v[16];
	snprintf(v, sizeof(v), "%d", (int)rec->offset);
	if (rec->value_len != strlen(v) || memcmp(rec->value, v, rec->value_len))
		s->order_broken = 1;
	s->n++;
	s->puts_fetching += mq_client_fetch_pending(s->f->c) != 0;
	if (s->amo_seen != INT64_MAX) {
		/* at most once: the commit covering this record went out before */
		int64_t c = committed(s->f, "g", topic, p);
		if (c - (int64_t)rec->offset < s->amo_seen)
			s->amo_seen = c - (int64_t)rec->offset;
	}
	if (s->hold_after && s->n % s->hold_after == 0)
		mq_consumer_hold(s->k, 0, p, 1);
	return 0;
}

static int s_flush(void *ctx, mq_consumer_t *k, mq_err_t *err)
{
	rec_sink_t *s = ctx;
	(void)err;
	if (s->ack_on_flush)
		mq_consumer_ack_all(k);
	return 0;
}

static uint64_t s_bound(void *ctx, const mq_consumer_part_t *p)
{
	rec_sink_t *s = ctx;
	(void)p;
	return s->bound;
}

static int s_release(void *ctx, mq_consumer_t *k, uint32_t ti, uint32_t p, mq_err_t *err)
{
	rec_sink_t *s = ctx;
	(void)err;
	s->release_calls++;
	if (s->release_calls < s->release_after)
		return 0;
	const mq_consumer_part_t *q = mq_consumer_part(k, ti, p);
	assert_int_equal(mq_consumer_ack(k, ti, p, q->written), 0);
	return 1;
}

static const mq_consumer_sink_t rec_sink = {
	.put = s_put, .flush = s_flush, .bound = s_bound, .release = s_release};

static void sink_init(rec_sink_t *s, fix_t *f)
{
	memset(s, 0, sizeof(*s));
	s->f = f;
	for (int i = 0; i < 4; i++)
		s->last[i] = -1;
	s->bound = UINT64_MAX;
	s->amo_seen = INT64_MAX;
}

static mq_consumer_t *open_consumer(fix_t *f, rec_sink_t *s, const char *topic, const char *group, int exit_at_end)
{
	static const char *topics[1];
	topics[0] = topic;
	mq_consumer_opts_t o = {.topics = topics, .ntopics = 1, .group = group, .start = {MQ_OFF_BEGINNING, 0},
				.exit_at_end = exit_at_end, .session_ms = 3000, .sink = &rec_sink, .sink_ctx = s,
				.watch_fd = -1};
	mq_consumer_t *k = NULL;
	mq_err_t err;
	if (mq_consumer_open(f->c, &o, &k, &err))
		fail_msg("open: %s", err.msg);
	s->k = k;
	return k;
}

/* Step until the end (exit_at_end), at most ~10 s. */
static void drain(mq_consumer_t *k)
{
	mq_err_t err;
	int64_t until = mq_mono_ms() + 10000;
	int rc;
	while ((rc = mq_consumer_step(k, &err)) == 0 && mq_mono_ms() < until)
		;
	if (rc < 0)
		fail_msg("step: %s", err.msg);
	assert_int_equal(rc, 1);
}

/* Step k for up to ms, or until the sink has taken n records (n < 0:
 * the whole time); no step may fail. */
static void step(mq_consumer_t *k, const rec_sink_t *s, int n, int64_t ms)
{
	mq_err_t err;
	int64_t until = mq_mono_ms() + ms;
	mq_consumer_wake_at(k, until); /* a step waits no longer than that */
	while ((n < 0 || s->n < n) && mq_mono_ms() < until)
		assert_true(mq_consumer_step(k, &err) >= 0);
	mq_consumer_wake_at(k, 0);
}

/* A sink that acks nothing: nothing past the start is committed,
 * whatever it took. */
static void test_commit_never_passes_acked(void **state)
{
	fix_t *f = *state;
	publish(f, "t", 1, 0, 100);
	rec_sink_t s;
	sink_init(&s, f);
	mq_consumer_t *k = open_consumer(f, &s, "t", "g", 1);
	drain(k);
	assert_int_equal(s.n, 100);
	assert_false(s.order_broken);
	mq_err_t err;
	assert_int_equal(mq_consumer_finish(k, &err), 0);
	assert_int_equal(committed(f, "g", "t", 0), 0); /* where it started */
	mq_consumer_close(k);

	/* Acks up to 40: the commit is 40, and a restart resumes there. */
	sink_init(&s, f);
	k = open_consumer(f, &s, "t", "g", 1);
	drain(k);
	assert_int_equal(s.n, 100);
	assert_int_equal(mq_consumer_ack(k, 0, 0, 40), 0);
	assert_int_equal(mq_consumer_ack(k, 0, 0, 30), 0); /* never back */
	assert_int_equal(mq_consumer_finish(k, &err), 0);
	assert_int_equal(committed(f, "g", "t", 0), 40);
	mq_consumer_close(k);
	sink_init(&s, f);
	k = open_consumer(f, &s, "t", "g", 1);
	drain(k);
	assert_int_equal(s.n, 60);
	assert_int_equal(s.last[0], 99);
	mq_consumer_close(k);
}

/* An ack past what was handed over is refused and changes nothing; a
 * bound below the acks holds the commit back. */
static void test_ack_past_written_and_bound(void **state)
{
	fix_t *f = *state;
	publish(f, "t", 1, 0, 50);
	rec_sink_t s;
	sink_init(&s, f);
	s.hold_after = 20; /* takes 0..19, then holds */
	mq_consumer_t *k = open_consumer(f, &s, "t", "g", 0);
	mq_err_t err;
	step(k, &s, 20, 5000);
	assert_int_equal(s.n, 20);
	assert_int_equal(mq_consumer_part(k, 0, 0)->written, 20);
	assert_int_equal(mq_consumer_ack(k, 0, 0, 21), -MQ_EINVAL);
	assert_int_equal(mq_consumer_part(k, 0, 0)->acked, 0);
	assert_int_equal(mq_consumer_ack(k, 0, 0, 99), -MQ_EINVAL);
	assert_int_equal(mq_consumer_ack(k, 5, 0, 1), -MQ_EINVAL);
	assert_int_equal(mq_consumer_ack(k, 0, 0, 20), 0);
	s.bound = 12;
	assert_int_equal(mq_consumer_finish(k, &err), 0);
	assert_int_equal(committed(f, "g", "t", 0), 12);
	mq_consumer_close(k);
}

/* A held partition is not fetched; released, it goes on from where the
 * sink stopped taking, with nothing lost or repeated. */
static void test_hold_resumes(void **state)
{
	fix_t *f = *state;
	publish(f, "t", 1, 0, 300);
	rec_sink_t s;
	sink_init(&s, f);
	s.hold_after = 10;
	s.ack_on_flush = 1;
	mq_consumer_t *k = open_consumer(f, &s, "t", NULL, 1);
	mq_err_t err;
	int64_t until = mq_mono_ms() + 10000;
	int rc = 0, holds = 0;
	while (rc == 0 && mq_mono_ms() < until) {
		rc = mq_consumer_step(k, &err);
		assert_true(rc >= 0);
		const mq_consumer_part_t *p = mq_consumer_part(k, 0, 0);
		if (p->held) {
			assert_int_equal(p->written, (uint64_t)s.n); /* nothing more was taken */
			assert_int_equal(p->pos, p->written);
			holds++;
			mq_consumer_hold(k, 0, 0, 0);
		}
	}
	assert_int_equal(rc, 1);
	assert_int_equal(s.n, 300);
	assert_false(s.order_broken);
	assert_int_equal(holds, 30);
	mq_consumer_close(k);
}

/* At most once: each record's commit was made before it was handed over. */
static void test_at_most_once(void **state)
{
	fix_t *f = *state;
	publish(f, "t", 1, 0, 64);
	rec_sink_t s;
	sink_init(&s, f);
	s.amo_seen = INT64_MAX - 1;
	static const char *topics[] = {"t"};
	mq_consumer_opts_t o = {.topics = topics, .ntopics = 1, .group = "g", .start = {MQ_OFF_BEGINNING, 0},
				.exit_at_end = 1, .at_most_once = 1, .sink = &rec_sink, .sink_ctx = &s,
				.watch_fd = -1};
	mq_consumer_t *k = NULL;
	mq_err_t err;
	assert_int_equal(mq_consumer_open(f->c, &o, &k, &err), 0);
	s.k = k;
	drain(k);
	assert_int_equal(s.n, 64);
	assert_true(s.amo_seen >= 1);
	assert_int_equal(mq_consumer_finish(k, &err), 0);
	assert_int_equal(committed(f, "g", "t", 0), 64);
	mq_consumer_close(k);
}

/* A second member joins: the first gives partition 1 up only once its
 * sink let go of it, commits what the sink finished there, and the
 * second starts at that commit: no record of it twice, none lost. */
static void test_release_before_handover(void **state)
{
	fix_t *f = *state;
	publish(f, "two", 2, 0, 40);
	publish(f, "two", 2, 1, 40);
	mq_client_opts_t co = {.endpoint = f->ep, .timeout_ms = 5000, .name = "test2"};
	mq_client_t *c2;
	mq_err_t err;
	assert_int_equal(mq_client_open(&co, &c2, &err), 0);

	rec_sink_t a, b;
	sink_init(&a, f);
	sink_init(&b, f);
	a.release_after = 3; /* busy for two asks, then lets go */
	mq_consumer_t *ka = open_consumer(f, &a, "two", "g2", 0);
	int64_t until = mq_mono_ms() + 10000;
	while (a.n < 80 && mq_mono_ms() < until)
		assert_true(mq_consumer_step(ka, &err) >= 0);
	assert_int_equal(a.n, 80);

	static const char *topics[] = {"two"};
	mq_consumer_opts_t o = {.topics = topics, .ntopics = 1, .group = "g2", .start = {MQ_OFF_BEGINNING, 0},
				.session_ms = 3000, .sink = &rec_sink, .sink_ctx = &b, .watch_fd = -1};
	mq_consumer_t *kb = NULL;
	assert_int_equal(mq_consumer_open(c2, &o, &kb, &err), 0);
	b.k = kb;
	until = mq_mono_ms() + 15000;
	uint32_t owned_b = 0;
	while (mq_mono_ms() < until) {
		mq_consumer_wake_at(ka, mq_mono_ms() + 50);
		mq_consumer_wake_at(kb, mq_mono_ms() + 50);
		assert_true(mq_consumer_step(ka, &err) >= 0);
		assert_true(mq_consumer_step(kb, &err) >= 0);
		owned_b = 0;
		for (uint32_t p = 0; p < mq_consumer_partitions(kb, 0); p++)
			owned_b += mq_consumer_part(kb, 0, p)->active == 1;
		if (owned_b == 1)
			break;
	}
	assert_int_equal(owned_b, 1);
	assert_true(a.release_calls >= 3);
	assert_int_equal(b.n, 0); /* it starts at what a committed: the end */
	for (uint32_t p = 0; p < 2; p++) {
		const mq_consumer_part_t *q = mq_consumer_part(kb, 0, p);
		if (q && q->active == 1)
			assert_int_equal(committed(f, "g2", "two", p), 40);
	}
	assert_int_equal(mq_consumer_finish(ka, &err), 0);
	assert_int_equal(mq_consumer_finish(kb, &err), 0);
	mq_consumer_close(ka);
	mq_consumer_close(kb);
	mq_client_close(c2);
}

static void count_report(void *ctx, const char *msg)
{
	(void)msg;
	(*(int *)ctx)++;
}

/* check_seq: two producers' batches, re-fetched again and again by
 * holds (records below what was taken come back in whole batches), are
 * each checked once: no gap, no repeat, nothing said. */
static void test_check_seq_once(void **state)
{
	fix_t *f = *state;
	publish(f, "t", 1, 0, 150);
	publish(f, "t", 1, 0, 150);
	rec_sink_t s;
	sink_init(&s, f);
	s.hold_after = 10;
	s.ack_on_flush = 1;
	int said = 0;
	static const char *topics[] = {"t"};
	mq_consumer_opts_t o = {.topics = topics, .ntopics = 1, .start = {MQ_OFF_BEGINNING, 0}, .exit_at_end = 1,
				.session_ms = 3000, .sink = &rec_sink, .sink_ctx = &s, .watch_fd = -1, .check_seq = 1,
				.report = count_report, .report_ctx = &said};
	mq_consumer_t *k = NULL;
	mq_err_t err;
	assert_int_equal(mq_consumer_open(f->c, &o, &k, &err), 0);
	s.k = k;
	int64_t until = mq_mono_ms() + 10000;
	int rc = 0;
	while (rc == 0 && mq_mono_ms() < until) {
		rc = mq_consumer_step(k, &err);
		assert_true(rc >= 0);
		if (mq_consumer_part(k, 0, 0)->held)
			mq_consumer_hold(k, 0, 0, 0);
	}
	assert_int_equal(rc, 1);
	assert_int_equal(s.n, 300);
	assert_int_equal(mq_consumer_part(k, 0, 0)->checked, 300);
	mq_consumer_seq_counts_t n = mq_consumer_seq_counts(k);
	assert_int_equal(n.gaps + n.repeats + n.missing + n.ttl_gaps, 0);
	assert_int_equal(n.seen, 300);
	assert_int_equal(n.unnumbered, 0);
	assert_int_equal(said, 0);
	mq_consumer_close(k);
}

static int64_t requests(fix_t *f)
{
	mq_stat_t *st;
	uint32_t n;
	mq_err_t err;
	int64_t v = -1;
	assert_int_equal(mq_client_stats(f->c, &st, &n, &err), 0);
	for (uint32_t i = 0; i < n; i++)
		if (!strcmp(st[i].name, "requests"))
			v = st[i].value;
	free(st);
	return v;
}

/* A follower of a pattern looks at the topic list only when it changed:
 * idle, it sends nothing (its long-poll fetch waits for a change), and
 * a new matching topic still reaches it at once, from its first message. */
static void test_follow_list_on_change(void **state)
{
	fix_t *f = *state;
	publish(f, "p.a", 1, 0, 2);
	rec_sink_t s;
	sink_init(&s, f);
	s.ack_on_flush = 1;
	mq_consumer_t *k = open_consumer(f, &s, "p.*", NULL, 0);
	step(k, &s, 2, 5000);
	assert_int_equal(s.n, 2);
	int64_t r0 = requests(f);
	step(k, &s, -1, 5000);
	int64_t idle = requests(f) - r0 - 1; /* less the STATS itself */
	/* Long polls expiring every second made it 5 or 6; asking for the
	 * list every second as well, 8 or more. */
	assert_true(idle <= 1);
	publish(f, "p.b", 1, 0, 3);
	s.last[0] = -1; /* a new topic: its partition 0 counts from 0 again */
	int64_t t0 = mq_mono_ms();
	step(k, &s, 5, 5000);
	assert_true(mq_mono_ms() - t0 < 1000);
	assert_int_equal(s.n, 5);
	assert_false(s.order_broken);
	mq_consumer_close(k);
}

/* A follower whose only partition the sink holds sends nothing while it
 * is held (a fetch that only waits for the topic list would keep the
 * partition waiting for up to its long poll once the sink lets go), and
 * reads on at once when it is let go. */
static void test_held_sends_nothing(void **state)
{
	fix_t *f = *state;
	publish(f, "h", 1, 0, 20);
	rec_sink_t s;
	sink_init(&s, f);
	s.hold_after = 10;
	s.ack_on_flush = 1;
	mq_consumer_t *k = open_consumer(f, &s, "h", NULL, 0);
	step(k, &s, 10, 5000);
	assert_int_equal(s.n, 10);
	assert_true(mq_consumer_part(k, 0, 0)->held);
	int64_t r0 = requests(f);
	step(k, &s, -1, 2500);
	int64_t n = requests(f) - r0 - 1;
	if (n > 1) /* a fetch under way when the hold came may still be answered */
		fail_msg("%lld requests while the only partition was held", (long long)n);
	mq_consumer_hold(k, 0, 0, 0);
	step(k, &s, 20, 5000);
	assert_int_equal(s.n, 20);
	assert_false(s.order_broken);
	mq_consumer_close(k);
}

/* A follower's few records reach the sink before the next fetch goes
 * out (what they wait for is the output, and the request would cost a
 * system call first); a large block is handed over while the next
 * fetch is already under way (the broker prepares the next block). */
static void test_small_reply_handed_over_first(void **state)
{
	fix_t *f = *state;
	publish(f, "small", 1, 0, 5);
	rec_sink_t s;
	sink_init(&s, f);
	mq_consumer_t *k = open_consumer(f, &s, "small", NULL, 0);
	step(k, &s, 5, 5000);
	assert_int_equal(s.n, 5);
	assert_int_equal(s.puts_fetching, 0);
	publish(f, "small", 1, 0, 3); /* values 0..2 again: offsets 5..7 */
	s.last[0] = -1;
	step(k, &s, 8, 5000);
	assert_int_equal(s.n, 8);
	assert_int_equal(s.puts_fetching, 0);
	mq_consumer_close(k);
	publish(f, "large", 1, 0, 30000); /* replies well over 64 KiB */
	sink_init(&s, f);
	k = open_consumer(f, &s, "large", NULL, 0);
	step(k, &s, 30000, 10000);
	assert_int_equal(s.n, 30000);
	assert_false(s.order_broken);
	if (s.puts_fetching < 10000)
		fail_msg("only %d of 30000 records handed over with the next fetch under way", s.puts_fetching);
	mq_consumer_close(k);
}

/* Of two partitions, the sink holds the one with data while the fetch
 * for the other waits (a long poll of 30 s): once let go, the held one
 * is read on at once, by a fetch sent in place of the waiting one. */
static void test_unhold_refetches(void **state)
{
	fix_t *f = *state;
	publish(f, "two", 2, 0, 20);
	rec_sink_t s;
	sink_init(&s, f);
	s.hold_after = 10;
	s.ack_on_flush = 1;
	mq_consumer_t *k = open_consumer(f, &s, "two", NULL, 0);
	step(k, &s, 10, 5000);
	assert_int_equal(s.n, 10);
	assert_true(mq_consumer_part(k, 0, 0)->held);
	step(k, &s, -1, 500); /* the fetch for partition 1 is parked now */
	assert_int_equal(s.n, 10);
	mq_consumer_hold(k, 0, 0, 0);
	int64_t t0 = mq_mono_ms();
	step(k, &s, 20, 5000);
	assert_int_equal(s.n, 20);
	if (mq_mono_ms() - t0 >= 1000)
		fail_msg("the let-go partition waited %lld ms for the parked fetch", (long long)(mq_mono_ms() - t0));
	assert_false(s.order_broken);
	mq_consumer_close(k);
}

/* Records taken right after a commit are committed when the commit
 * window ends, while the member waits on an idle topic: not at its next
 * fetch reply, which may be 30 s away. */
static void test_commit_falls_due(void **state)
{
	fix_t *f = *state;
	publish(f, "cd", 1, 0, 5);
	rec_sink_t s;
	sink_init(&s, f);
	s.ack_on_flush = 1;
	mq_consumer_t *k = open_consumer(f, &s, "cd", "g", 0);
	step(k, &s, 5, 5000);
	publish(f, "cd", 1, 0, 5); /* within the 500 ms after the first commit */
	step(k, &s, 10, 5000);
	assert_int_equal(s.n, 10);
	step(k, &s, -1, 1500);
	assert_int_equal(committed(f, "g", "cd", 0), 10);
	mq_consumer_close(k);
}

/* A group member that waited for its topic follows the list no more
 * once the topic is there: topics made afterwards do not send it into a
 * loop of fetches the broker answers at once (its epoch is old). */
static void test_group_waited_no_spin(void **state)
{
	fix_t *f = *state;
	rec_sink_t s;
	sink_init(&s, f);
	s.ack_on_flush = 1;
	mq_consumer_t *k = open_consumer(f, &s, "later", "g", 0);
	mq_err_t err;
	step(k, &s, -1, 300);
	publish(f, "later", 1, 0, 3);
	step(k, &s, 3, 10000);
	assert_int_equal(s.n, 3);
	assert_int_equal(mq_client_topic_create(f->c, "other1", 1, 0, 0, &err), 0);
	assert_int_equal(mq_client_topic_create(f->c, "other2", 1, 0, 0, &err), 0);
	int64_t r0 = requests(f);
	step(k, &s, -1, 2000);
	int64_t n = requests(f) - r0 - 1;
	/* Long polls, heartbeats and commits: a handful a second, not a spin. */
	if (n > 20)
		fail_msg("%lld requests in 2 s of an idle member", (long long)n);
	mq_consumer_close(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_never_passes_acked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_past_written_and_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_at_most_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_before_handover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_seq_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follow_list_on_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_waited_no_spin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_sends_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unhold_refetches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_falls_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_reply_handed_over_first, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
