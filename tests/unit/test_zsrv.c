/*
 * test_zsrv.c -- lib/zsrv.c, mq-serve's own ZMTP listener, against the
 * clients that talk to it: mq's direct client (zmtp.c) and libzmq's
 * DEALER (heartbeats answered, so libzmq keeps the connection), and
 * against peers it must turn away: another socket type, a CurveZMQ
 * client, no ZeroMQ at all, a frame over the limit, a handshake never
 * finished.  Over socketpairs, driven by hand: input that comes a byte
 * at a time, a peer that closes after its last message, a peer that
 * stops reading (its replies dropped once its queue is full, never cut),
 * PING/PONG, and fairness between connections.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "zmtp.h"
#include "zsrv.h"

/* ---- driving a server by hand ---- */

/* One round: poll (at most ms), handle. */
static void pump(mq_zsrv_t *s, int ms)
{
	struct pollfd p[64];
	int n = mq_zsrv_poll(s, p, 64, mq_mono_ms());
	if (!mq_zsrv_ready(s))
		(void)poll(p, (nfds_t)n, ms);
	else
		(void)poll(p, (nfds_t)n, 0);
	mq_zsrv_handle(s, p, n);
}

/* Pump until a message comes (1, frames joined with '|' into out) or ms pass (0). */
static int take(mq_zsrv_t *s, uint64_t *peer, char *out, size_t size, int ms)
{
	int64_t until = mq_mono_ms() + ms;
	do {
		const mq_zmtp_frame_t *f;
		int n;
		if (mq_zsrv_recv(s, peer, &f, &n)) {
			size_t o = 0;
			for (int i = 0; i < n; i++) {
				if (i)
					out[o++] = '|';
				assert_true(o + f[i].len + 2 < size);
				memcpy(out + o, f[i].p, f[i].len);
				o += f[i].len;
			}
			out[o] = '\0';
			return 1;
		}
		pump(s, 10);
		mq_zsrv_flush(s);
	} while (mq_mono_ms() < until);
	return 0;
}

static mq_zsrv_opts_t opts(size_t max_frame, size_t max_queue)
{
	return (mq_zsrv_opts_t){.max_frame = max_frame, .max_queue = max_queue};
}

static int reply(mq_zsrv_t *s, uint64_t peer, const char *a, const char *b)
{
	mq_buf_t f[2] = {{0}, {0}};
	mq_buf_append(&f[0], a, strlen(a));
	if (b)
		mq_buf_append(&f[1], b, strlen(b));
	int rc = mq_zsrv_send(s, peer, f, b ? 2 : 1);
	assert_null(f[0].p);
	assert_null(f[1].p);
	return rc;
}

/* ---- a raw peer ---- */

static void put(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = {fd, POLLOUT, 0};
			poll(&pf, 1, 1000);
			continue;
		}
		assert_true(w > 0);
		b += w;
		n -= (size_t)w;
	}
}

static size_t frame(uint8_t *out, int flags, const void *body, size_t len)
{
	size_t h = mq_zmtp_frame_head(out, flags, len);
	memcpy(out + h, body, len);
	return h + len;
}

/* A ZMTP 3.1 NULL greeting and a READY of socket type (into out). */
static size_t hello(uint8_t *out, const char *type)
{
	uint8_t g[64] = {0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1, 'N', 'U', 'L', 'L'};
	memcpy(out, g, 64);
	uint8_t body[64];
	size_t tl = strlen(type), k = 0;
	body[k++] = 5;
	memcpy(body + k, "READY", 5), k += 5;
	body[k++] = 11;
	memcpy(body + k, "Socket-Type", 11), k += 11;
	body[k++] = 0, body[k++] = 0, body[k++] = 0, body[k++] = (uint8_t)tl;
	memcpy(body + k, type, tl), k += tl;
	return 64 + frame(out + 64, MQ_ZMTP_F_CMD, body, k);
}

