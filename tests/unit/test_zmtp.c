/*
 * test_zmtp.c -- lib/zmtp.c against a real libzmq ROUTER (the socket
 * mq-serve listens with): handshake, multipart messages both ways over
 * TCP and IPC, short and long frames, heartbeats answered so libzmq
 * keeps the connection; and against peers that are not one: nothing
 * listening, an unknown host, a plain TCP server, a CURVE server (a fake
 * one and libzmq's, whose mechanism is found out by a second dial), and a
 * frame length beyond the limit, which is refused before it is read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "zmtp.h"

static void *router(void *ctx, char *ep, size_t n, const char *bind)
{
	void *s = zmq_socket(ctx, ZMQ_ROUTER);
	assert_non_null(s);
	assert_int_equal(zmq_setsockopt(s, ZMQ_LINGER, &(int){0}, sizeof(int)), 0);
	assert_int_equal(zmq_bind(s, bind), 0);
	assert_int_equal(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &n), 0);
	return s;
}

/* Receive one message on a ROUTER: the routing id into id, the rest
 * joined with '|' into out. */
static int router_recv(void *s, zmq_msg_t *id, char *out, size_t n)
{
	zmq_msg_init(id);
	if (zmq_msg_recv(id, s, 0) < 0)
		return -1;
	size_t o = 0;
	int frames = 0;
	while (zmq_msg_more(id) || frames) {
		zmq_msg_t f;
		zmq_msg_init(&f);
		assert_true(zmq_msg_recv(&f, s, 0) >= 0);
		size_t l = zmq_msg_size(&f);
		assert_true(o + l + 2 < n);
		if (frames)
			out[o++] = '|';
		memcpy(out + o, zmq_msg_data(&f), l);
		o += l;
		frames++;
		int more = zmq_msg_more(&f);
		zmq_msg_close(&f);
		if (!more)
			break;
	}
	out[o] = '\0';
	return frames;
}

static void router_send(void *s, zmq_msg_t *id, const void *body, size_t len)
{
	zmq_msg_t copy;
	zmq_msg_init(&copy);
	zmq_msg_copy(&copy, id);
	assert_true(zmq_msg_send(&copy, s, ZMQ_SNDMORE) >= 0);
	assert_true(zmq_send(s, body, len, 0) >= 0);
}

/* Wait for and take one message on z. */
static int recv_wait(mq_zmtp_t *z, const mq_zmtp_frame_t **f, int *n, int ms, mq_err_t *err)
{
	int64_t until = mq_mono_ms() + ms;
	for (;;) {
		int rc = mq_zmtp_recv(z, f, n, err);
		if (rc)
			return rc;
		struct pollfd p = {.fd = mq_zmtp_fd(z), .events = POLLIN};
		int64_t left = until - mq_mono_ms();
		if (left <= 0 || poll(&p, 1, (int)left) == 0)
			return 0;
	}
}

static void round_trip(const char *bind)
{
	void *ctx = zmq_ctx_new();
	char ep[256];
	void *s = router(ctx, ep, sizeof ep, bind);
	mq_zmtp_t *z = NULL;
	mq_err_t err;
	assert_int_equal(mq_zmtp_connect(ep, mq_mono_ms() + 5000, 1 << 20, &z, &err), 0);

	/* Two frames, the second long (over 255 bytes: an 8-byte size). */
	static char big[3000];
	memset(big, 'b', sizeof big);
	mq_zmtp_frame_t out[2] = {{"head", 4}, {big, sizeof big}};
	assert_int_equal(mq_zmtp_send(z, out, 2, mq_mono_ms() + 5000, &err), 0);
	zmq_msg_t id;
	char got[4000];
	assert_int_equal(router_recv(s, &id, got, sizeof got), 2);
	assert_memory_equal(got, "head|", 5);
	assert_int_equal(strlen(got), 5 + sizeof big);

	/* Several replies arriving together are taken one by one, in order. */
	router_send(s, &id, "one", 3);
	router_send(s, &id, big, sizeof big);
	router_send(s, &id, "", 0);
	const mq_zmtp_frame_t *f;
	int n = 0;
	assert_int_equal(recv_wait(z, &f, &n, 5000, &err), 1);
	assert_int_equal(n, 1);
	assert_int_equal(f[0].len, 3);
	assert_memory_equal(f[0].p, "one", 3);
	assert_int_equal(recv_wait(z, &f, &n, 5000, &err), 1);
	assert_int_equal(f[0].len, sizeof big);
	assert_memory_equal(f[0].p, big, sizeof big);
	assert_int_equal(recv_wait(z, &f, &n, 5000, &err), 1);
	assert_int_equal(f[0].len, 0);
	assert_int_equal(mq_zmtp_recv(z, &f, &n, &err), 0); /* nothing more */

	/* A closed broker is an error, not silence. */
	zmq_msg_close(&id);
	zmq_close(s);
	int rc;
	while ((rc = recv_wait(z, &f, &n, 5000, &err)) == 0)
		;
	assert_int_equal(rc, -MQ_EIO);
	mq_zmtp_close(z);
	zmq_ctx_term(ctx);
}

