/*
 * test_broker.c -- the broker loop and group coordinator, in process:
 * mq_broker_run runs in a thread, the test speaks the wire protocol
 * (wire.h) over a real DEALER socket on an ipc endpoint.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <poll.h>
#include <unistd.h>
#include <zmq.h>

#include "batch.h"
#include "broker.h"
#include "client.h"
#include "group.h"
#include "txn.h"
#include "wire.h"

typedef struct fix {
	char dir[512];
	char ep[600];
	mq_broker_t *b;
	pthread_t th;
	volatile sig_atomic_t stop;
	void *ctx;
	void *s;
	uint32_t id;
	mq_buf_t buf;
	zmq_msg_t frames[8];
	int nframes;
	mq_wire_msg_t m;
	int have_m;
	int64_t lag_ms; /* --lag-interval; 0: default */
	int64_t txn_timeout_ms; /* --txn-timeout; 0: default */
	pthread_mutex_t mu; /* reports come from the broker's thread */
	int nreports;
	char reported[1024];
	void *raw; /* a socket of the test's own, closed at teardown */
	int wake[2]; /* the broker's wake pipe: stop() writes it, as a signal would */
} fix_t;

static void on_report(void *ctx, const char *msg)
{
	fix_t *f = ctx;
	pthread_mutex_lock(&f->mu);
	f->nreports++;
	snprintf(f->reported, sizeof(f->reported), "%s", msg);
	pthread_mutex_unlock(&f->mu);
}

static int reports(fix_t *f)
{
	pthread_mutex_lock(&f->mu);
	int n = f->nreports;
	pthread_mutex_unlock(&f->mu);
	return n;
}

static void *run(void *arg)
{
	fix_t *f = arg;
	mq_err_t err;
	mq_broker_run(f->b, &f->stop, &err);
	return NULL;
}