/* Read what fd has within ms into buf (appending at *have): 0 data or
 * nothing, 1 the peer closed. */
static int drain(int fd, uint8_t *buf, size_t cap, size_t *have, int ms)
{
	int64_t until = mq_mono_ms() + ms;
	for (;;) {
		struct pollfd pf = {fd, POLLIN, 0};
		int64_t left = until - mq_mono_ms();
		if (left < 0 || poll(&pf, 1, (int)left) <= 0)
			return 0;
		ssize_t r = read(fd, buf + *have, cap - *have);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return 1;
		if (r < 0)
			return 0;
		*have += (size_t)r;
		if (*have == cap)
			return 0;
	}
}

/* Pump s until the peer at the raw end fd sees its connection closed
 * (what s sends meanwhile is read and dropped): 1, or 0 after 1 s. */
static int pump_until_closed(mq_zsrv_t *s, int fd)
{
	uint8_t out[4096];
	for (int i = 0; i < 50; i++) {
		size_t have = 0;
		pump(s, 10);
		if (drain(fd, out, sizeof out, &have, 10))
			return 1;
	}
	return 0;
}

/* A server without a listener, for adopt_pair. */
static mq_zsrv_t *new_srv(size_t max_frame, int handshake_ms)
{
	mq_zsrv_t *s;
	mq_err_t err;
	mq_zsrv_opts_t o = opts(max_frame, 1 << 20);
	o.handshake_ms = handshake_ms;
	assert_int_equal(mq_zsrv_new(&o, &s, &err), 0);
	return s;
}

/* A socketpair, one end served by s (handshake done by the other, raw end). */
static int adopt_pair(mq_zsrv_t *s, const char *type)
{
	int sv[2];
	mq_err_t err;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(mq_zsrv_adopt(s, sv[0], &err), 0);
	if (type) {
		uint8_t h[128];
		put(sv[1], h, hello(h, type));
	}
	return sv[1];
}

/* ---- tests ---- */

static void test_supports(void **state)
{
	(void)state;
	const char *yes[] = {"tcp://127.0.0.1:7733", "tcp://*:7733", "tcp://localhost:1", "tcp://[::1]:7733",
			     "tcp://0.0.0.0:0", "tcp://127.0.0.1:*", "tcp://[::]:65535"};
	const char *no[] = {"ipc:///tmp/x.sock", "tcp://eth0:7733", "tcp://example.com:7733", "tcp://127.0.0.1",
			    "tcp://127.0.0.1:70000", "tcp://127.0.0.1:7a", "tcp://[::1:7733", "inproc://x",
			    "tcp://10.0.0.1;127.0.0.1:7733", "tcp://:7733", "udp://127.0.0.1:7733"};
	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
		assert_true(mq_zsrv_supports(yes[i]));
	for (size_t i = 0; i < sizeof no / sizeof *no; i++)
		assert_false(mq_zsrv_supports(no[i]));
}