static void test_tcp_round_trip(void **state)
{
	round_trip("tcp://127.0.0.1:*");
}

static void test_ipc_round_trip(void **state)
{
	char bind[128];
	snprintf(bind, sizeof bind, "ipc:///tmp/mq-test-zmtp-%d", (int)getpid());
	round_trip(bind);
	unlink(bind + 6);
}

/* libzmq closes a connection that answers no PING within its timeout:
 * of two connections, the one that never reads is dropped, the one
 * that reads (and so answers) outlives many timeouts. */
static void test_heartbeats_answered(void **state)
{
	void *ctx = zmq_ctx_new();
	char ep[256];
	void *s = zmq_socket(ctx, ZMQ_ROUTER);
	zmq_setsockopt(s, ZMQ_LINGER, &(int){0}, sizeof(int));
	zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &(int){20}, sizeof(int));
	zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &(int){100}, sizeof(int));
	void *mon = zmq_socket(ctx, ZMQ_PAIR);
	assert_int_equal(zmq_socket_monitor(s, "inproc://zmtp-mon", ZMQ_EVENT_DISCONNECTED), 0);
	assert_int_equal(zmq_connect(mon, "inproc://zmtp-mon"), 0);
	assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
	size_t len = sizeof ep;
	zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len);
	mq_zmtp_t *z = NULL, *deaf = NULL;
	mq_err_t err;
	assert_int_equal(mq_zmtp_connect(ep, mq_mono_ms() + 5000, 4096, &z, &err), 0);
	assert_int_equal(mq_zmtp_connect(ep, mq_mono_ms() + 5000, 4096, &deaf, &err), 0);
	mq_zmtp_frame_t out = {"hi", 2};
	assert_int_equal(mq_zmtp_send(z, &out, 1, mq_mono_ms() + 5000, &err), 0);
	zmq_msg_t id;
	char got[64];
	assert_int_equal(router_recv(s, &id, got, sizeof got), 1);
	/* 500 ms: 25 pings, five timeouts' worth. */
	const mq_zmtp_frame_t *f;
	int n;
	assert_int_equal(recv_wait(z, &f, &n, 500, &err), 0);
	zmq_pollitem_t it = {.socket = mon, .events = ZMQ_POLLIN};
	int downs = 0;
	while (zmq_poll(&it, 1, 0) == 1) {
		zmq_msg_t ev;
		zmq_msg_init(&ev);
		zmq_msg_recv(&ev, mon, 0);
		if (!zmq_msg_more(&ev))
			downs++; /* [event, endpoint]: counted at its last frame */
		zmq_msg_close(&ev);
	}
	assert_int_equal(downs, 1); /* the deaf one alone */
	router_send(s, &id, "still", 5);
	assert_int_equal(recv_wait(z, &f, &n, 5000, &err), 1);
	assert_memory_equal(f[0].p, "still", 5);
	zmq_msg_close(&id);
	mq_zmtp_close(z);
	mq_zmtp_close(deaf);
	zmq_close(mon);
	zmq_close(s);
	zmq_ctx_term(ctx);
}

