/*
 * test_zap.c -- unit tests for lib/zap.c against real libzmq: a CURVE
 * ROUTER whose key checks go to the handler, DEALER clients with keys
 * in and out of the lists.  What a client let in sends arrives with its
 * name and role; an unlisted key is refused (the client's monitor sees
 * the ZAP status 400); a reload adds and removes keys, and a bad list
 * keeps the old one; refusals are reported once a minute per key, with
 * a count; requests that are not CURVE or do not parse are answered
 * (a REP socket that kept one unanswered would stop every later check).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "curve.h"
#include "zap.h"

typedef struct fx {
	char root[64], allow[96], admin[96];
	char spub[41], ssec[41];
	char pub[3][41], sec[3][41];
	void *ctx, *router;
	char ep[64];
	mq_zap_t *zap;
	char reports[8][768];
	int nreports;
	void *open[64]; /* client sockets not closed yet: closed by teardown, even after a failure */
	int nopen;
} fx_t;

static fx_t *cur; /* the fixture of the running test (hang_up forgets its sockets) */

static void report(void *ctx, const char *msg)
{
	fx_t *f = ctx;
	if (f->nreports < 8)
		snprintf(f->reports[f->nreports], sizeof f->reports[0], "%s", msg);
	f->nreports++;
}

static void put_key(const char *dir, const char *name, const char *key)
{
	char path[200];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "%s\n", key);
	fclose(fp);
	chmod(path, 0644);
}