static void test_listen(void **state)
{
	(void)state;
	mq_zsrv_opts_t o = opts(4096, 1 << 20);
	mq_zsrv_t *s, *t;
	mq_err_t err;
	assert_int_equal(mq_zsrv_listen("tcp://127.0.0.1:0", &o, &s, &err), 0);
	const char *ep = mq_zsrv_endpoint(s);
	assert_int_equal(strncmp(ep, "tcp://127.0.0.1:", 16), 0);
	assert_true(atoi(ep + 16) > 0);
	/* the same address again: in use, said so */
	assert_int_equal(mq_zsrv_listen(ep, &o, &t, &err), -MQ_EBUSY);
	assert_non_null(strstr(err.msg, "cannot listen on tcp://127.0.0.1:"));
	assert_non_null(strstr(err.msg, "another mq-serve?"));
	mq_zsrv_close(s);
	assert_int_equal(mq_zsrv_listen("tcp://*:*", &o, &s, &err), 0);
	assert_int_equal(strncmp(mq_zsrv_endpoint(s), "tcp://0.0.0.0:", 14), 0);
	mq_zsrv_close(s);
	if (mq_zsrv_listen("tcp://[::1]:0", &o, &s, &err) == 0) { /* where IPv6 is there */
		assert_int_equal(strncmp(mq_zsrv_endpoint(s), "tcp://[::1]:", 12), 0);
		mq_zsrv_close(s);
		/* [::] takes IPv4 clients too, as libzmq's listener does */
		assert_int_equal(mq_zsrv_listen("tcp://[::]:0", &o, &s, &err), 0);
		char v4[64];
		snprintf(v4, sizeof v4, "tcp://127.0.0.1:%s", strrchr(mq_zsrv_endpoint(s), ':') + 1);
		char why[320];
		int fd = mq_zmtp_dial(v4, mq_mono_ms() + 2000, why, sizeof why);
		assert_true(fd >= 0);
		close(fd);
		mq_zsrv_close(s);
	}
	assert_int_equal(mq_zsrv_listen("ipc:///tmp/x", &o, &s, &err), -MQ_EINVAL);
}

/* A server in a thread: it echoes each message back, the frames turned
 * around, and notes the peers it heard from. */
typedef struct echo {
	mq_zsrv_t *s;
	pthread_t th;
	volatile int stop;
	pthread_mutex_t mu;
	uint64_t peers[16];
	int npeers, msgs;
} echo_t;

static void *echo_run(void *arg)
{
	echo_t *e = arg;
	while (!e->stop) {
		pump(e->s, 20);
		const mq_zmtp_frame_t *f;
		int n;
		uint64_t peer;
		while (mq_zsrv_recv(e->s, &peer, &f, &n)) {
			mq_buf_t out[MQ_ZSRV_MAX_FRAMES];
			memset(out, 0, sizeof out);
			for (int i = 0; i < n; i++)
				mq_buf_append(&out[i], f[n - 1 - i].p, f[n - 1 - i].len);
			mq_zsrv_send(e->s, peer, out, n);
			pthread_mutex_lock(&e->mu);
			int k = 0;
			while (k < e->npeers && e->peers[k] != peer)
				k++;
			if (k == e->npeers && k < 16)
				e->peers[e->npeers++] = peer;
			e->msgs++;
			pthread_mutex_unlock(&e->mu);
		}
		mq_zsrv_flush(e->s);
	}
	return NULL;
}

static void echo_start(echo_t *e, size_t max_frame)
{
	memset(e, 0, sizeof *e);
	mq_zsrv_opts_t o = opts(max_frame, 64 << 20);
	mq_err_t err;
	assert_int_equal(mq_zsrv_listen("tcp://127.0.0.1:0", &o, &e->s, &err), 0);
	pthread_mutex_init(&e->mu, NULL);
	assert_int_equal(pthread_create(&e->th, NULL, echo_run, e), 0);
}

static void echo_stop(echo_t *e)
{
	e->stop = 1;
	pthread_join(e->th, NULL);
	mq_zsrv_close(e->s);
	pthread_mutex_destroy(&e->mu);
}

static int echo_msgs(echo_t *e)
{
	pthread_mutex_lock(&e->mu);
	int n = e->msgs;
	pthread_mutex_unlock(&e->mu);
	return n;
}