static void test_nothing_listens(void **state)
{
	/* A port just freed: nothing listens there. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	close(fd);
	char ep[64];
	snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", ntohs(sa.sin_port));
	mq_zmtp_t *z = NULL;
	mq_err_t err;
	int64_t t0 = mq_mono_ms();
	assert_int_equal(mq_zmtp_connect(ep, -1, 4096, &z, &err), -MQ_ECONNECT);
	assert_true(mq_mono_ms() - t0 < 1000);
	assert_string_equal(err.msg, "connection refused");
	assert_int_equal(mq_zmtp_connect("ipc:///nonexistent/mq.sock", -1, 4096, &z, &err), -MQ_ECONNECT);
	assert_string_equal(err.msg, "no such file or directory");
	assert_int_equal(mq_zmtp_connect("tcp://no-such-host.invalid:7733", -1, 4096, &z, &err), -MQ_ECONNECT);
	assert_non_null(strstr(err.msg, "host 'no-such-host.invalid' not found"));
}

static void test_supports(void **state)
{
	assert_true(mq_zmtp_supports("tcp://127.0.0.1:7733"));
	assert_true(mq_zmtp_supports("tcp://localhost:1"));
	assert_true(mq_zmtp_supports("tcp://[::1]:7733"));
	assert_true(mq_zmtp_supports("ipc:///tmp/x.sock"));
	assert_true(mq_zmtp_supports("ipc://@abstract"));
	assert_false(mq_zmtp_supports("tcp://eth0;127.0.0.1:7733"));
	assert_false(mq_zmtp_supports("tcp://127.0.0.1:http"));
	assert_false(mq_zmtp_supports("tcp://127.0.0.1:"));
	assert_false(mq_zmtp_supports("tcp://*:7733"));
	assert_false(mq_zmtp_supports("tcp://[::1:7733"));
	assert_false(mq_zmtp_supports("ipc://"));
	assert_false(mq_zmtp_supports("inproc://x"));
	assert_false(mq_zmtp_supports("kafka://h:9092"));
}

/* ---- peers that are not a ROUTER ---- */

typedef struct fake {
	int lfd;
	const void *send;
	size_t len;
	int got; /* bytes the client sent before we answered */
} fake_t;

static void *fake_run(void *arg)
{
	fake_t *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	char buf[256];
	ssize_t r = recv(fd, buf, sizeof buf, 0);
	f->got = (int)r;
	if (f->len)
		(void)!write(fd, f->send, f->len);
	/* Hold the connection until the client gives up on it. */
	while (recv(fd, buf, sizeof buf, 0) > 0)
		;
	close(fd);
	return NULL;
}

static void fake_connect(const void *send, size_t len, int want_rc, const char *want_msg, size_t max_frame,
			 int then_recv)
{
	fake_t f = {.send = send, .len = len};
	f.lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	assert_int_equal(bind(f.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(f.lfd, 1), 0);
	getsockname(f.lfd, (struct sockaddr *)&sa, &sl);
	pthread_t t;
	pthread_create(&t, NULL, fake_run, &f);
	char ep[64];
	snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", ntohs(sa.sin_port));
	mq_zmtp_t *z = NULL;
	mq_err_t err;
	int rc = mq_zmtp_connect(ep, mq_mono_ms() + 2000, max_frame, &z, &err);
	if (then_recv) {
		assert_int_equal(rc, 0);
		const mq_zmtp_frame_t *fr;
		int n;
		rc = recv_wait(z, &fr, &n, 2000, &err);
		mq_zmtp_close(z);
	}
	assert_int_equal(rc, want_rc);
	if (!strstr(err.msg, want_msg))
		fail_msg("error '%s' does not say '%s'", err.msg, want_msg);
	pthread_join(t, NULL);
	close(f.lfd);
	assert_true(f.got >= 64); /* the greeting went out */
}

/* A server greeting and READY, as a ROUTER with the NULL mechanism. */
static size_t good_start(uint8_t *b)
{
	uint8_t g[64] = {0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1, 'N', 'U', 'L', 'L'};
	static const uint8_t ready[] = {4, 28, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k', 'e', 't', '-', 'T',
					'y', 'p', 'e', 0, 0, 0, 6, 'R', 'O', 'U', 'T', 'E', 'R'};
	memcpy(b, g, sizeof g);
	memcpy(b + sizeof g, ready, sizeof ready);
	return sizeof g + sizeof ready;
}

static void test_not_zmtp(void **state)
{
	static const char http[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	fake_connect(http, sizeof http - 1, -MQ_EPROTO, "does not speak ZMTP 3", 4096, 0);
	fake_connect(NULL, 0, -MQ_ETIMEDOUT, "did not greet in time", 4096, 0);
}

static void test_curve_server(void **state)
{
	uint8_t b[128];
	good_start(b);
	memset(b + 12, 0, 20);
	memcpy(b + 12, "CURVE", 5);
	fake_connect(b, 64, -MQ_EPROTO, "the broker requires CurveZMQ: give --curve-server KEY", 4096, 0);
	memcpy(b + 12, "PLAIN", 5);
	fake_connect(b, 64, -MQ_EPROTO, "requires the PLAIN security mechanism", 4096, 0);
}

/* A real libzmq CURVE ROUTER drops a NULL peer as soon as it has read
 * its greeting, before its own mechanism went out (and the reset may
 * discard the signature it sent): the mechanism is still named, every
 * time, through mq_zmtp_mechanism.  Against a NULL ROUTER that names
 * NULL; where nothing listens, nothing. */
static void test_real_curve_server(void **state)
{
	void *ctx = zmq_ctx_new();
	char pub[41], sec[41], ep[128], nep[128];
	assert_int_equal(zmq_curve_keypair(pub, sec), 0);
	void *s = zmq_socket(ctx, ZMQ_ROUTER);
	assert_int_equal(zmq_setsockopt(s, ZMQ_LINGER, &(int){0}, sizeof(int)), 0);
	assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SERVER, &(int){1}, sizeof(int)), 0);
	assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40), 0);
	assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
	size_t n = sizeof ep;
	assert_int_equal(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &n), 0);
	void *plain = router(ctx, nep, sizeof nep, "tcp://127.0.0.1:*");
	char mech[21];
	assert_int_equal(mq_zmtp_mechanism(ep, mq_mono_ms() + 5000, mech), 1);
	assert_string_equal(mech, "CURVE");
	assert_int_equal(mq_zmtp_mechanism(nep, mq_mono_ms() + 5000, mech), 1);
	assert_string_equal(mech, "NULL");
	for (int i = 0; i < 30; i++) {
		mq_zmtp_t *z = NULL;
		mq_err_t err;
		int64_t t0 = mq_mono_ms();
		assert_int_equal(mq_zmtp_connect(ep, t0 + 5000, 4096, &z, &err), -MQ_EPROTO);
		assert_null(z);
		if (!strstr(err.msg, "the broker requires CurveZMQ"))
			fail_msg("try %d: %s", i, err.msg);
		assert_true(mq_mono_ms() - t0 < 1000);
	}
	zmq_close(s);
	zmq_close(plain);
	zmq_ctx_term(ctx); /* the listeners are closed once it returns */
	assert_int_equal(mq_zmtp_mechanism(ep, mq_mono_ms() + 5000, mech), 0);
}