static int setup(void **state)
{
	fx_t *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	snprintf(f->root, sizeof f->root, "/tmp/test_zap.XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(f->allow, sizeof f->allow, "%s/allow", f->root);
	snprintf(f->admin, sizeof f->admin, "%s/admin", f->root);
	if (mkdir(f->allow, 0700) || mkdir(f->admin, 0700) || zmq_curve_keypair(f->spub, f->ssec))
		return -1;
	for (int i = 0; i < 3; i++)
		if (zmq_curve_keypair(f->pub[i], f->sec[i]))
			return -1;
	put_key(f->allow, "alice", f->pub[0]);
	put_key(f->admin, "root", f->pub[1]);
	f->ctx = zmq_ctx_new();
	cur = f;
	*state = f;
	return 0;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	fx_t *f = *state;
	for (int i = 0; i < f->nopen; i++)
		if (f->open[i])
			zmq_close(f->open[i]);
	if (f->router)
		zmq_close(f->router);
	mq_zap_close(f->zap);
	zmq_ctx_term(f->ctx);
	nftw(f->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* The handler with these lists, and a CURVE ROUTER on a free port. */
static void start(fx_t *f, const char *allow, const char *admin)
{
	mq_zap_opts_t o = {.allow_dir = allow, .admin_dir = admin, .report = report, .report_ctx = f};
	mq_err_t err;
	assert_int_equal(mq_zap_open(f->ctx, &o, &f->zap, &err), 0);
	f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
	int one = 1, zero = 0;
	assert_int_equal(zmq_setsockopt(f->router, ZMQ_CURVE_SERVER, &one, sizeof one), 0);
	assert_int_equal(zmq_setsockopt(f->router, ZMQ_CURVE_SECRETKEY, f->ssec, 40), 0);
	assert_int_equal(zmq_setsockopt(f->router, ZMQ_ZAP_DOMAIN, "mq", 2), 0);
	assert_int_equal(zmq_setsockopt(f->router, ZMQ_LINGER, &zero, sizeof zero), 0);
	assert_int_equal(zmq_bind(f->router, "tcp://127.0.0.1:*"), 0);
	size_t len = sizeof f->ep;
	assert_int_equal(zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, f->ep, &len), 0);
}

typedef struct client {
	void *s, *mon;
} client_t;

static client_t dial(fx_t *f, int k, const char *server_key)
{
	static int n;
	char mon[64];
	snprintf(mon, sizeof mon, "inproc://test-zap-mon-%d", n++);
	client_t c = {zmq_socket(f->ctx, ZMQ_DEALER), NULL};
	int zero = 0;
	zmq_setsockopt(c.s, ZMQ_LINGER, &zero, sizeof zero);
	assert_int_equal(zmq_setsockopt(c.s, ZMQ_CURVE_SERVERKEY, server_key, 40), 0);
	assert_int_equal(zmq_setsockopt(c.s, ZMQ_CURVE_PUBLICKEY, f->pub[k], 40), 0);
	assert_int_equal(zmq_setsockopt(c.s, ZMQ_CURVE_SECRETKEY, f->sec[k], 40), 0);
	assert_int_equal(zmq_socket_monitor(c.s, mon, ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
							     ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
							     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL),
			 0);
	c.mon = zmq_socket(f->ctx, ZMQ_PAIR);
	zmq_setsockopt(c.mon, ZMQ_LINGER, &zero, sizeof zero);
	assert_int_equal(zmq_connect(c.mon, mon), 0);
	assert_int_equal(zmq_connect(c.s, f->ep), 0);
	assert_true(f->nopen + 2 <= 64);
	f->open[f->nopen++] = c.s;
	f->open[f->nopen++] = c.mon;
	return c;
}

static void hang_up(client_t *c)
{
	for (int i = 0; i < cur->nopen; i++)
		if (cur->open[i] == c->s || cur->open[i] == c->mon)
			cur->open[i] = NULL;
	zmq_close(c->s);
	zmq_close(c->mon);
}

/* Serve key checks (with now_ms) until the client's handshake ends:
 * the event (HANDSHAKE_SUCCEEDED, _FAILED_AUTH, ...) and its value. */
static uint16_t handshake(fx_t *f, client_t *c, int64_t now_ms, uint32_t *value)
{
	for (int i = 0; i < 500; i++) {
		zmq_pollitem_t it[2] = {{mq_zap_socket(f->zap), 0, ZMQ_POLLIN, 0}, {c->mon, 0, ZMQ_POLLIN, 0}};
		assert_true(zmq_poll(it, 2, 10) >= 0);
		if (it[0].revents)
			mq_zap_serve(f->zap, now_ms);
		if (it[1].revents) {
			zmq_msg_t ev;
			zmq_msg_init(&ev);
			assert_true(zmq_msg_recv(&ev, c->mon, 0) >= 6);
			uint16_t what;
			memcpy(&what, zmq_msg_data(&ev), 2);
			memcpy(value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
			zmq_msg_close(&ev);
			zmq_msg_init(&ev);
			zmq_msg_recv(&ev, c->mon, 0); /* the endpoint */
			zmq_msg_close(&ev);
			return what;
		}
	}
	fail_msg("the handshake did not end within 5 s");
	return 0;
}

/* Send a message from c; the router receives it: its User-Id and role
 * into user and role (empty when none). */
static void roundtrip(fx_t *f, client_t *c, char *user, char *role)
{
	assert_int_equal(zmq_send(c->s, "hello", 5, 0), 5);
	zmq_pollitem_t it = {f->router, 0, ZMQ_POLLIN, 0};
	assert_int_equal(zmq_poll(&it, 1, 5000), 1);
	zmq_msg_t id, m;
	zmq_msg_init(&id);
	zmq_msg_init(&m);
	assert_true(zmq_msg_recv(&id, f->router, 0) > 0);
	assert_int_equal(zmq_msg_recv(&m, f->router, 0), 5);
	const char *u = zmq_msg_gets(&m, "User-Id"), *r = zmq_msg_gets(&m, MQ_ZAP_ROLE);
	snprintf(user, 64, "%s", u ? u : "");
	snprintf(role, 64, "%s", r ? r : "");
	zmq_msg_close(&id);
	zmq_msg_close(&m);
}

static void test_allow_and_refuse(void **state)
{
	fx_t *f = *state;
	start(f, f->allow, f->admin);
	assert_int_equal(mq_zap_keys(f->zap), 2);
	uint32_t v;
	char user[64], role[64];
	client_t alice = dial(f, 0, f->spub);
	assert_int_equal(handshake(f, &alice, 1000, &v), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
	roundtrip(f, &alice, user, role);
	assert_string_equal(user, "alice");
	assert_string_equal(role, "client");
	client_t root = dial(f, 1, f->spub);
	assert_int_equal(handshake(f, &root, 1000, &v), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
	roundtrip(f, &root, user, role);
	assert_string_equal(user, "root");
	assert_string_equal(role, "admin");
	assert_int_equal(f->nreports, 0);
	/* An unlisted key: refused with 400, reported with its key and address. */
	client_t carol = dial(f, 2, f->spub);
	assert_int_equal(handshake(f, &carol, 1000, &v), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
	assert_int_equal(v, 400);
	assert_int_equal(f->nreports, 1);
	assert_non_null(strstr(f->reports[0], "refused a client at 127.0.0.1: its public key"));
	assert_non_null(strstr(f->reports[0], f->pub[2]));
	assert_non_null(strstr(f->reports[0], f->allow));
	hang_up(&carol);
	/* Again within the minute: refused, not reported; after it,
	 * reported with the count of those in between. */
	for (int i = 0; i < 3; i++) {
		carol = dial(f, 2, f->spub);
		assert_int_equal(handshake(f, &carol, 2000 + i, &v), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
		hang_up(&carol);
	}
	assert_int_equal(f->nreports, 1);
	carol = dial(f, 2, f->spub);
	assert_int_equal(handshake(f, &carol, 1000 + 60000, &v), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
	assert_int_equal(f->nreports, 2);
	assert_non_null(strstr(f->reports[1], "(refused 3 more times since the last report)"));
	hang_up(&carol);
	/* The wrong server key never reaches the handler. */
	char opub[41], osec[41];
	zmq_curve_keypair(opub, osec);
	client_t lost = dial(f, 0, opub);
	assert_int_equal(handshake(f, &lost, 1000, &v), ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
	hang_up(&lost);
	hang_up(&alice);
	hang_up(&root);
}

static void test_reload(void **state)
{
	fx_t *f = *state;
	start(f, f->allow, NULL);
	uint32_t v;
	char user[64], role[64];
	client_t carol = dial(f, 2, f->spub);
	assert_int_equal(handshake(f, &carol, 1000, &v), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
	hang_up(&carol);
	client_t alice = dial(f, 0, f->spub);
	assert_int_equal(handshake(f, &alice, 1000, &v), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
	roundtrip(f, &alice, user, role);
	assert_string_equal(role, "admin"); /* no admin list: every key has every right */
	/* Carol's key added, alice's removed: carol gets in; alice's
	 * connection stays (a reload touches no connection made). */
	mq_err_t err;
	put_key(f->allow, "carol", f->pub[2]);
	char path[200];
	snprintf(path, sizeof path, "%s/alice", f->allow);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mq_zap_reload(f->zap, &err), 0);
	assert_int_equal(mq_zap_keys(f->zap), 1);
	carol = dial(f, 2, f->spub);
	assert_int_equal(handshake(f, &carol, 1000, &v), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
	roundtrip(f, &carol, user, role);
	assert_string_equal(user, "carol");
	roundtrip(f, &alice, user, role);
	assert_string_equal(user, "alice");
	client_t alice2 = dial(f, 0, f->spub);
	assert_int_equal(handshake(f, &alice2, 1000, &v), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
	hang_up(&alice2);
	/* A list that no longer reads: an error, and carol still gets in. */
	put_key(f->allow, "broken", "not a key");
	assert_int_equal(mq_zap_reload(f->zap, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "broken': holds no public key"));
	assert_int_equal(mq_zap_keys(f->zap), 1);
	client_t carol2 = dial(f, 2, f->spub);
	assert_int_equal(handshake(f, &carol2, 1000, &v), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
	hang_up(&carol2);
	hang_up(&carol);
	hang_up(&alice);
}

static void test_open_all(void **state)
{
	fx_t *f = *state;
	start(f, NULL, NULL); /* no list: any key, as an admin */
	assert_int_equal(mq_zap_keys(f->zap), -1);
	uint32_t v;
	char user[64], role[64];
	client_t carol = dial(f, 2, f->spub);
	assert_int_equal(handshake(f, &carol, 1000, &v), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
	roundtrip(f, &carol, user, role);
	assert_string_equal(role, "admin");
	hang_up(&carol);
	/* A bad list at open: no handler. */
	mq_zap_t *z = NULL;
	mq_err_t err;
	put_key(f->allow, "broken", "not a key");
	mq_zap_opts_t o = {.allow_dir = f->allow};
	void *ctx2 = zmq_ctx_new();
	assert_int_equal(mq_zap_open(ctx2, &o, &z, &err), -MQ_EINVAL);
	assert_null(z);
	zmq_ctx_term(ctx2);
}

/* Requests libzmq would not send, straight to the handler: each is
 * answered (refused), and a good one after them still is. */
static void test_odd_requests(void **state)
{
	fx_t *f = *state;
	start(f, f->allow, NULL);
	void *req = zmq_socket(f->ctx, ZMQ_REQ);
	int zero = 0;
	zmq_setsockopt(req, ZMQ_LINGER, &zero, sizeof zero);
	assert_int_equal(zmq_connect(req, "inproc://zeromq.zap.01"), 0);
	uint8_t key[32];
	mq_curve_parse(f->pub[0], key);
	struct {
		const char *what;
		int n;
		const char *frames[9];
		const char *want;
	} cases[] = {
		{"one frame", 1, {"1.0"}, "500"},
		{"PLAIN", 7, {"1.0", "7", "mq", "127.0.0.1", "", "PLAIN", "user"}, "400"},
		{"version 2.0", 7, {"2.0", "8", "mq", "127.0.0.1", "", "CURVE", NULL}, "400"},
		{"nine frames", 9, {"1.0", "9", "mq", "127.0.0.1", "", "CURVE", NULL, "x", "y"}, "400"},
		{"short key", 7, {"1.0", "10", "mq", "127.0.0.1", "", "CURVE", "short"}, "400"},
		{"alice", 7, {"1.0", "11", "mq", "127.0.0.1", "", "CURVE", NULL}, "200"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (int k = 0; k < cases[i].n; k++) {
			const char *p = cases[i].frames[k];
			size_t len = p ? strlen(p) : 32;
			assert_int_equal(zmq_send(req, p ? (const void *)p : key, len, k + 1 < cases[i].n ? ZMQ_SNDMORE : 0),
					 (int)len);
		}
		zmq_pollitem_t it = {mq_zap_socket(f->zap), 0, ZMQ_POLLIN, 0};
		assert_int_equal(zmq_poll(&it, 1, 5000), 1);
		assert_int_equal(mq_zap_serve(f->zap, 1000), 1);
		char frames[6][64];
		int n = 0, more = 1;
		while (more && n < 6) {
			int len = zmq_recv(req, frames[n], sizeof frames[n] - 1, 0);
			assert_true(len >= 0);
			frames[n][len] = 0;
			size_t sz = sizeof more;
			zmq_getsockopt(req, ZMQ_RCVMORE, &more, &sz);
			n++;
		}
		assert_int_equal(n, 6);
		assert_string_equal(frames[0], "1.0");
		if (cases[i].n > 1)
			assert_string_equal(frames[1], cases[i].frames[1]);
		if (strcmp(frames[2], cases[i].want))
			fail_msg("%s: status %s, wanted %s", cases[i].what, frames[2], cases[i].want);
	}
	zmq_close(req);
}

int main(void)
{
	if (!mq_curve_available()) {
		fprintf(stderr, "test_zap: this libzmq has no CURVE; nothing to test\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_allow_and_refuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_requests, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