/* mq's own client: short, long and very long frames, both ways. */
static void test_direct_client(void **state)
{
	(void)state;
	echo_t e;
	echo_start(&e, 8 << 20);
	mq_zmtp_t *z;
	mq_err_t err;
	assert_int_equal(mq_zmtp_connect(mq_zsrv_endpoint(e.s), mq_mono_ms() + 5000, 8 << 20, &z, &err), 0);
	size_t big = 5u << 20;
	char *payload = malloc(big);
	for (size_t i = 0; i < big; i++)
		payload[i] = (char)(i * 7 + 3);
	char mid[300];
	memset(mid, 'm', sizeof mid);
	mq_zmtp_frame_t out[3] = {{"hdr", 3}, {mid, sizeof mid}, {payload, big}};
	for (int round = 0; round < 3; round++) {
		assert_int_equal(mq_zmtp_send(z, out, 3, mq_mono_ms() + 5000, &err), 0);
		const mq_zmtp_frame_t *f = NULL;
		int n = 0, rc = 0;
		int64_t until = mq_mono_ms() + 5000;
		while ((rc = mq_zmtp_recv(z, &f, &n, &err)) == 0 && mq_mono_ms() < until) {
			struct pollfd pf = {mq_zmtp_fd(z), POLLIN, 0};
			poll(&pf, 1, 100);
		}
		assert_int_equal(rc, 1);
		assert_int_equal(n, 3);
		assert_int_equal(f[0].len, big);
		assert_memory_equal(f[0].p, payload, big);
		assert_int_equal(f[1].len, sizeof mid);
		assert_memory_equal(f[2].p, "hdr", 3);
	}
	assert_int_equal(e.npeers, 1);
	mq_zmtp_close(z);
	free(payload);
	echo_stop(&e);
}

/* libzmq's DEALER: it pings every 20 ms and drops a connection that
 * does not answer within 100 ms.  Messages 500 ms apart all come from
 * one connection: the pings were answered. */
static void test_libzmq_dealer(void **state)
{
	(void)state;
	echo_t e;
	echo_start(&e, 4096);
	void *ctx = zmq_ctx_new();
	void *d = zmq_socket(ctx, ZMQ_DEALER);
	zmq_setsockopt(d, ZMQ_LINGER, &(int){0}, sizeof(int));
	zmq_setsockopt(d, ZMQ_HEARTBEAT_IVL, &(int){20}, sizeof(int));
	zmq_setsockopt(d, ZMQ_HEARTBEAT_TIMEOUT, &(int){100}, sizeof(int));
	zmq_setsockopt(d, ZMQ_RCVTIMEO, &(int){5000}, sizeof(int));
	assert_int_equal(zmq_connect(d, mq_zsrv_endpoint(e.s)), 0);
	for (int i = 0; i < 3; i++) {
		if (i)
			usleep(500000);
		assert_int_equal(zmq_send(d, "a", 1, ZMQ_SNDMORE), 1);
		assert_int_equal(zmq_send(d, "bc", 2, 0), 2);
		char b[8];
		assert_int_equal(zmq_recv(d, b, sizeof b, 0), 2);
		assert_memory_equal(b, "bc", 2);
		int more;
		size_t ml = sizeof more;
		zmq_getsockopt(d, ZMQ_RCVMORE, &more, &ml);
		assert_true(more);
		assert_int_equal(zmq_recv(d, b, sizeof b, 0), 1);
		assert_memory_equal(b, "a", 1);
	}
	pthread_mutex_lock(&e.mu);
	assert_int_equal(e.msgs, 3);
	assert_int_equal(e.npeers, 1);
	pthread_mutex_unlock(&e.mu);
	zmq_close(d);
	zmq_ctx_term(ctx);
	echo_stop(&e);
}

/* A PUSH socket (not one a ROUTER talks to) and a CurveZMQ client never
 * get a message through. */