static void test_wrong_socket_type(void **state)
{
	uint8_t b[128];
	size_t n = good_start(b);
	memcpy(b + n - 6, "PUB\0\0\0", 6);
	b[n - 7] = 3;
	b[65] = 25;
	fake_connect(b, n - 3, -MQ_EPROTO, "a ZeroMQ PUB socket", 4096, 0);
}

/* A frame claiming 2^40 bytes: refused from its header alone. */
static void test_frame_too_big(void **state)
{
	uint8_t b[160];
	size_t n = good_start(b);
	uint8_t big[9] = {2, 0, 0, 1, 0, 0, 0, 0, 0};
	memcpy(b + n, big, sizeof big);
	fake_connect(b, n + sizeof big, -MQ_EPROTO, "a frame of 1099511627776 bytes", 1 << 20, 1);
	/* Flags a ZMTP peer never sets. */
	n = good_start(b);
	b[n] = 0x40;
	b[n + 1] = 0;
	fake_connect(b, n + 2, -MQ_EPROTO, "flags 0x40", 1 << 20, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_round_trip),
		cmocka_unit_test(test_ipc_round_trip),
		cmocka_unit_test(test_heartbeats_answered),
		cmocka_unit_test(test_nothing_listens),
		cmocka_unit_test(test_supports),
		cmocka_unit_test(test_not_zmtp),
		cmocka_unit_test(test_curve_server),
		cmocka_unit_test(test_real_curve_server),
		cmocka_unit_test(test_wrong_socket_type),
		cmocka_unit_test(test_frame_too_big),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