static void start(fix_t *f, uint32_t partitions, size_t max_record)
{
	mq_broker_opts_t o;
	memset(&o, 0, sizeof(o));
	mq_log_opts_default(&o.log);
	o.log.fsync = MQ_FSYNC_ALWAYS;
	if (max_record)
		o.log.max_record_bytes = max_record;
	o.data_dir = f->dir;
	o.listen[0] = f->ep;
	o.nlisten = 1;
	o.partitions = partitions;
	o.lag_interval_ms = f->lag_ms;
	o.txn_timeout_ms = f->txn_timeout_ms;
	o.report = on_report;
	o.report_ctx = f;
	mq_err_t err;
	if (mq_broker_open(&o, &f->b, &err))
		fail_msg("broker: %s", err.msg);
	f->stop = 0;
	assert_int_equal(pipe2(f->wake, O_CLOEXEC | O_NONBLOCK), 0);
	mq_broker_wake_on(f->b, f->wake[0]);
	pthread_create(&f->th, NULL, run, f);
	f->s = zmq_socket(f->ctx, ZMQ_DEALER);
	int linger = 0, tmo = 5000;
	zmq_setsockopt(f->s, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(f->s, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
	assert_int_equal(zmq_connect(f->s, f->ep), 0);
}

static void stop(fix_t *f)
{
	if (!f->b)
		return;
	f->stop = 1;
	assert_int_equal(write(f->wake[1], "", 1), 1);
	pthread_join(f->th, NULL);
	mq_broker_close(f->b);
	close(f->wake[0]);
	close(f->wake[1]);
	f->b = NULL;
	zmq_close(f->s);
}

static int setup(void **state)
{
	fix_t *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/mq-test-broker-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->ep, sizeof(f->ep), "ipc://%s/sock", f->dir);
	f->ctx = zmq_ctx_new();
	pthread_mutex_init(&f->mu, NULL);
	*state = f;
	return 0;
}

static void clear_reply(fix_t *f)
{
	if (f->have_m)
		mq_wire_msg_free(&f->m);
	f->have_m = 0;
	for (int i = 0; i < f->nframes; i++)
		zmq_msg_close(&f->frames[i]);
	f->nframes = 0;
}

static int teardown(void **state)
{
	fix_t *f = *state;
	clear_reply(f);
	stop(f);
	if (f->raw)
		zmq_close(f->raw);
	zmq_ctx_term(f->ctx);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	mq_buf_free(&f->buf);
	free(f);
	return 0;
}

/* Begin a request: packer into f->buf. */
static void req(fix_t *f, msgpack_packer *pk, uint32_t kind, uint32_t nargs)
{
	f->buf.len = 0;
	mq_wire_packer(pk, &f->buf);
	mq_wire_begin(pk, kind, ++f->id, nargs);
}

/* Send the request (with an optional payload) and wait for its reply. */
static uint32_t call(fix_t *f, const void *payload, size_t plen)
{
	assert_true(zmq_send(f->s, f->buf.p, f->buf.len, payload ? ZMQ_SNDMORE : 0) >= 0);
	if (payload)
		assert_true(zmq_send(f->s, payload, plen, 0) >= 0);
	clear_reply(f);
	int more = 1;
	while (more) {
		zmq_msg_init(&f->frames[f->nframes]);
		if (zmq_msg_recv(&f->frames[f->nframes], f->s, 0) < 0)
			fail_msg("no reply: %s", zmq_strerror(errno));
		more = zmq_msg_more(&f->frames[f->nframes]);
		f->nframes++;
	}
	mq_err_t err;
	assert_int_equal(mq_wire_parse(zmq_msg_data(&f->frames[0]), zmq_msg_size(&f->frames[0]), &f->m, &err), 0);
	f->have_m = 1;
	assert_int_equal(f->m.id, f->id);
	return f->m.kind;
}

static uint64_t u64arg(fix_t *f, uint32_t i)
{
	uint64_t v = 0;
	mq_err_t err;
	assert_int_equal(mq_wire_u64(mq_wire_arg(&f->m, i), &v, "arg", &err), 0);
	return v;
}

static void expect_err(fix_t *f, int code, const char *needle)
{
	assert_int_equal(f->m.kind, MQ_REP_ERR);
	assert_int_equal(u64arg(f, 0), (uint64_t)code);
	const char *s;
	size_t n;
	mq_err_t err;
	assert_int_equal(mq_wire_strv(mq_wire_arg(&f->m, 1), &s, &n, "msg", &err), 0);
	char msg[600];
	snprintf(msg, sizeof(msg), "%.*s", (int)n, s);
	if (!strstr(msg, needle))
		fail_msg("error '%s' does not mention '%s'", msg, needle);
}

static uint32_t meta(fix_t *f, const char *topic)
{
	msgpack_packer pk;
	req(f, &pk, MQ_REQ_META, 2);
	mq_wire_pack_str(&pk, topic);
	msgpack_pack_true(&pk);
	assert_int_equal(call(f, NULL, 0), MQ_REP_OK);
	return (uint32_t)u64arg(f, 0);
}

static mq_buf_t batchbuf;

static const uint8_t *make_batch(uint64_t pid, uint32_t seq, int count, const char *prefix, size_t *len)
{
	mq_batch_builder_t b;
	batchbuf.len = 0;
	mq_batch_begin(&b, &batchbuf);
	b.hdr.producer_id = pid;
	b.hdr.base_seq = seq;
	for (int i = 0; i < count; i++) {
		char v[64];
		int n = snprintf(v, sizeof(v), "%s-%d", prefix, i);
		mq_batch_add(&b, mq_now_ms(), NULL, 0, v, (size_t)n, NULL, 0, NULL, 0);
	}
	*len = mq_batch_finish(&b);
	return batchbuf.p;
}

/* PRODUCE; returns the reply kind; *base and *dup from an OK reply. */
static uint32_t produce(fix_t *f, const char *topic, uint32_t p, const uint8_t *batch, size_t len, uint64_t *base,
			int *dup)
{
	msgpack_packer pk;
	req(f, &pk, MQ_REQ_PRODUCE, 2);
	mq_wire_pack_str(&pk, topic);
	msgpack_pack_uint32(&pk, p);
	uint32_t k = call(f, batch, len);
	if (k == MQ_REP_OK) {
		*base = u64arg(f, 0);
		mq_err_t err;
		assert_int_equal(mq_wire_bool(mq_wire_arg(&f->m, 2), dup, "dup", &err), 0);
	}
	return k;
}

/* FETCH one partition; returns the number of records in the reply. */
static int fetch(fix_t *f, const char *topic, uint32_t p, uint64_t off, uint64_t wait, const char *group,
		 const char *member, int *code)
{
	msgpack_packer pk;
	req(f, &pk, MQ_REQ_FETCH, 6);
	msgpack_pack_array(&pk, 1);
	mq_wire_pack_str(&pk, topic);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint32(&pk, 0);
	msgpack_pack_uint32(&pk, p);
	msgpack_pack_uint64(&pk, off);
	msgpack_pack_uint64(&pk, 1 << 20);
	msgpack_pack_uint64(&pk, wait);
	if (group)
		mq_wire_pack_str(&pk, group);
	else
		msgpack_pack_nil(&pk);
	if (member)
		mq_wire_pack_str(&pk, member);
	else
		msgpack_pack_nil(&pk);
	assert_int_equal(call(f, NULL, 0), MQ_REP_OK);
	const msgpack_object_array *a;
	mq_err_t err;
	assert_int_equal(mq_wire_array(mq_wire_arg(&f->m, 0), &a, "entries", &err), 0);
	assert_int_equal(a->size, 1);
	const msgpack_object_array *e = &a->ptr[0].via.array;
	assert_int_equal(e->size, 8);
	assert_int_equal(e->ptr[0].via.u64, 0);
	*code = (int)e->ptr[6].via.i64;
	if (e->ptr[6].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		*code = (int)e->ptr[6].via.u64;
	uint64_t nbytes = e->ptr[5].via.u64;
	if (!nbytes)
		return 0;
	assert_int_equal(f->nframes, 2);
	assert_int_equal(zmq_msg_size(&f->frames[1]), nbytes);
	int records = 0;
	const uint8_t *d = zmq_msg_data(&f->frames[1]);
	for (size_t pos = 0; pos < nbytes;) {
		mq_batch_iter_t it;
		mq_record_t r;
		assert_int_equal(mq_batch_iter_init(&it, d + pos, nbytes - pos, &err), 0);
		while (mq_batch_iter_next(&it, &r) > 0)
			if (r.offset >= off)
				records++;
		pos += it.hdr.length;
	}
	return records;
}

/* `next` of the last fetch's only entry. */
static uint64_t fetch_next(fix_t *f)
{
	return mq_wire_arg(&f->m, 0)->via.array.ptr[0].via.array.ptr[4].via.u64;
}

/* A byte flipped on disk: the batches before it are served, the damaged
 * one never; its offsets come back as MQ_ECORRUPT up to where reading can
 * go on, and the operator hears of it once. */
static void test_damaged_fetch(void **state)
{
	fix_t *f = *state;
	start(f, 1, 0);
	size_t len = 0;
	uint64_t base;
	int dup, code;
	const char *names[] = {"a", "b", "c"};
	assert_int_equal(meta(f, "d"), 1);
	for (int i = 0; i < 3; i++) {
		const uint8_t *b = make_batch(0, 0, 10, names[i], &len);
		assert_int_equal(produce(f, "d", 0, b, len, &base, &dup), MQ_REP_OK);
		assert_int_equal(base, (uint64_t)i * 10);
	}
	stop(f);
	char seg[1024];
	snprintf(seg, sizeof(seg), "%s/topics/d/0/%020d.log", f->dir, 0);
	FILE *fp = fopen(seg, "r+b");
	assert_non_null(fp);
	fseek(fp, (long)(len + MQ_BATCH_HEADER + 20), SEEK_SET); /* inside the second batch's records */
	int c = fgetc(fp);
	fseek(fp, (long)(len + MQ_BATCH_HEADER + 20), SEEK_SET);
	fputc(c ^ 0x20, fp);
	fclose(fp);
	start(f, 1, 0);
	assert_int_equal(fetch(f, "d", 0, 0, 0, NULL, NULL, &code), 10);
	assert_int_equal(code, 0);
	assert_int_equal(fetch_next(f), 10);
	assert_int_equal(reports(f), 0);
	for (int again = 0; again < 2; again++) {
		assert_int_equal(fetch(f, "d", 0, 10, 0, NULL, NULL, &code), 0);
		assert_int_equal(code, MQ_ECORRUPT);
		assert_int_equal(fetch_next(f), 20);
		assert_int_equal(reports(f), 1);
		assert_non_null(strstr(f->reported, "topic 'd' partition 0: offsets 10 to 19 cannot be read"));
		assert_non_null(strstr(f->reported, "mq-admin verify"));
	}
	assert_int_equal(fetch(f, "d", 0, 15, 0, NULL, NULL, &code), 0);
	assert_int_equal(code, MQ_ECORRUPT);
	assert_int_equal(fetch_next(f), 20);
	assert_int_equal(reports(f), 1);
	assert_int_equal(fetch(f, "d", 0, 20, 0, NULL, NULL, &code), 10);
	assert_int_equal(code, 0);
	stop(f);
}

/* The client checks each fetched batch again: an entry whose batch fails
 * its CRC, skips an offset, or ends elsewhere than its `next` is
 * refused whole (a broker that did not check, or damage on the way). */
static void test_client_refuses_damaged_reply(void **state)
{
	fix_t *f = *state;
	void *r = f->raw = zmq_socket(f->ctx, ZMQ_ROUTER);
	int linger = 0, tmo = 5000;
	zmq_setsockopt(r, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(r, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
	assert_int_equal(zmq_bind(r, f->ep), 0);
	mq_client_opts_t co = {.endpoint = f->ep, .timeout_ms = 5000, .name = "test"};
	mq_client_t *c;
	mq_err_t err;
	assert_int_equal(mq_client_open(&co, &c, &err), 0);
	mq_buf_t two = {0};
	size_t len;
	const uint8_t *b = make_batch(0, 0, 10, "x", &len);
	assert_int_equal(mq_buf_append(&two, b, len), 0);
	assert_int_equal(mq_buf_append(&two, b, len), 0);
	mq_batch_set_base(two.p + len, 10);
	enum { GOOD, FLIPPED, GAP, NEXT, NCASES };
	for (int k = 0; k < NCASES; k++) {
		uint64_t next = k == NEXT ? 25 : 20;
		if (k == FLIPPED)
			two.p[len + MQ_BATCH_HEADER + 3] ^= 1;
		if (k == GAP)
			mq_batch_set_base(two.p + len, 11);
		const char *topics[] = {"d"};
		mq_fetch_pos_t pos = {0, 0, 0};
		assert_int_equal(mq_client_fetch_send(c, topics, 1, &pos, 1, 1 << 20, 0, NULL, NULL, NULL, &err), 0);
		mq_fetch_reply_t rep = {0};
		assert_int_equal(mq_client_fetch_recv(c, &rep, 300, &err), -MQ_EAGAIN); /* sent once connected */
		uint8_t ident[256], reqb[1024];
		int in = zmq_recv(r, ident, sizeof ident, 0), rn = zmq_recv(r, reqb, sizeof reqb, 0);
		assert_true(in > 0 && rn > 0);
		mq_wire_msg_t m;
		assert_int_equal(mq_wire_parse(reqb, (size_t)rn, &m, &err), 0);
		mq_buf_t hdr = {0};
		msgpack_packer pk;
		mq_wire_packer(&pk, &hdr);
		mq_wire_begin(&pk, MQ_REP_OK, m.id, 1);
		mq_wire_msg_free(&m);
		msgpack_pack_array(&pk, 1);
		msgpack_pack_array(&pk, 7);
		msgpack_pack_uint32(&pk, 0);
		msgpack_pack_uint32(&pk, 0);
		msgpack_pack_uint64(&pk, 0);
		msgpack_pack_uint64(&pk, 20);
		msgpack_pack_uint64(&pk, next);
		msgpack_pack_uint64(&pk, two.len);
		msgpack_pack_int(&pk, 0);
		assert_true(zmq_send(r, ident, (size_t)in, ZMQ_SNDMORE) >= 0);
		assert_true(zmq_send(r, hdr.p, hdr.len, ZMQ_SNDMORE) >= 0);
		assert_true(zmq_send(r, two.p, two.len, 0) >= 0);
		mq_buf_free(&hdr);
		int rc = mq_client_fetch_recv(c, &rep, 5000, &err);
		assert_int_equal(rc, 0);
		assert_int_equal(rep.n, 1);
		rc = mq_fetch_entry_check(&rep.e[0], "d", &err);
		if (k == GOOD) {
			assert_int_equal(rc, 0);
			assert_int_equal(rep.n, 1);
			assert_int_equal(rep.e[0].nbytes, two.len);
		} else {
			assert_int_equal(rc, -MQ_ECORRUPT);
			assert_non_null(strstr(err.msg, "topic 'd' partition 0"));
		}
		mq_fetch_reply_free(&rep);
	}
	mq_buf_free(&two);
	mq_client_close(c);
}

static void test_hello_meta_produce_fetch(void **state)
{
	fix_t *f = *state;
	start(f, 3, 0);
	msgpack_packer pk;
	req(f, &pk, MQ_REQ_HELLO, 2);
	mq_wire_pack_str(&pk, "test");
	msgpack_pack_uint32(&pk, MQ_PROTOCOL_VERSION);
	assert_int_equal(call(f, NULL, 0), MQ_REP_OK);
	assert_int_equal(u64arg(f, 1), 1 << 20);
	assert_int_equal(u64arg(f, 2), 3);

	assert_int_equal(meta(f, "orders"), 3);
	size_t len;
	uint64_t base;
	int dup, code;
	const uint8_t *bt = make_batch(0, 0, 10, "a", &len);
	assert_int_equal(produce(f, "orders", 2, bt, len, &base, &dup), MQ_REP_OK);
	assert_int_equal(base, 0);
	assert_false(dup);
	bt = make_batch(0, 0, 5, "b", &len);
	assert_int_equal(produce(f, "orders", 2, bt, len, &base, &dup), MQ_REP_OK);
	assert_int_equal(base, 10);
	assert_int_equal(fetch(f, "orders", 2, 0, 0, NULL, NULL, &code), 15);
	assert_int_equal(code, 0);
	assert_int_equal(fetch(f, "orders", 2, 12, 0, NULL, NULL, &code), 3);
	assert_int_equal(fetch(f, "orders", 1, 0, 0, NULL, NULL, &code), 0);
	assert_int_equal(fetch(f, "orders", 2, 99, 0, NULL, NULL, &code), 0);
	assert_int_equal(code, MQ_ERANGE);
	assert_int_equal(fetch(f, "orders", 7, 0, 0, NULL, NULL, &code), 0);
	assert_int_equal(code, MQ_ENOENT);

	/* OFFSETS: start, end and by time */
	req(f, &pk, MQ_REQ_OFFSETS, 2);
	mq_wire_pack_str(&pk, "orders");
	msgpack_pack_int64(&pk, 0);
	assert_int_equal(call(f, NULL, 0), MQ_REP_OK);
	const msgpack_object_array *a = &mq_wire_arg(&f->m, 0)->via.array;
	assert_int_equal(a->size, 3);
	assert_int_equal(a->ptr[2].via.array.ptr[2].via.u64, 15);
	assert_int_equal(a->ptr[2].via.array.ptr[3].via.u64, 0);
}

static void test_idempotent_produce(void **state)
{
	fix_t *f = *state;
	start(f, 1, 0);
	meta(f, "t");
	size_t len;
	uint64_t base;
	int dup;
	const uint8_t *bt = make_batch(77, 0, 4, "x", &len);
	uint8_t copy[4096];
	memcpy(copy, bt, len);
	assert_int_equal(produce(f, "t", 0, copy, len, &base, &dup), MQ_REP_OK);
	assert_false(dup);
	memcpy(copy, bt, len);
	assert_int_equal(produce(f, "t", 0, copy, len, &base, &dup), MQ_REP_OK);
	assert_true(dup); /* the retry is not stored again */
	bt = make_batch(77, 4, 2, "y", &len);
	assert_int_equal(produce(f, "t", 0, bt, len, &base, &dup), MQ_REP_OK);
	assert_false(dup);
	assert_int_equal(base, 4);
	/* after a restart the sequences are rebuilt from the log */
	stop(f);
	start(f, 1, 0);
	bt = make_batch(77, 4, 2, "y", &len);
	assert_int_equal(produce(f, "t", 0, bt, len, &base, &dup), MQ_REP_OK);
	assert_true(dup);
	int code;
	assert_int_equal(fetch(f, "t", 0, 0, 0, NULL, NULL, &code), 6);
}

/* PRODUCE of batch to "t"/0 with the third argument (oldest: nothing
 * earlier of this producer is unacknowledged in the partition); -1
 * leaves it out.  Returns the reply kind; base and dup from an OK reply. */
static uint32_t produce_oldest(fix_t *f, const uint8_t *batch, size_t len, int oldest, uint64_t *base, int *dup)
{
	msgpack_packer pk;
	req(f, &pk, MQ_REQ_PRODUCE, oldest < 0 ? 2 : 3);
	mq_wire_pack_str(&pk, "t");
	msgpack_pack_uint32(&pk, 0);
	if (oldest >= 0)
		mq_wire_pack_bool(&pk, oldest);
	uint32_t k = call(f, batch, len);
	*base = UINT64_MAX;
	*dup = -1;
	if (k == MQ_REP_OK) {
		*base = u64arg(f, 0);
		mq_err_t err;
		assert_int_equal(mq_wire_bool(mq_wire_arg(&f->m, 2), dup, "dup", &err), 0);
	}
	return k;
}

/* The same for count records from producer pid at sequence seq. */
static uint32_t produce_seq(fix_t *f, uint64_t pid, uint32_t seq, int count, int oldest, uint64_t *base, int *dup)
{
	size_t len;
	const uint8_t *bt = make_batch(pid, seq, count, "s", &len);
	return produce_oldest(f, bt, len, oldest, base, dup);
}

/* A batch ahead of the producer's next sequence is refused as out of
 * order (and not stored) until the missing one came: a batch lost with
 * a connection is never answered later as a duplicate. */
static void test_produce_out_of_order(void **state)
{
	fix_t *f = *state;
	start(f, 1, 0);
	meta(f, "t");
	uint64_t base;
	int dup, code;
	assert_int_equal(produce_seq(f, 5, 10, 3, 0, &base, &dup), MQ_REP_ERR);
	expect_err(f, MQ_ESEQ, "out of order");
	assert_int_equal(produce_seq(f, 5, 0, 10, 1, &base, &dup), MQ_REP_OK);
	assert_false(dup); /* stored, not taken for a retry */
	assert_int_equal(base, 0);
	assert_int_equal(produce_seq(f, 5, 10, 3, 0, &base, &dup), MQ_REP_OK);
	assert_false(dup);
	assert_int_equal(base, 10);
	/* a known producer: 20 before 13 is refused, 13 then 20 stored */
	assert_int_equal(produce_seq(f, 5, 20, 1, 0, &base, &dup), MQ_REP_ERR);
	expect_err(f, MQ_ESEQ, "expected 13");
	assert_int_equal(produce_seq(f, 5, 13, 7, 0, &base, &dup), MQ_REP_OK);
	assert_int_equal(produce_seq(f, 5, 20, 1, 0, &base, &dup), MQ_REP_OK);
	assert_int_equal(base, 20);
	assert_int_equal(fetch(f, "t", 0, 0, 0, NULL, NULL, &code), 21);
	/* ahead, said to be the oldest batch the producer has not seen
	 * acknowledged: the broker's memory is behind it, so it is stored */
	assert_int_equal(produce_seq(f, 5, 30, 2, 1, &base, &dup), MQ_REP_OK);
	assert_false(dup);
	assert_int_equal(base, 21);
	assert_int_equal(produce_seq(f, 5, 32, 1, 0, &base, &dup), MQ_REP_OK);
	/* a new producer starts at 0, or with a batch said to be its oldest */
	assert_int_equal(produce_seq(f, 6, 0, 1, -1, &base, &dup), MQ_REP_OK);
	assert_int_equal(produce_seq(f, 7, 4, 1, -1, &base, &dup), MQ_REP_ERR);
	expect_err(f, MQ_ESEQ, "out of order");
	assert_int_equal(fetch(f, "t", 0, 0, 0, NULL, NULL, &code), 25);
}

/* A batch behind the next sequence is a duplicate only when it is one
 * of the producer's last MQ_PRODUCER_BATCHES batches (same first and last sequence);
 * the answer then carries the offset it was stored at.  Anything else
 * behind is refused, and nothing is stored.  They come back
 * from the log after a restart; sequences wrap. */
static void test_produce_remembered_batches(void **state)
{
	fix_t *f = *state;
	start(f, 1, 0);
	meta(f, "t");
	enum { N = MQ_PRODUCER_BATCHES, END = 2 * (N + 2) };
	uint64_t base, bases[N + 2];
	int dup, code;
	for (uint32_t i = 0; i < N + 2; i++) { /* batches [0,2) [2,4) ... at offsets 0, 2, ... */
		assert_int_equal(produce_seq(f, 9, 2 * i, 2, i == 0, &bases[i], &dup), MQ_REP_OK);
		assert_false(dup);
	}
	for (int round = 0; round < 2; round++) {
		for (uint32_t i = 2; i < N + 2; i++) {
			assert_int_equal(produce_seq(f, 9, 2 * i, 2, 0, &base, &dup), MQ_REP_OK);
			assert_true(dup);
			assert_int_equal(base, bases[i]);
		}
		/* older than the last N: unknown, refused */
		assert_int_equal(produce_seq(f, 9, 2, 2, 0, &base, &dup), MQ_REP_ERR);
		expect_err(f, MQ_EINVAL, "not one of its last");
		/* overlapping a remembered batch without matching it */
		assert_int_equal(produce_seq(f, 9, END - 4, 3, 0, &base, &dup), MQ_REP_ERR);
		expect_err(f, MQ_EINVAL, "not one of its last");
		assert_int_equal(produce_seq(f, 9, END - 3, 1, 0, &base, &dup), MQ_REP_ERR);
		assert_int_equal(fetch(f, "t", 0, 0, 0, NULL, NULL, &code), END);
		/* the same after a restart: rebuilt from the partition's tail */
		stop(f);
		start(f, 1, 0);
	}
	assert_int_equal(produce_seq(f, 9, END, 1, 0, &base, &dup), MQ_REP_OK);
	assert_false(dup);
	assert_int_equal(base, END);

	/* wrap-around: [2^32-2, 2) then [2, 3); 2^32-4 is behind, 5 ahead */
	uint64_t wbase;
	assert_int_equal(produce_seq(f, 10, UINT32_MAX - 1, 4, 1, &wbase, &dup), MQ_REP_OK);
	assert_int_equal(produce_seq(f, 10, 2, 1, 0, &base, &dup), MQ_REP_OK);
	assert_false(dup);
	assert_int_equal(produce_seq(f, 10, UINT32_MAX - 1, 4, 0, &base, &dup), MQ_REP_OK);
	assert_true(dup);
	assert_int_equal(base, wbase);
	assert_int_equal(produce_seq(f, 10, UINT32_MAX - 3, 2, 0, &base, &dup), MQ_REP_ERR);
	expect_err(f, MQ_EINVAL, "not one of its last");
	assert_int_equal(produce_seq(f, 10, 5, 1, 0, &base, &dup), MQ_REP_ERR);
	expect_err(f, MQ_ESEQ, "out of order");
	stop(f);
	start(f, 1, 0);
	assert_int_equal(produce_seq(f, 10, UINT32_MAX - 1, 4, 0, &base, &dup), MQ_REP_OK);
	assert_true(dup);
	assert_int_equal(base, wbase);
	assert_int_equal(produce_seq(f, 10, 3, 1, 0, &base, &dup), MQ_REP_OK);
	assert_false(dup);
	assert_int_equal(fetch(f, "t", 0, 0, 0, NULL, NULL, &code), END + 7);
}

/* The same for a batch whose records carry the given ids. */
static uint32_t produce_ids(fix_t *f, uint64_t pid, uint32_t seq, const char *const *ids, int n, int oldest,
			    uint64_t *base, int *dup)
{
	mq_batch_builder_t b;
	batchbuf.len = 0;
	mq_batch_begin(&b, &batchbuf);
	b.hdr.producer_id = pid;
	b.hdr.base_seq = seq;
	for (int i = 0; i < n; i++)
		mq_batch_add(&b, mq_now_ms(), NULL, 0, ids[i], strlen(ids[i]), ids[i], strlen(ids[i]), NULL, 0);
	size_t len = mq_batch_finish(&b);
	return produce_oldest(f, batchbuf.p, len, oldest, base, dup);
}

/* A batch of which the dedup window dropped records is stored shorter
 * than it was sent; after a restart its retry is still a duplicate, and
 * the producer's next batch is taken once it says it is its oldest. */
static void test_produce_ids_filtered_restart(void **state)
{
	fix_t *f = *state;
	start(f, 1, 0);
	meta(f, "t");
	uint64_t base, first;
	int dup, code;
	const char *a[] = {"x1", "x2"}, *bt[] = {"x1", "y1", "y2"}, *next[] = {"z1"};
	assert_int_equal(produce_ids(f, 1, 0, a, 2, 1, &base, &dup), MQ_REP_OK);
	assert_int_equal(produce_ids(f, 2, 0, bt, 3, 1, &first, &dup), MQ_REP_OK);
	assert_false(dup);
	assert_int_equal(u64arg(f, 3), 1); /* x1 dropped: y1 and y2 stored */
	assert_int_equal(fetch(f, "t", 0, 0, 0, NULL, NULL, &code), 4);
	stop(f);
	start(f, 1, 0);
	assert_int_equal(produce_ids(f, 2, 0, bt, 3, 1, &base, &dup), MQ_REP_OK);
	assert_true(dup);
	assert_int_equal(base, first);
	assert_int_equal(produce_ids(f, 2, 3, next, 1, 1, &base, &dup), MQ_REP_OK);
	assert_false(dup);
	assert_int_equal(fetch(f, "t", 0, 0, 0, NULL, NULL, &code), 5);
}

/* After a restart the producer table is rebuilt from the partition's
 * tail: with more producers there than the table holds, the ones kept
 * are the newest, so the retry of a batch whose acknowledgement the
 * crash lost is still answered as a duplicate. */
static void test_produce_many_producers_restart(void **state)
{
	fix_t *f = *state;
	start(f, 1, 0);
	meta(f, "t");
	uint64_t base, bases[100];
	int dup, code;
	for (uint32_t i = 0; i < 100; i++) /* one batch each, as mq-pub run after mq-pub */
		assert_int_equal(produce_seq(f, 1000 + i, 0, 3, 1, &bases[i], &dup), MQ_REP_OK);
	for (int round = 0; round < 2; round++) {
		for (uint32_t i = 90; i < 100; i++) {
			assert_int_equal(produce_seq(f, 1000 + i, 0, 3, 1, &base, &dup), MQ_REP_OK);
			assert_true(dup);
			assert_int_equal(base, bases[i]);
		}
		stop(f);
		start(f, 1, 0);
	}
	assert_int_equal(fetch(f, "t", 0, 0, 0, NULL, NULL, &code), 300);
}

/* A relay between one client and the broker that loses the nth PRODUCE
 * request it carries, as a connection does that breaks with a batch in
 * it while later ones go out on the next.  Stopped by shutting its
 * context down. */
typedef struct relay {
	void *ctx;
	char front[600], back[600];
	int drop;
} relay_t;

static int relay_recv(void *s, zmq_msg_t *v, int max)
{
	int n = 0, more = 1;
	while (more && n < max) {
		zmq_msg_init(&v[n]);
		if (zmq_msg_recv(&v[n], s, 0) < 0) {
			zmq_msg_close(&v[n]);
			break;
		}
		more = zmq_msg_more(&v[n++]);
	}
	return more ? -1 : n;
}

static void *relay_run(void *arg)
{
	relay_t *r = arg;
	void *fr = zmq_socket(r->ctx, ZMQ_ROUTER), *bk = zmq_socket(r->ctx, ZMQ_DEALER);
	int zero = 0, nproduce = 0;
	zmq_setsockopt(fr, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(bk, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_bind(fr, r->front);
	zmq_connect(bk, r->back);
	uint8_t peer[256];
	size_t npeer = 0;
	for (;;) {
		zmq_pollitem_t it[2] = {{fr, 0, ZMQ_POLLIN, 0}, {bk, 0, ZMQ_POLLIN, 0}};
		if (zmq_poll(it, 2, -1) < 0)
			break; /* context shut down */
		zmq_msg_t v[4];
		int n;
		if (it[0].revents & ZMQ_POLLIN) {
			if ((n = relay_recv(fr, v, 4)) < 0)
				break;
			npeer = zmq_msg_size(&v[0]) < sizeof(peer) ? zmq_msg_size(&v[0]) : 0;
			memcpy(peer, zmq_msg_data(&v[0]), npeer);
			mq_wire_msg_t m;
			int lose = n > 1 && mq_wire_parse(zmq_msg_data(&v[1]), zmq_msg_size(&v[1]), &m, NULL) == 0 &&
				   m.kind == MQ_REQ_PRODUCE && ++nproduce == r->drop;
			if (n > 1)
				mq_wire_msg_free(&m);
			for (int i = 1; i < n; i++)
				if (lose || zmq_msg_send(&v[i], bk, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
					zmq_msg_close(&v[i]);
			zmq_msg_close(&v[0]);
		}
		if (it[1].revents & ZMQ_POLLIN) {
			if ((n = relay_recv(bk, v, 4)) < 0)
				break;
			zmq_send(fr, peer, npeer, ZMQ_SNDMORE);
			for (int i = 0; i < n; i++)
				if (zmq_msg_send(&v[i], fr, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
					zmq_msg_close(&v[i]);
		}
	}
	zmq_close(fr);
	zmq_close(bk);
	return NULL;
}

/* The pipelined producer over a connection that lost its second batch:
 * the broker refuses the third as out of order, the producer sends the
 * second and everything after it again, and each batch ends stored once,
 * in order, with nothing answered as a duplicate. */
static void test_producer_resends_in_order(void **state)
{
	fix_t *f = *state;
	start(f, 1, 0);
	meta(f, "t");
	relay_t r = {.ctx = zmq_ctx_new(), .drop = 2};
	snprintf(r.front, sizeof(r.front), "ipc://%s/relay", f->dir);
	snprintf(r.back, sizeof(r.back), "%s", f->ep);
	pthread_t th;
	pthread_create(&th, NULL, relay_run, &r);
	/* A refused connection fails at once: let the relay bind first. */
	char sock[600];
	snprintf(sock, sizeof(sock), "%s/relay", f->dir);
	for (int i = 0; i < 5000 && access(sock, F_OK) != 0; i++)
		usleep(1000);
	mq_client_opts_t co = {.endpoint = r.front, .timeout_ms = 5000, .name = "test"};
	mq_client_t *c;
	mq_producer_t *p;
	mq_err_t err;
	assert_int_equal(mq_client_open(&co, &c, &err), 0);
	assert_int_equal(mq_producer_new(c, "t", 1, 32, &p, &err), 0);
	mq_buf_t buf = {0};
	for (int i = 0; i < 4; i++) {
		mq_batch_builder_t b;
		mq_producer_begin(p, 0, &b, &buf);
		for (int k = 0; k < 10; k++) {
			char v[16];
			int n = snprintf(v, sizeof(v), "%d", i * 10 + k);
			mq_batch_add(&b, mq_now_ms(), NULL, 0, v, (size_t)n, NULL, 0, NULL, 0);
		}
		assert_int_equal(mq_producer_send(p, &b, 0, &err), 0);
	}
	assert_int_equal(mq_producer_flush(p, &err), 0);
	mq_producer_stats_t st;
	mq_producer_stats(p, &st);
	assert_int_equal(st.acked, 40);
	assert_int_equal(st.duplicates, 0);
	assert_int_equal(st.failed, 0);
	assert_null(mq_producer_take_error(p));
	mq_producer_free(p);
	mq_client_close(c);
	mq_buf_free(&buf);
	zmq_ctx_shutdown(r.ctx);
	pthread_join(th, NULL);
	zmq_ctx_term(r.ctx);
	int code;
	assert_int_equal(fetch(f, "t", 0, 0, 0, NULL, NULL, &code), 40);
	const uint8_t *d = zmq_msg_data(&f->frames[1]);
	size_t nbytes = zmq_msg_size(&f->frames[1]);
	int want = 0;
	for (size_t pos = 0; pos < nbytes;) {
		mq_batch_iter_t it;
		mq_record_t rec;
		assert_int_equal(mq_batch_iter_init(&it, d + pos, nbytes - pos, &err), 0);
		while (mq_batch_iter_next(&it, &rec) > 0) {
			char v[16];
			snprintf(v, sizeof(v), "%d", want++);
			assert_int_equal(rec.value_len, strlen(v));
			assert_memory_equal(rec.value, v, rec.value_len);
		}
		pos += it.hdr.length;
	}
	assert_int_equal(want, 40);
}

/* A lite client (one-shot mq-pub): control calls and a producer over
 * its own ZMTP connection, through a broker restart, nothing lost and
 * nothing twice; fetching is refused. */
static void lite_send(mq_producer_t *p, mq_buf_t *buf, int from, int n)
{
	mq_batch_builder_t b;
	mq_err_t err;
	mq_producer_begin(p, 0, &b, buf);
	for (int k = from; k < from + n; k++) {
		char v[16];
		int len = snprintf(v, sizeof(v), "%d", k);
		mq_batch_add(&b, mq_now_ms(), NULL, 0, v, (size_t)len, NULL, 0, NULL, 0);
	}
	assert_int_equal(mq_producer_send(p, &b, 0, &err), 0);
	assert_int_equal(mq_producer_flush(p, &err), 0);
}

static void test_lite_client(void **state)
{
	fix_t *f = *state;
	start(f, 2, 0);
	mq_client_opts_t co = {.endpoint = f->ep, .timeout_ms = 10000, .name = "test", .lite = 1};
	mq_client_t *c;
	mq_producer_t *p;
	mq_err_t err;
	mq_hello_t h;
	uint32_t parts = 0;
	assert_int_equal(mq_client_open(&co, &c, &err), 0);
	assert_int_equal(mq_client_hello(c, &h, &err), 0);
	assert_int_equal(h.default_partitions, 2);
	assert_int_equal(mq_client_meta(c, "lite", 1, &parts, &err), 0);
	assert_int_equal(parts, 2);
	assert_int_equal(mq_producer_new(c, "lite", parts, 32, &p, &err), 0);
	mq_buf_t buf = {0};
	lite_send(p, &buf, 0, 10);
	/* The broker goes away and comes back: the next batch is sent on a
	 * new connection, within the timeout. */
	stop(f);
	start(f, 2, 0);
	lite_send(p, &buf, 10, 5);
	/* One lite producer waits in mq_producers_poll too (mq-pub's input
	 * loop), and a watched pipe ends a wait that has no other end. */
	mq_batch_builder_t b;
	mq_producer_begin(p, 0, &b, &buf);
	mq_batch_add(&b, mq_now_ms(), NULL, 0, "15", 2, NULL, 0, NULL, 0);
	assert_int_equal(mq_producer_send(p, &b, 0, &err), 0);
	for (int i = 0; i < 50 && mq_producer_inflight(p); i++) {
		assert_int_equal(mq_producers_poll(&p, 1, -1, -1, 0, &err), 0);
		assert_int_equal(mq_client_watch_hit(c), 0); /* a reply ended it */
	}
	assert_int_equal(mq_producer_inflight(p), 0);
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	/* Nothing in the pipe: the wait runs out, not ended by it. */
	assert_int_equal(mq_producers_poll(&p, 1, 30, pfd[0], POLLIN, &err), 0);
	assert_int_equal(mq_client_watch_hit(c), 0);
	assert_int_equal(write(pfd[1], "x", 1), 1);
	assert_int_equal(mq_producers_poll(&p, 1, -1, pfd[0], POLLIN, &err), 0);
	assert_int_equal(mq_client_watch_hit(c), 1); /* the caller need not ask the pipe */
	/* No producer at all (mq-pub with envelopes before the first one):
	 * a wait for the descriptor alone, touching no producer. */
	assert_int_equal(mq_producers_poll(NULL, 0, 50, pfd[0], POLLIN, &err), 0);
	close(pfd[0]);
	close(pfd[1]);
	mq_producer_stats_t st;
	mq_producer_stats(p, &st);
	assert_int_equal(st.acked, 16);
	assert_int_equal(st.duplicates, 0);
	assert_null(mq_producer_take_error(p));
	/* A second lite client fetches: what is there at once; then a fetch
	 * parked until the first publishes, its reply coming while a control
	 * call waits on the same connection (kept for the fetch, not lost). */
	mq_client_t *rc;
	assert_int_equal(mq_client_open(&co, &rc, &err), 0);
	const char *topics[] = {"lite"};
	mq_fetch_pos_t at = {0, 0, 0};
	mq_fetch_reply_t r = {0};
	assert_int_equal(mq_client_fetch_send(rc, topics, 1, &at, 1, 1 << 20, 10000, NULL, NULL, NULL, &err), 0);
	assert_int_equal(mq_client_fetch_recv(rc, &r, 5000, &err), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.e[0].next, 16);
	assert_int_equal(mq_fetch_entry_check(&r.e[0], "lite", &err), 0);
	at.offset = 16;
	assert_int_equal(mq_client_fetch_send(rc, topics, 1, &at, 1, 1 << 20, 10000, NULL, NULL, NULL, &err), 0);
	assert_int_equal(mq_client_fetch_recv(rc, &r, 200, &err), -MQ_EAGAIN); /* parked */
	mq_producer_begin(p, 0, &b, &buf);
	mq_batch_add(&b, mq_now_ms(), NULL, 0, "16", 2, NULL, 0, NULL, 0);
	assert_int_equal(mq_producer_send(p, &b, 0, &err), 0);
	assert_int_equal(mq_producer_flush(p, &err), 0);
	assert_int_equal(mq_client_hello(rc, &h, &err), 0);
	int64_t t0 = mq_mono_ms();
	assert_int_equal(mq_client_fetch_recv(rc, &r, 5000, &err), 0);
	assert_true(mq_mono_ms() - t0 < 2000);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.e[0].next, 17);
	assert_int_equal(mq_fetch_entry_check(&r.e[0], "lite", &err), 0);
	mq_fetch_reply_free(&r);
	mq_client_close(rc);
	mq_producer_free(p);
	mq_client_close(c);
	mq_buf_free(&buf);
	int code;
	assert_int_equal(fetch(f, "lite", 0, 0, 0, NULL, NULL, &code), 17);
}

static int64_t stat_of(mq_client_t *c, const char *name)
{
	mq_stat_t *st;
	uint32_t n;
	mq_err_t err;
	int64_t v = -1;
	assert_int_equal(mq_client_stats(c, &st, &n, &err), 0);
	for (uint32_t i = 0; i < n; i++)
		if (!strcmp(st[i].name, name))
			v = st[i].value;
	free(st);
	return v;
}

/* A client's new FETCH takes the place of its parked one: the broker
 * keeps one per connection, and answers the new one. */
static void test_fetch_replaces_parked(void **state)
{
	fix_t *f = *state;
	start(f, 2, 0);
	meta(f, "t");
	mq_client_opts_t co = {.endpoint = f->ep, .timeout_ms = 5000, .name = "test"};
	mq_client_t *c, *admin;
	mq_err_t err;
	assert_int_equal(mq_client_open(&co, &c, &err), 0);
	assert_int_equal(mq_client_open(&co, &admin, &err), 0);
	const char *topics[] = {"t"};
	mq_fetch_pos_t p1 = {0, 1, 0}, p0 = {0, 0, 0};
	mq_fetch_reply_t r = {0};
	assert_int_equal(mq_client_fetch_send(c, topics, 1, &p1, 1, 1 << 20, 20000, NULL, NULL, NULL, &err), 0);
	assert_int_equal(mq_client_fetch_recv(c, &r, 300, &err), -MQ_EAGAIN); /* sent once connected */
	assert_int_equal(stat_of(admin, "fetches_parked"), 1);
	assert_int_equal(mq_client_fetch_send(c, topics, 1, &p0, 1, 1 << 20, 20000, NULL, NULL, NULL, &err), 0);
	assert_int_equal(mq_client_fetch_recv(c, &r, 300, &err), -MQ_EAGAIN);
	assert_int_equal(stat_of(admin, "fetches_parked"), 1);
	/* Data for partition 0, which only the new fetch asks for. */
	size_t len;
	uint64_t base;
	int dup;
	const uint8_t *bt = make_batch(0, 0, 3, "x", &len);
	assert_int_equal(produce(f, "t", 0, bt, len, &base, &dup), MQ_REP_OK);
	int64_t t0 = mq_mono_ms();
	assert_int_equal(mq_client_fetch_recv(c, &r, 5000, &err), 0);
	assert_true(mq_mono_ms() - t0 < 3000);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.e[0].partition, 0);
	assert_int_equal(stat_of(admin, "fetches_parked"), 0);
	mq_fetch_reply_free(&r);
	mq_client_close(c);
	mq_client_close(admin);
}

/* A stop that comes while the broker sleeps (here: a fetch parked for
 * 20 s, the flag set with no signal to cut the wait) ends the sleep at
 * once through the wake descriptor, as mq-serve's signal pipe does. */
static void test_stop_wakes_broker(void **state)
{
	fix_t *f = *state;
	start(f, 1, 0);
	meta(f, "t");
	msgpack_packer pk;
	req(f, &pk, MQ_REQ_FETCH, 5);
	msgpack_pack_array(&pk, 1);
	mq_wire_pack_str(&pk, "t");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint32(&pk, 0);
	msgpack_pack_uint32(&pk, 0);
	msgpack_pack_uint64(&pk, 0);
	msgpack_pack_uint32(&pk, 1 << 20);
	msgpack_pack_uint32(&pk, 20000);
	msgpack_pack_nil(&pk);
	assert_true(zmq_send(f->s, f->buf.p, f->buf.len, 0) >= 0);
	usleep(1500000); /* parked, the broker asleep (its first retention look, at 1 s, is past) */
	int64_t t0 = mq_mono_ms();
	stop(f);
	assert_true(mq_mono_ms() - t0 < 3000);
}

/* One wait for several producers (mq-pub writing to many topics): it
 * returns on whichever answers, so a handful of calls takes every
 * acknowledgement; with nothing in flight it returns at once, or when
 * the watched descriptor is ready. */
static void test_producers_poll(void **state)
{
	fix_t *f = *state;
	start(f, 1, 0);
	mq_client_opts_t co = {.endpoint = f->ep, .timeout_ms = 5000, .name = "test"};
	mq_client_t *c[3];
	mq_producer_t *p[3];
	mq_err_t err;
	mq_buf_t buf = {0};
	for (int i = 0; i < 3; i++) {
		char topic[16];
		snprintf(topic, sizeof topic, "t%d", i);
		meta(f, topic);
		assert_int_equal(mq_client_open(&co, &c[i], &err), 0);
		assert_int_equal(mq_producer_new(c[i], topic, 1, 32, &p[i], &err), 0);
	}
	/* Nothing in flight, nothing watched: no wait at all. */
	assert_int_equal(mq_producers_poll(p, 3, -1, -1, 0, &err), 0);
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 2; j++) {
			mq_batch_builder_t b;
			mq_producer_begin(p[i], 0, &b, &buf);
			mq_batch_add(&b, mq_now_ms(), NULL, 0, "v", 1, NULL, 0, NULL, 0);
			assert_int_equal(mq_producer_send(p[i], &b, 0, &err), 0);
		}
	int calls = 0;
	while (mq_producer_inflight(p[0]) + mq_producer_inflight(p[1]) + mq_producer_inflight(p[2])) {
		assert_int_equal(mq_producers_poll(p, 3, -1, -1, 0, &err), 0);
		assert_int_equal(mq_client_watch_hit(c[0]), 0);
		assert_true(++calls <= 50);
	}
	for (int i = 0; i < 3; i++) {
		mq_producer_stats_t st;
		mq_producer_stats(p[i], &st);
		assert_int_equal(st.acked, 2);
		assert_null(mq_producer_take_error(p[i]));
	}
	/* The watched descriptor ends a wait that has no other end. */
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(mq_producers_poll(p, 3, 30, pfd[0], POLLIN, &err), 0);
	assert_int_equal(mq_client_watch_hit(c[0]), 0);
	assert_int_equal(write(pfd[1], "x", 1), 1);
	assert_int_equal(mq_producers_poll(p, 3, -1, pfd[0], POLLIN, &err), 0);
	assert_int_equal(mq_client_watch_hit(c[0]), 1);
	close(pfd[0]);
	close(pfd[1]);
	assert_int_equal(mq_producers_poll(p, MQ_PRODUCERS_POLL_MAX + 1, 0, -1, 0, &err), -MQ_EINVAL);
	for (int i = 0; i < 3; i++) {
		mq_producer_free(p[i]);
		mq_client_close(c[i]);
	}
	mq_buf_free(&buf);
}

/* The topic-list epoch: TOPICS tells it; it moves when a topic is made
 * (not when one is only written to); a FETCH carrying the current one
 * waits, with no partition at all, and is answered as soon as a topic
 * appears; one carrying an old epoch is answered at once. */
static void test_topics_epoch(void **state)
{
	fix_t *f = *state;
	start(f, 1, 0);
	meta(f, "a");
	mq_client_opts_t co = {.endpoint = f->ep, .timeout_ms = 5000, .name = "test"};
	mq_client_t *c;
	mq_err_t err;
	assert_int_equal(mq_client_open(&co, &c, &err), 0);
	mq_topic_list_t l;
	assert_int_equal(mq_client_topics(c, &l, &err), 0);
	assert_true(l.has_epoch);
	uint64_t e1 = l.epoch;
	mq_topic_list_free(&l);
	size_t len;
	uint64_t base;
	int dup;
	const uint8_t *bt = make_batch(0, 0, 3, "x", &len);
	assert_int_equal(produce(f, "a", 0, bt, len, &base, &dup), MQ_REP_OK);
	assert_int_equal(mq_client_topics(c, &l, &err), 0);
	assert_int_equal(l.epoch, e1);
	mq_topic_list_free(&l);

	/* A wait for the list to change: nothing comes within 300 ms ... */
	assert_int_equal(mq_client_fetch_send(c, NULL, 0, NULL, 0, 1 << 20, 30000, NULL, NULL, &e1, &err), 0);
	mq_fetch_reply_t r = {0};
	assert_int_equal(mq_client_fetch_recv(c, &r, 300, &err), -MQ_EAGAIN);
	/* ... and a new topic answers it at once, long before its 30 s. */
	meta(f, "b");
	assert_int_equal(mq_client_fetch_recv(c, &r, 10000, &err), 0);
	assert_int_equal(r.n, 0);
	assert_true(r.has_epoch);
	assert_true(r.epoch != e1);
	uint64_t e2 = r.epoch;
	assert_int_equal(mq_client_topics(c, &l, &err), 0);
	assert_int_equal(l.epoch, e2);
	assert_int_equal(l.n, 2);
	mq_topic_list_free(&l);

	/* An old epoch with a partition at its end: answered at once. */
	const char *topics[] = {"a"};
	mq_fetch_pos_t pos = {0, 0, 3};
	assert_int_equal(mq_client_fetch_send(c, topics, 1, &pos, 1, 1 << 20, 30000, NULL, NULL, &e1, &err), 0);
	assert_int_equal(mq_client_fetch_recv(c, &r, 10000, &err), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.e[0].nbytes, 0);
	assert_int_equal(r.epoch, e2);
	/* Without topics a fetch must carry an epoch to wait for. */
	assert_int_equal(mq_client_fetch_send(c, NULL, 0, NULL, 0, 1 << 20, 0, NULL, NULL, NULL, &err), -MQ_EINVAL);
	mq_fetch_reply_free(&r);
	mq_client_close(c);
}

static void test_bad_requests(void **state)
{
	fix_t *f = *state;
	start(f, 2, 100);
	msgpack_packer pk;
	req(f, &pk, 99, 0);
	assert_int_equal(call(f, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_EPROTO, "unknown request kind 99");
	req(f, &pk, MQ_REQ_META, 2);
	mq_wire_pack_str(&pk, "a/b");
	msgpack_pack_true(&pk);
	assert_int_equal(call(f, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_EINVAL, "invalid name");
	req(f, &pk, MQ_REQ_META, 2);
	mq_wire_pack_str(&pk, "__internal");
	msgpack_pack_true(&pk);
	assert_int_equal(call(f, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_EINVAL, "reserved");
	req(f, &pk, MQ_REQ_META, 2);
	mq_wire_pack_str(&pk, "missing");
	msgpack_pack_false(&pk);
	assert_int_equal(call(f, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_ENOENT, "does not exist");
	meta(f, "t");
	size_t len;
	uint64_t base;
	int dup;
	const uint8_t *bt = make_batch(0, 0, 1, "x", &len);
	assert_int_equal(produce(f, "t", 5, bt, len, &base, &dup), MQ_REP_ERR);
	expect_err(f, MQ_ENOENT, "partition 5 does not exist");
	/* a record over --max-message-bytes */
	char big[200];
	memset(big, 'z', sizeof(big));
	mq_batch_builder_t b;
	batchbuf.len = 0;
	mq_batch_begin(&b, &batchbuf);
	mq_batch_add(&b, 1, NULL, 0, big, sizeof(big), NULL, 0, NULL, 0);
	len = mq_batch_finish(&b);
	assert_int_equal(produce(f, "t", 0, batchbuf.p, len, &base, &dup), MQ_REP_ERR);
	expect_err(f, MQ_ETOOBIG, "over the limit");
	/* a corrupt batch */
	bt = make_batch(0, 0, 3, "x", &len);
	batchbuf.p[len - 1] ^= 1;
	assert_int_equal(produce(f, "t", 0, batchbuf.p, len, &base, &dup), MQ_REP_ERR);
	expect_err(f, MQ_ECORRUPT, "CRC");
	/* garbage in the payload */
	req(f, &pk, MQ_REQ_PRODUCE, 2);
	mq_wire_pack_str(&pk, "t");
	msgpack_pack_uint32(&pk, 0);
	assert_int_equal(call(f, "junk", 4), MQ_REP_ERR);
	/* wrong argument types */
	req(f, &pk, MQ_REQ_FETCH, 1);
	msgpack_pack_uint32(&pk, 5);
	assert_int_equal(call(f, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_EPROTO, "topics");
	/* a header that is not msgpack is dropped; the broker still answers after */
	assert_true(zmq_send(f->s, "\xc1\xc1", 2, 0) >= 0);
	assert_int_equal(meta(f, "t"), 2);
	int code;
	assert_int_equal(fetch(f, "t", 0, 0, 0, NULL, NULL, &code), 0);
}

/* Frames, ids and numbers at their limits: extra payload frames are
 * refused (not one silently chosen), id 0 gets no reply (wire.h), and a
 * partition or partition count is reported as it was sent, not clamped. */
static void test_limits(void **state)
{
	fix_t *f = *state;
	start(f, 1, 0);
	meta(f, "t");
	msgpack_packer pk;
	size_t len;
	uint64_t base;
	int dup, code;
	/* a PRODUCE with two batch frames stores neither */
	const uint8_t *bt = make_batch(0, 0, 1, "first", &len);
	uint8_t first[256];
	assert_true(len <= sizeof(first));
	memcpy(first, bt, len);
	size_t flen = len;
	bt = make_batch(0, 0, 1, "second", &len);
	req(f, &pk, MQ_REQ_PRODUCE, 2);
	mq_wire_pack_str(&pk, "t");
	msgpack_pack_uint32(&pk, 0);
	assert_true(zmq_send(f->s, f->buf.p, f->buf.len, ZMQ_SNDMORE) >= 0);
	assert_true(zmq_send(f->s, first, flen, ZMQ_SNDMORE) >= 0);
	assert_int_equal(call(f, bt, len), MQ_REP_ERR);
	expect_err(f, MQ_EPROTO, "at most one payload frame");
	assert_int_equal(fetch(f, "t", 0, 0, 0, NULL, NULL, &code), 0);
	assert_int_equal(code, 0);
	/* id 0: dropped, no reply; the next request is answered as usual */
	f->buf.len = 0;
	mq_wire_packer(&pk, &f->buf);
	mq_wire_begin(&pk, MQ_REQ_HELLO, 0, 2);
	mq_wire_pack_str(&pk, "test");
	msgpack_pack_uint32(&pk, MQ_PROTOCOL_VERSION);
	assert_true(zmq_send(f->s, f->buf.p, f->buf.len, 0) >= 0);
	zmq_pollitem_t it = {f->s, 0, ZMQ_POLLIN, 0};
	assert_int_equal(zmq_poll(&it, 1, 300), 0);
	assert_int_equal(meta(f, "t"), 1);
	/* a partition above 2^32 is named as sent */
	req(f, &pk, MQ_REQ_FETCH, 6);
	msgpack_pack_array(&pk, 1);
	mq_wire_pack_str(&pk, "t");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint32(&pk, 0);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	msgpack_pack_uint64(&pk, 0);
	msgpack_pack_uint64(&pk, 1 << 20);
	msgpack_pack_uint64(&pk, 0);
	msgpack_pack_nil(&pk);
	msgpack_pack_nil(&pk);
	assert_int_equal(call(f, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_ENOENT, "partition 18446744073709551615 does not exist");
	req(f, &pk, MQ_REQ_COMMIT, 4);
	mq_wire_pack_str(&pk, "g");
	mq_wire_pack_str(&pk, "m");
	mq_wire_pack_str(&pk, "t");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint64(&pk, 4294967296ull);
	msgpack_pack_uint64(&pk, 0);
	assert_int_equal(call(f, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_ENOENT, "partition 4294967296 does not exist");
	/* partition counts: refused with the number asked for */
	req(f, &pk, MQ_REQ_TOPIC_CREATE, 4);
	mq_wire_pack_str(&pk, "big");
	msgpack_pack_uint64(&pk, 4294967296ull);
	msgpack_pack_nil(&pk);
	msgpack_pack_nil(&pk);
	assert_int_equal(call(f, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_EINVAL, "got 4294967296");
	req(f, &pk, MQ_REQ_TOPIC_CREATE, 4);
	mq_wire_pack_str(&pk, "big");
	msgpack_pack_uint64(&pk, MQ_PARTITIONS_MAX + 1);
	msgpack_pack_nil(&pk);
	msgpack_pack_nil(&pk);
	assert_int_equal(call(f, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_EINVAL, "got 10001");
	req(f, &pk, MQ_REQ_TOPIC_PARTITIONS, 2);
	mq_wire_pack_str(&pk, "t");
	msgpack_pack_uint64(&pk, 4294967296ull);
	assert_int_equal(call(f, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_EINVAL, "got 4294967296");
	(void)base;
	(void)dup;
}

typedef struct delayed {
	char ep[600];
	void *ctx;
} delayed_t;

static void *late_producer(void *arg)
{
	delayed_t *d = arg;
	usleep(200 * 1000);
	void *s = zmq_socket(d->ctx, ZMQ_DEALER);
	int linger = 1000;
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_connect(s, d->ep);
	mq_buf_t hb = {0}, bb = {0};
	msgpack_packer pk;
	mq_wire_packer(&pk, &hb);
	mq_wire_begin(&pk, MQ_REQ_PRODUCE, 1, 2);
	mq_wire_pack_str(&pk, "t");
	msgpack_pack_uint32(&pk, 0);
	mq_batch_builder_t b;
	mq_batch_begin(&b, &bb);
	mq_batch_add(&b, 1, NULL, 0, "late", 4, NULL, 0, NULL, 0);
	size_t len = mq_batch_finish(&b);
	zmq_send(s, hb.p, hb.len, ZMQ_SNDMORE);
	zmq_send(s, bb.p, len, 0);
	char tmp[256];
	zmq_recv(s, tmp, sizeof(tmp), 0);
	zmq_close(s);
	mq_buf_free(&hb);
	mq_buf_free(&bb);
	return NULL;
}

static void test_long_poll(void **state)
{
	fix_t *f = *state;
	start(f, 1, 0);
	meta(f, "t");
	delayed_t d;
	snprintf(d.ep, sizeof(d.ep), "%s", f->ep);
	d.ctx = f->ctx;
	pthread_t th;
	pthread_create(&th, NULL, late_producer, &d);
	int64_t t0 = mq_mono_ms();
	int code;
	assert_int_equal(fetch(f, "t", 0, 0, 5000, NULL, NULL, &code), 1);
	int64_t took = mq_mono_ms() - t0;
	assert_true(took >= 150 && took < 3000); /* woken by the append, not by the timeout */
	pthread_join(th, NULL);
	t0 = mq_mono_ms();
	assert_int_equal(fetch(f, "t", 0, 1, 300, NULL, NULL, &code), 0);
	assert_true(mq_mono_ms() - t0 >= 250); /* nothing new: waits out max_wait */
}

/* JOIN; returns the number of partitions assigned; member id to out. */
static uint32_t join(fix_t *f, const char *group, const char *topic, char *out, uint64_t *gen)
{
	msgpack_packer pk;
	req(f, &pk, MQ_REQ_JOIN, 5);
	mq_wire_pack_str(&pk, group);
	msgpack_pack_array(&pk, 1);
	mq_wire_pack_str(&pk, topic);
	mq_wire_pack_str(&pk, "");
	msgpack_pack_uint32(&pk, 300);
	mq_wire_pack_str(&pk, "test");
	assert_int_equal(call(f, NULL, 0), MQ_REP_OK);
	const char *s;
	size_t n;
	mq_err_t err;
	assert_int_equal(mq_wire_strv(mq_wire_arg(&f->m, 0), &s, &n, "member", &err), 0);
	snprintf(out, MQ_MEMBER_MAX + 1, "%.*s", (int)n, s);
	*gen = u64arg(f, 1);
	return mq_wire_arg(&f->m, 2)->via.array.size;
}

static uint32_t heartbeat(fix_t *f, const char *group, const char *member, uint64_t acked, uint64_t *gen)
{
	msgpack_packer pk;
	req(f, &pk, MQ_REQ_HEARTBEAT, 3);
	mq_wire_pack_str(&pk, group);
	mq_wire_pack_str(&pk, member);
	msgpack_pack_uint64(&pk, acked);
	if (call(f, NULL, 0) != MQ_REP_OK)
		return UINT32_MAX;
	*gen = u64arg(f, 0);
	return mq_wire_arg(&f->m, 1)->via.array.size;
}

static void commit(fix_t *f, const char *group, const char *member, uint32_t p, uint64_t off, uint32_t want)
{
	msgpack_packer pk;
	req(f, &pk, MQ_REQ_COMMIT, 4);
	mq_wire_pack_str(&pk, group);
	mq_wire_pack_str(&pk, member);
	mq_wire_pack_str(&pk, "t");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint32(&pk, p);
	msgpack_pack_uint64(&pk, off);
	assert_int_equal(call(f, NULL, 0), want);
}

static void test_groups(void **state)
{
	fix_t *f = *state;
	start(f, 4, 0);
	meta(f, "t");
	char a[MQ_MEMBER_MAX + 1], b[MQ_MEMBER_MAX + 1];
	uint64_t gen, gb;
	/* 50 records in every partition */
	size_t len;
	uint64_t base;
	int dup;
	for (uint32_t p = 0; p < 4; p++) {
		const uint8_t *bt = make_batch(0, 0, 50, "r", &len);
		assert_int_equal(produce(f, "t", p, bt, len, &base, &dup), MQ_REP_OK);
	}
	assert_int_equal(join(f, "g", "t", a, &gen), 4);
	commit(f, "g", a, 1, 51, MQ_REP_ERR); /* beyond the end */
	expect_err(f, MQ_ERANGE, "ends at 50");
	commit(f, "g", a, 1, 42, MQ_REP_OK);
	/* a second member: A keeps what it owns until it acks the new generation */
	assert_int_equal(join(f, "g", "t", b, &gb), 0);
	assert_true(gb > gen);
	uint64_t g2;
	uint32_t na = heartbeat(f, "g", a, gen, &g2);
	assert_int_equal(g2, gb);
	assert_int_equal(na, 2); /* its target share; the other two are being given up */
	int code;
	/* B may not read a partition A still owns */
	uint64_t tmp;
	assert_int_equal(heartbeat(f, "g", b, gb, &tmp), 0);
	/* A acknowledges: B gets the other two */
	assert_int_equal(heartbeat(f, "g", a, g2, &g2), 2);
	assert_int_equal(heartbeat(f, "g", b, gb, &tmp), 2);
	/* each member is fenced off the other's partitions */
	const msgpack_object_array *as = &mq_wire_arg(&f->m, 1)->via.array;
	uint32_t bp = (uint32_t)as->ptr[0].via.array.ptr[1].via.u64;
	fetch(f, "t", bp, 0, 0, "g", a, &code);
	assert_int_equal(code, MQ_EBUSY);
	fetch(f, "t", bp, 0, 0, "g", b, &code);
	assert_int_equal(code, 0);
	commit(f, "g", a, bp, 1, MQ_REP_ERR);
	commit(f, "g", b, bp, 7, MQ_REP_OK);
	/* B stops heartbeating: after its session (300 ms) A owns everything */
	uint32_t n = 0;
	for (int i = 0; i < 20 && n != 4; i++) {
		usleep(50 * 1000);
		n = heartbeat(f, "g", a, g2, &g2); /* A keeps its session alive and acks each generation */
	}
	assert_int_equal(n, 4);
	assert_int_equal(heartbeat(f, "g", b, gb, &tmp), UINT32_MAX);
	expect_err(f, MQ_ENOENT, "join again");
	/* committed offsets survive a restart */
	stop(f);
	start(f, 4, 0);
	msgpack_packer pk;
	req(f, &pk, MQ_REQ_COMMITTED, 2);
	mq_wire_pack_str(&pk, "g");
	mq_wire_pack_str(&pk, "t");
	assert_int_equal(call(f, NULL, 0), MQ_REP_OK);
	const msgpack_object_array *c = &mq_wire_arg(&f->m, 0)->via.array;
	/* partition 1 got 42 from A; B's partition got 7 (the same one, possibly) */
	assert_int_equal(c->size, bp == 1 ? 1 : 2);
	uint64_t seen = 0;
	for (uint32_t i = 0; i < c->size; i++)
		seen += c->ptr[i].via.array.ptr[1].via.u64;
	assert_int_equal(seen, bp == 1 ? 7 : 42 + 7);
}

/* Administration through the client library: topics, offsets reset and
 * delete (tombstones replayed after a restart), lag history, stats. */
static mq_group_info_t *group_of(mq_client_t *c, const char *g, uint32_t *n, int expect)
{
	mq_group_info_t *gi = NULL;
	mq_err_t err;
	int rc = mq_client_groups(c, g, NULL, &gi, n, &err);
	assert_int_equal(rc, expect);
	return gi;
}

static void test_admin(void **state)
{
	fix_t *f = *state;
	f->lag_ms = 20;
	start(f, 1, 0);
	mq_client_opts_t co = {.endpoint = f->ep, .timeout_ms = 5000, .name = "test"};
	mq_client_t *c;
	mq_err_t err;
	assert_int_equal(mq_client_open(&co, &c, &err), 0);
	assert_int_equal(mq_client_topic_create(c, "t", 2, -1, -1, &err), 0);
	assert_int_equal(mq_client_topic_create(c, "t", 2, -1, -1, &err), -MQ_EEXIST);
	size_t len;
	uint64_t base;
	int dup;
	const uint8_t *bt = make_batch(0, 0, 10, "x", &len);
	assert_int_equal(produce(f, "t", 1, bt, len, &base, &dup), MQ_REP_OK);
	mq_topic_info_t ti;
	assert_int_equal(mq_client_topic_describe(c, "t", &ti, &err), 0);
	assert_int_equal(ti.partitions, 2);
	assert_int_equal(ti.messages, 10);
	assert_int_equal(mq_client_topic_partitions(c, "t", 1, &err), -MQ_EINVAL);
	assert_int_equal(mq_client_topic_partitions(c, "t", 3, &err), 0);

	assert_int_equal(ti.default_retention_ms, 0); /* the broker keeps everything */
	assert_int_equal(ti.default_retention_bytes, 0);

	/* reset: a group that does not exist is refused, dry run or not, and
	 * stays unknown; with MQ_RESET_CREATE a dry run changes nothing, then
	 * it makes the group; -N and N */
	mq_reset_entry_t *re;
	uint32_t n;
	mq_offset_spec_t spec = {MQ_OFF_FROM_END, 4};
	group_of(c, "g", &n, -MQ_ENOENT);
	assert_int_equal(mq_client_group_reset(c, "g", "t", &spec, MQ_RESET_DRY_RUN, &re, &n, &err), -MQ_ENOENT);
	assert_non_null(strstr(err.msg, "no group 'g'"));
	assert_null(re);
	assert_int_equal(mq_client_group_reset(c, "g", "t", &spec, 0, &re, &n, &err), -MQ_ENOENT);
	group_of(c, "g", &n, -MQ_ENOENT);
	assert_int_equal(mq_client_group_reset(c, "g", "t", &spec, MQ_RESET_DRY_RUN | MQ_RESET_CREATE, &re, &n, &err),
			 0);
	assert_int_equal(n, 3);
	assert_int_equal(re[1].old, -1);
	assert_int_equal(re[1].new_offset, 6);
	free(re);
	group_of(c, "g", &n, -MQ_ENOENT);
	assert_int_equal(mq_client_group_reset(c, "g", "t", &spec, MQ_RESET_CREATE, &re, &n, &err), 0);
	free(re);
	spec = (mq_offset_spec_t){MQ_OFF_ABS, 99};
	assert_int_equal(mq_client_group_reset(c, "h", "t", &spec, MQ_RESET_CREATE, &re, &n, &err), 0);
	assert_int_equal(re[1].new_offset, 10); /* clamped to the end */
	free(re);
	/* h exists now: no flag needed */
	assert_int_equal(mq_client_group_reset(c, "h", "t", &spec, 0, &re, &n, &err), 0);
	free(re);

	/* history fills at --lag-interval */
	usleep(150 * 1000);
	mq_group_info_t *gi = group_of(c, "g", &n, 0);
	assert_int_equal(n, 1);
	assert_int_equal(gi[0].nrows, 3);
	assert_int_equal(gi[0].rows[1].committed, 6);
	assert_int_equal(gi[0].rows[1].end, 10);
	assert_true(gi[0].rows[1].nhist >= 2);
	assert_int_equal(gi[0].rows[1].hist[gi[0].rows[1].nhist - 1].committed, 6);
	assert_string_equal(gi[0].rows[1].owner, "");
	mq_group_info_free(gi, n);

	/* delete group g; delete the topic (drops h's offsets); both survive a restart */
	assert_int_equal(mq_client_group_delete(c, "g", &err), 0);
	assert_int_equal(mq_client_group_delete(c, "g", &err), -MQ_ENOENT);
	mq_stat_t *st;
	assert_int_equal(mq_client_stats(c, &st, &n, &err), 0);
	int found = 0;
	for (uint32_t i = 0; i < n; i++)
		found |= !strcmp(st[i].name, "topics") && st[i].value == 1;
	assert_true(found);
	free(st);
	mq_client_close(c);
	stop(f);
	start(f, 1, 0);
	assert_int_equal(mq_client_open(&co, &c, &err), 0);
	group_of(c, "g", &n, -MQ_ENOENT);
	gi = group_of(c, "h", &n, 0);
	assert_int_equal(gi[0].rows[1].committed, 10);
	assert_true(gi[0].rows[1].nhist >= 5); /* the history came back from DIR/state/lag-history */
	mq_group_info_free(gi, n);
	assert_int_equal(mq_client_topic_delete(c, "t", 0, &err), 0);
	assert_int_equal(mq_client_topic_describe(c, "t", &ti, &err), -MQ_ENOENT);
	mq_client_close(c);
	stop(f);
	start(f, 1, 0);
	assert_int_equal(mq_client_open(&co, &c, &err), 0);
	group_of(c, "h", &n, -MQ_ENOENT);
	mq_client_close(c);
}

/* The lag history cannot be saved (here: a directory stands where the
 * file goes): said once, not at every attempt, and not after it works
 * again. */
static void test_history_save_fails(void **state)
{
	fix_t *f = *state;
	char path[700];
	f->lag_ms = 10;
	start(f, 1, 0);
	assert_int_equal(reports(f), 0);
	snprintf(path, sizeof(path), "%s/state/lag-history", f->dir);
	unlink(path);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/state/lag-history/x", f->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	for (int i = 0; i < 100 && reports(f) == 0; i++)
		usleep(20 * 1000);
	assert_int_equal(reports(f), 1);
	assert_non_null(strstr(f->reported, "lag history"));
	assert_non_null(strstr(f->reported, "state/lag-history"));
	usleep(300 * 1000); /* several more attempts */
	assert_int_equal(reports(f), 1);
	assert_int_equal(rmdir(path), 0);
	snprintf(path, sizeof(path), "%s/state/lag-history", f->dir);
	assert_int_equal(rmdir(path), 0);
	usleep(300 * 1000);
	stop(f);
	assert_int_equal(reports(f), 1);
}


/* A transaction request with a txid and maybe a topic or a number. */
static uint32_t txn_req(fix_t *f, uint32_t kind, uint64_t txid, const char *topic, int64_t n, const void *pl,
			size_t plen)
{
	msgpack_packer pk;
	req(f, &pk, kind, (topic ? 2 : 1) + (n >= 0));
	msgpack_pack_uint64(&pk, txid);
	if (topic)
		mq_wire_pack_str(&pk, topic);
	if (n >= 0)
		msgpack_pack_int64(&pk, n);
	return call(f, pl, plen);
}

/* Transactions on the wire (wire.h TXN_*): a prepare in three requests
 * with its retries and refusals, invisible until decided; a checker's
 * long poll held until the transaction comes due, answered with its
 * messages; the checker's verdicts. */
static void test_txn_requests(void **state)
{
	fix_t *f = *state;
	f->txn_timeout_ms = 200;
	start(f, 2, 0);
	meta(f, "t");
	size_t len;
	const uint8_t *bt = make_batch(0, 0, 3, "x", &len);
	assert_int_equal(txn_req(f, MQ_REQ_TXN_BEGIN, 0, "t", -1, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_EINVAL, "transaction id 0");
	assert_int_equal(txn_req(f, MQ_REQ_TXN_BEGIN, 7, "nope", -1, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_ENOENT, "topic 'nope' does not exist");
	assert_int_equal(txn_req(f, MQ_REQ_TXN_BEGIN, 7, "t", -1, NULL, 0), MQ_REP_OK);
	assert_int_equal(txn_req(f, MQ_REQ_TXN_BEGIN, 7, "t", -1, NULL, 0), MQ_REP_OK);
	/* TXN_ADD [txid, index, partition] + batch */
	msgpack_packer pk;
	req(f, &pk, MQ_REQ_TXN_ADD, 3);
	msgpack_pack_uint64(&pk, 7);
	msgpack_pack_uint32(&pk, 0);
	msgpack_pack_uint32(&pk, 1);
	assert_int_equal(call(f, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_EPROTO, "without a batch frame");
	for (int i = 0; i < 3; i++) {
		req(f, &pk, MQ_REQ_TXN_ADD, 3);
		msgpack_pack_uint64(&pk, 7);
		msgpack_pack_uint32(&pk, i == 2 ? 2 : 0);
		msgpack_pack_uint32(&pk, 1);
		uint32_t k = call(f, bt, len);
		if (i < 2) {
			assert_int_equal(k, MQ_REP_OK);
			assert_int_equal(u64arg(f, 0), (uint64_t)i); /* the second is a duplicate */
		} else {
			assert_int_equal(k, MQ_REP_ERR);
			expect_err(f, MQ_ESEQ, "batch 2 came before batch 1");
		}
	}
	assert_int_equal(txn_req(f, MQ_REQ_TXN_COMMIT, 7, NULL, -1, NULL, 0), MQ_REP_ERR); /* topic: optional */
	expect_err(f, MQ_EINVAL, "is not prepared");
	assert_int_equal(txn_req(f, MQ_REQ_TXN_END, 7, NULL, 1, NULL, 0), MQ_REP_OK);
	assert_int_equal(u64arg(f, 0), 3);
	int code;
	assert_int_equal(fetch(f, "t", 1, 0, 0, NULL, NULL, &code), 0);
	/* A checker: nothing due at once; then held until it is. */
	req(f, &pk, MQ_REQ_TXN_CHECK, 2);
	mq_wire_pack_str(&pk, "t");
	msgpack_pack_uint32(&pk, 0);
	assert_int_equal(call(f, NULL, 0), MQ_REP_OK);
	assert_int_equal(mq_wire_arg(&f->m, 0)->type, MSGPACK_OBJECT_NIL);
	req(f, &pk, MQ_REQ_TXN_CHECK, 2);
	mq_wire_pack_str(&pk, "t");
	msgpack_pack_uint32(&pk, 4000);
	assert_int_equal(call(f, NULL, 0), MQ_REP_OK);
	assert_int_equal(u64arg(f, 0), 7);
	assert_int_equal(f->nframes, 2);
	assert_int_equal(zmq_msg_size(&f->frames[1]), len);
	assert_memory_equal(zmq_msg_data(&f->frames[1]), bt, 16); /* the batch as it was added */
	/* Verdicts: unknown changes nothing, commit decides. */
	assert_int_equal(txn_req(f, MQ_REQ_TXN_VERDICT, 7, "t", MQ_VERDICT_UNKNOWN, NULL, 0), MQ_REP_OK);
	assert_int_equal(u64arg(f, 0), MQ_TXN_PREPARED);
	assert_int_equal(fetch(f, "t", 1, 0, 0, NULL, NULL, &code), 0);
	assert_int_equal(txn_req(f, MQ_REQ_TXN_VERDICT, 7, "t", MQ_VERDICT_COMMIT, NULL, 0), MQ_REP_OK);
	assert_int_equal(fetch(f, "t", 1, 0, 0, NULL, NULL, &code), 3);
	assert_int_equal(txn_req(f, MQ_REQ_TXN_ROLLBACK, 7, "t", -1, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_EINVAL, "was committed by its checker's verdict");
	assert_int_equal(txn_req(f, MQ_REQ_TXN_COMMIT, 8, "t", -1, NULL, 0), MQ_REP_ERR);
	expect_err(f, MQ_ENOENT, "no transaction 0000000000000008");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hello_meta_produce_fetch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_fetch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_refuses_damaged_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idempotent_produce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_produce_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_produce_remembered_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_produce_ids_filtered_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_produce_many_producers_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_producer_resends_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_producers_poll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lite_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetch_replaces_parked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_wakes_broker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topics_epoch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_poll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_save_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_txn_requests, setup, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	mq_buf_free(&batchbuf);
	return rc;
}