static void test_libzmq_refused(void **state)
{
	(void)state;
	echo_t e;
	echo_start(&e, 4096);
	void *ctx = zmq_ctx_new();
	void *p = zmq_socket(ctx, ZMQ_PUSH);
	zmq_setsockopt(p, ZMQ_LINGER, &(int){0}, sizeof(int));
	assert_int_equal(zmq_connect(p, mq_zsrv_endpoint(e.s)), 0);
	zmq_send(p, "x", 1, ZMQ_DONTWAIT);
	void *c = zmq_socket(ctx, ZMQ_DEALER);
	char pub[41], sec[41], spub[41], ssec[41];
	assert_int_equal(zmq_curve_keypair(pub, sec), 0);
	assert_int_equal(zmq_curve_keypair(spub, ssec), 0);
	zmq_setsockopt(c, ZMQ_LINGER, &(int){0}, sizeof(int));
	zmq_setsockopt(c, ZMQ_CURVE_SERVERKEY, spub, 40);
	zmq_setsockopt(c, ZMQ_CURVE_PUBLICKEY, pub, 40);
	zmq_setsockopt(c, ZMQ_CURVE_SECRETKEY, sec, 40);
	assert_int_equal(zmq_connect(c, mq_zsrv_endpoint(e.s)), 0);
	zmq_send(c, "y", 1, ZMQ_DONTWAIT);
	usleep(300000);
	assert_int_equal(echo_msgs(&e), 0);
	zmq_close(p);
	zmq_close(c);
	zmq_ctx_term(ctx);
	echo_stop(&e);
}

/* Byte by byte: the greeting, READY, a PING and two messages (one of a
 * long frame) come one byte per read, and arrive whole and in order. */
static void test_byte_by_byte(void **state)
{
	(void)state;
	mq_zsrv_t *s = new_srv(4096, 0);
	int fd = adopt_pair(s, NULL);
	uint8_t in[2048];
	size_t n = hello(in, "DEALER");
	uint8_t ping[] = {4, 'P', 'I', 'N', 'G', 0, 10, 'c', 't', 'x'};
	n += frame(in + n, MQ_ZMTP_F_CMD, ping, sizeof ping);
	n += frame(in + n, MQ_ZMTP_F_MORE, "one", 3);
	n += frame(in + n, 0, "two", 3);
	char longf[700];
	memset(longf, 'L', sizeof longf);
	n += frame(in + n, 0, longf, sizeof longf);
	/* (messages are taken as they come: one left waiting stops the reading) */
	char got[2][1024];
	uint64_t peers[2];
	int ngot = 0;
	for (size_t i = 0; i < n; i++) {
		put(fd, in + i, 1);
		pump(s, 5);
		if (i + 1 < 64 + 24) /* within the handshake: nothing yet */
			assert_false(mq_zsrv_ready(s));
		if (mq_zsrv_ready(s)) {
			assert_true(ngot < 2);
			assert_int_equal(take(s, &peers[ngot], got[ngot], sizeof got[0], 0), 1);
			ngot++;
		}
	}
	assert_int_equal(ngot, 2);
	assert_string_equal(got[0], "one|two");
	assert_int_equal(strlen(got[1]), sizeof longf);
	assert_true(peers[0] == peers[1]);
	uint64_t peer2;
	assert_int_equal(take(s, &peer2, got[0], sizeof got[0], 50), 0);
	/* what came back: our greeting, our READY (Socket-Type ROUTER), the PONG with the ping's context */
	mq_zsrv_flush(s);
	uint8_t out[1024];
	size_t have = 0;
	drain(fd, out, sizeof out, &have, 200);
	assert_true(have > 64);
	assert_int_equal(out[0], 0xFF);
	assert_int_equal(out[10], 3);
	assert_memory_equal(out + 12, "NULL", 4);
	assert_non_null(memmem(out + 64, have - 64, "ROUTER", 6));
	uint8_t pong[] = {MQ_ZMTP_F_CMD, 8, 4, 'P', 'O', 'N', 'G', 'c', 't', 'x'};
	assert_non_null(memmem(out + 64, have - 64, pong, sizeof pong));
	close(fd);
	mq_zsrv_close(s);
}

/* Many messages in one write from each of two connections: each
 * connection's come in order, and the two take turns. */
static void test_fair_and_ordered(void **state)
{
	(void)state;
	mq_zsrv_t *s = new_srv(4096, 0);
	int fd[2];
	for (int k = 0; k < 2; k++) {
		fd[k] = adopt_pair(s, "DEALER");
		uint8_t buf[100 * 16];
		size_t n = 0;
		for (int i = 0; i < 100; i++) {
			char m[16];
			int l = snprintf(m, sizeof m, "%c%d", 'a' + k, i);
			n += frame(buf + n, 0, m, (size_t)l);
		}
		put(fd[k], buf, n);
	}
	int next[2] = {0, 0}, last = -1, switches = 0;
	char got[64];
	uint64_t peer;
	while (next[0] + next[1] < 200 && take(s, &peer, got, sizeof got, 1000)) {
		int k = got[0] - 'a';
		assert_int_equal(atoi(got + 1), next[k]);
		next[k]++;
		switches += last >= 0 && k != last;
		last = k;
	}
	assert_int_equal(next[0], 100);
	assert_int_equal(next[1], 100);
	assert_true(switches >= 150);
	close(fd[0]);
	close(fd[1]);
	mq_zsrv_close(s);
}

/* A peer that sends and closes: what it sent is served, then it is
 * gone, and a reply to it is -MQ_ENOENT, as to an id never given out. */
static void test_closed_peer(void **state)
{
	(void)state;
	mq_zsrv_t *s = new_srv(4096, 0);
	int fd = adopt_pair(s, "DEALER");
	uint8_t buf[64];
	size_t n = frame(buf, MQ_ZMTP_F_MORE, "last", 4);
	n += frame(buf + n, 0, "words", 5);
	put(fd, buf, n);
	close(fd);
	uint64_t peer;
	char got[64];
	assert_int_equal(take(s, &peer, got, sizeof got, 1000), 1);
	assert_string_equal(got, "last|words");
	assert_int_equal(take(s, &peer, got, sizeof got, 50), 0);
	assert_int_equal(mq_zsrv_peers(s), 0);
	assert_int_equal(reply(s, peer, "late", NULL), -MQ_ENOENT);
	assert_int_equal(reply(s, peer ^ (1ull << 32), "x", NULL), -MQ_ENOENT);
	assert_int_equal(reply(s, 12345, "x", NULL), -MQ_ENOENT);
	mq_zsrv_close(s);
}

/* A peer that stops reading: replies queue up to max_queue, then are
 * dropped whole (-MQ_EAGAIN); when it reads again it gets every reply
 * that was taken, each whole, and new ones go through. */
static void test_queue_full(void **state)
{
	(void)state;
	mq_zsrv_t *s = new_srv(4096, 0);
	int fd = adopt_pair(s, "DEALER");
	uint8_t buf[64];
	put(fd, buf, frame(buf, 0, "hi", 2));
	uint64_t peer;
	char got[64];
	assert_int_equal(take(s, &peer, got, sizeof got, 1000), 1);
	size_t len = 100000;
	int taken = 0, rc = 0;
	for (int i = 0; i < 1000 && rc == 0; i++) {
		mq_buf_t f[1] = {{0}};
		mq_buf_reserve(&f[0], len);
		memset(f[0].p, 'a' + i % 26, len);
		f[0].len = len;
		if ((rc = mq_zsrv_send(s, peer, f, 1)) == 0)
			taken++;
		mq_zsrv_flush(s);
	}
	assert_int_equal(rc, -MQ_EAGAIN);
	assert_true(taken >= 10 && taken < 1000);
	/* read it all: greeting, READY, then the replies, each whole */
	size_t cap = (size_t)(taken + 2) * (len + 16) + 4096, have = 0;
	uint8_t *all = malloc(cap);
	int64_t until = mq_mono_ms() + 5000;
	while (mq_mono_ms() < until) {
		pump(s, 0);
		mq_zsrv_flush(s);
		drain(fd, all, cap, &have, 20);
		if (have >= (size_t)taken * (len + 9) + 64)
			break;
	}
	size_t pos = 64, used = 0, flen = 0;
	int flags = 0, frames = 0;
	const uint8_t *body;
	assert_int_equal(mq_zmtp_frame_parse(all + pos, have - pos, 4096, &flags, &body, &flen, &used), 1);
	assert_true(flags & MQ_ZMTP_F_CMD); /* READY */
	pos += used;
	while (mq_zmtp_frame_parse(all + pos, have - pos, len, &flags, &body, &flen, &used) == 1) {
		assert_int_equal(flen, len);
		assert_int_equal(body[0], 'a' + frames % 26);
		assert_int_equal(body[len - 1], 'a' + frames % 26);
		pos += used;
		frames++;
	}
	assert_int_equal(frames, taken);
	assert_int_equal(pos, have);
	assert_int_equal(reply(s, peer, "again", NULL), 0);
	mq_zsrv_flush(s);
	have = 0;
	drain(fd, all, cap, &have, 500);
	assert_int_equal(have, 7);
	free(all);
	close(fd);
	mq_zsrv_close(s);
}

/* Peers turned away: a socket type a ROUTER does not talk to gets an
 * ERROR; a frame over the limit, a command inside a message, bad flags,
 * a CurveZMQ greeting and something that is not ZMTP are dropped, and
 * nothing of theirs is taken. */
static void test_bad_peers(void **state)
{
	(void)state;
	mq_zsrv_t *s = new_srv(4096, 0);
	uint8_t buf[8192], out[4096];
	size_t n, have;

	int fd = adopt_pair(s, "PUB");
	have = 0;
	for (int i = 0; i < 20 && !drain(fd, out, sizeof out, &have, 10); i++)
		pump(s, 10);
	assert_non_null(memmem(out, have, "ERROR", 5));
	assert_non_null(memmem(out, have, "invalid socket type", 19));
	close(fd);

	/* a frame one byte over: dropped as soon as its head is read */
	fd = adopt_pair(s, "DEALER");
	n = mq_zmtp_frame_head(buf, 0, 4097);
	put(fd, buf, n);
	assert_true(pump_until_closed(s, fd));
	close(fd);

	const char *bad[] = {"cmd-in-msg", "flags", "curve", "http"};
	for (size_t k = 0; k < 4; k++) {
		int raw = !strcmp(bad[k], "curve") || !strcmp(bad[k], "http");
		fd = adopt_pair(s, raw ? NULL : "DEALER");
		n = 0;
		if (!strcmp(bad[k], "cmd-in-msg")) {
			n += frame(buf + n, MQ_ZMTP_F_MORE, "a", 1);
			n += frame(buf + n, MQ_ZMTP_F_CMD, "\4PING\0\0", 7);
			n += frame(buf + n, 0, "b", 1);
		} else if (!strcmp(bad[k], "flags")) {
			buf[n++] = 0x80;
			buf[n++] = 1;
			buf[n++] = 'x';
		} else if (!strcmp(bad[k], "curve")) {
			n = hello(buf, "DEALER");
			memcpy(buf + 12, "CURVE", 5);
		} else {
			n = (size_t)snprintf((char *)buf, sizeof buf, "GET / HTTP/1.0\r\n\r\n%60s", "");
		}
		put(fd, buf, n);
		assert_true(pump_until_closed(s, fd));
		close(fd);
	}
	uint64_t peer;
	char got[64];
	assert_int_equal(take(s, &peer, got, sizeof got, 50), 0);
	pump(s, 0);
	assert_int_equal(mq_zsrv_peers(s), 0);
	mq_zsrv_close(s);
}

/* A large message whose frame head says more than has come: the buffer
 * waits for it (no partial message is taken), then takes it whole. */
static void test_large_frame_in_pieces(void **state)
{
	(void)state;
	size_t big = 3u << 20;
	mq_zsrv_t *s = new_srv(big, 0);
	int fd = adopt_pair(s, "DEALER");
	uint8_t *buf = malloc(big + 16);
	size_t n = mq_zmtp_frame_head(buf, 0, big);
	for (size_t i = 0; i < big; i++)
		buf[n + i] = (uint8_t)(i % 251);
	n += big;
	size_t sent = 0;
	while (sent < n) {
		size_t k = n - sent < 100000 ? n - sent : 100000;
		put(fd, buf + sent, k);
		sent += k;
		pump(s, 5);
		if (sent < n)
			assert_false(mq_zsrv_ready(s));
	}
	const mq_zmtp_frame_t *f;
	int nf = 0;
	uint64_t peer;
	int64_t until = mq_mono_ms() + 2000;
	while (!mq_zsrv_recv(s, &peer, &f, &nf) && mq_mono_ms() < until)
		pump(s, 10);
	assert_int_equal(nf, 1);
	assert_int_equal(f[0].len, big);
	assert_memory_equal(f[0].p, buf + n - big, big);
	free(buf);
	close(fd);
	mq_zsrv_close(s);
}

/* A peer that connects and says nothing is let go when its handshake
 * time is up; one that finished its handshake stays. */
static void test_handshake_time(void **state)
{
	(void)state;
	mq_zsrv_t *s = new_srv(4096, 150);
	int64_t t0 = mq_mono_ms(); /* the time limit runs from the adoption: before it, not after */
	int mute = adopt_pair(s, NULL), ok = adopt_pair(s, "DEALER");
	uint8_t out[256];
	size_t have = 0;
	int closed = 0;
	while (!closed && mq_mono_ms() < t0 + 2000) {
		int64_t d = mq_zsrv_next_deadline(s);
		assert_true(d != INT64_MAX);
		pump(s, (int)(d > mq_mono_ms() ? d - mq_mono_ms() : 0));
		closed = drain(mute, out, sizeof out, &have, 0);
	}
	assert_true(closed);
	assert_true(mq_mono_ms() - t0 >= 150);
	assert_int_equal(mq_zsrv_peers(s), 1);
	assert_int_equal(mq_zsrv_next_deadline(s), INT64_MAX);
	close(mute);
	close(ok);
	mq_zsrv_close(s);
}

/* Until its handshake is done a peer sends small commands only: a
 * "READY" of 5000 bytes announced is refused at once, under a frame
 * limit of 1 MiB that a message of 5000 bytes after the handshake is
 * well within. */
static void test_handshake_frames_small(void **state)
{
	(void)state;
	mq_zsrv_t *s = new_srv(1 << 20, 0);
	uint8_t buf[8192];
	int fd = adopt_pair(s, NULL);
	size_t n = hello(buf, "DEALER");
	n = 64 + mq_zmtp_frame_head(buf + 64, MQ_ZMTP_F_CMD, 5000);
	put(fd, buf, n);
	assert_true(pump_until_closed(s, fd));
	close(fd);
	fd = adopt_pair(s, "DEALER");
	memset(buf, 'x', sizeof buf);
	n = mq_zmtp_frame_head(buf, 0, 5000);
	put(fd, buf, n + 5000);
	uint64_t peer;
	char got[6000];
	assert_int_equal(take(s, &peer, got, sizeof got, 1000), 1);
	assert_int_equal(strlen(got), 5000);
	close(fd);
	mq_zsrv_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_supports),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_direct_client),
		cmocka_unit_test(test_libzmq_dealer),
		cmocka_unit_test(test_libzmq_refused),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_fair_and_ordered),
		cmocka_unit_test(test_closed_peer),
		cmocka_unit_test(test_queue_full),
		cmocka_unit_test(test_bad_peers),
		cmocka_unit_test(test_large_frame_in_pieces),
		cmocka_unit_test(test_handshake_time),
		cmocka_unit_test(test_handshake_frames_small),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
