/*
 * client.c -- ZeroMQ client side of wire.h: connection, control calls,
 * the pipelined producer, the overlapped fetch and group membership.
 *
 * Sockets.  Two DEALERs to one endpoint (see client.h for why).  Both
 * set ZMQ_LINGER 0 (every request that matters is acknowledged by the
 * protocol, so nothing is worth waiting for at close), ZMQ_IMMEDIATE 1
 * (a message is queued only on a live connection: while the broker is
 * away sends report EAGAIN and we keep the request ourselves instead of
 * piling stale copies into a pipe that a reconnect would flush to the
 * broker), and ZeroMQ heartbeats so that a broker that vanished without
 * closing TCP is noticed in seconds and reconnected to.  Sends are
 * always ZMQ_DONTWAIT; every wait is a zmq_poll that wakes on the
 * socket itself (POLLIN for a reply; POLLOUT, which ZMQ_IMMEDIATE keeps
 * off until a connection is up, for a request that could not go out
 * yet) or on a real deadline (a resend, the timeout), never on a period.
 *
 * Connection.  A monitor on the control socket (an inproc PAIR) tells
 * when a connection came up, was lost, or a connect failed.  A connect
 * that fails before the broker was ever reached means nothing listens
 * there: the call fails at once with -MQ_ECONNECT, and one connect of
 * our own (off the normal path) names why, refused or an unknown host.
 * Once reached, a failure is a restart: waited for up to the timeout,
 * and what was in flight on the lost connection is sent again as soon
 * as the socket can take it.
 *
 * Retries.  A request unanswered for resend_ms is sent again: control
 * requests with the same correlation id (either reply will do), batches
 * with the same producer id and sequence (the broker answers repeats
 * with duplicate = true).  Only silence for the whole timeout fails a
 * call.  Correlation ids come from one counter per client, wrapping and
 * skipping 0, so a late reply to an earlier request never matches.
 *
 * Lite.  A client opened with opts.lite (a one-shot mq-pub) makes one
 * stream connection of its own and speaks ZMTP on it (zmtp.h): no
 * ZeroMQ context, no I/O threads, no libzmq loaded at all where the
 * program links lib/zmqload.c.  Control calls and batches share that
 * connection, one call at a time (replies are matched by id as ever).
 * A refused dial before the broker was ever reached fails at once as
 * above; a connection lost later is dialled again (100 ms, doubling to
 * 1 s) and what was in flight sent again, within the timeout.  A FETCH
 * reply that comes while a control call waits is kept for the fetch
 * (the stash).  Transaction checks need a full client.
 *
 * Producer window.  Batches live in a ring of slots in send order; a
 * slot keeps its bytes until the broker answered for it.  Acks normally
 * arrive in order; one that arrives early frees its slot, and the ring
 * head moves past freed slots.
 */
#include "client.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "curve.h"
#include "store.h"
#include "zmtp.h"

#define HB_IVL_MS 1000
#define HB_TIMEOUT_MS 3000
#define HWM 10000
#define MON_EVENTS                                                                                   \
	(ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_DISCONNECTED |                  \
	 ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |                      \
	 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
#define PROBE_MS 200 /* a failed connect is tried again, at most this long, to name why */
#define LITE_REDIAL_MIN_MS 100
#define LITE_REDIAL_MAX_MS 1000

struct mq_client {
	void *ctx;
	void *ctl;
	void *data;
	char endpoint[512];
	char name[64];
	int64_t timeout_ms;
	int64_t resend_ms;
	volatile sig_atomic_t *interrupt;
	/* The control socket's connection, from its monitor (conn_events). */
	void *mon;        /* PAIR receiving the control socket's events */
	int reached;      /* a connection was up once: a failure now is a restart */
	uint32_t downs;   /* connections lost so far: what was sent on one is gone */
	/* The data socket's own: its connection may be lost and made again
	 * apart from the control socket's, and what a fetch or a batch sent
	 * into a connection about to go is lost with it. */
	void *dmon;
	uint32_t ddowns;
	/* Lost and not connected again: a send now could still go into the
	 * old connection's pipe (libzmq tells the loss before it drops the
	 * pipe) and be lost with it, so the data socket sends nothing until
	 * a new connection is up. */
	int data_dead;
	int64_t down_since; /* mono ms the connection was lost, 0 while it is up */
	/* CurveZMQ keys (Z85), curve 0 without; the server closing the
	 * connection during a handshake is remembered for the timeout's
	 * message (a wrong server key looks like that and nothing else). */
	int curve;
	char curve_server[MQ_CURVE_KEY_TEXT + 1], curve_public[MQ_CURVE_KEY_TEXT + 1],
		curve_secret[MQ_CURVE_KEY_TEXT + 1];
	int handshake_lost;
	int watch_fd; /* < 0: none; see mq_client_watch */
	int wake_fd;  /* < 0: none; see mq_client_wake_on */
	short watch_events;
	uint32_t last_id;
	/* the one outstanding FETCH */
	mq_buf_t freq;
	uint32_t fetch_id;
	int fetch_state; /* 0 none, 1 to send, 2 sent */
	uint32_t fetch_wait;
	int64_t fetch_sent, fetch_first;
	uint32_t fetch_downs; /* c->ddowns when it was sent */
	uint64_t expired; /* records the broker skipped as expired in fetch replies */
	/* lite (opts.lite): one direct connection, NULL while there is none */
	int lite;
	mq_zmtp_t *z;
	int64_t next_dial, dial_ivl;
	/* lite: the FETCH reply that came while a control call waited (one
	 * connection carries both), kept for mq_client_fetch_recv */
	uint8_t *stash;
	mq_zmtp_frame_t *stash_fr;
	int stash_n;
};

/* ---- connection ---- */

const char *mq_client_default_endpoint(const char *endpoint)
{
	if (endpoint && *endpoint)
		return endpoint;
	const char *e = getenv("MQ_BROKER");
	return e && *e ? e : MQ_DEFAULT_BROKER;
}

#define EP_FORMS "use HOST:PORT, :PORT, tcp://HOST:PORT or ipc:///PATH"

int mq_endpoint_normalize(const char *in, char *out, size_t size, mq_err_t *err)
{
	int n;
	if (strstr(in, "://")) {
		n = snprintf(out, size, "%s", in);
	} else {
		const char *colon = strrchr(in, ':');
		if (!colon)
			return mq_err_set(err, MQ_EINVAL, "broker endpoint '%.200s': no port (" EP_FORMS ")", in);
		const char *port = colon + 1;
		char *end;
		errno = 0;
		unsigned long v = strtoul(port, &end, 10);
		if (!*port || *end || *port < '0' || *port > '9' || errno || v < 1 || v > 65535)
			return mq_err_set(err, MQ_EINVAL, "broker endpoint '%.200s': port '%.20s' is not a number "
					  "from 1 to 65535 (" EP_FORMS ")", in, port);
		size_t hl = (size_t)(colon - in);
		int bracketed = hl >= 2 && in[0] == '[' && in[hl - 1] == ']';
		/* A bare IPv6 address has colons of its own: brackets tell them apart. */
		if (!bracketed && memchr(in, ':', hl))
			return mq_err_set(err, MQ_EINVAL, "broker endpoint '%.200s': write an IPv6 address in "
					  "brackets, e.g. [::1]:7733 (" EP_FORMS ")", in);
		if (hl == 0)
			n = snprintf(out, size, "tcp://127.0.0.1:%lu", v);
		else
			n = snprintf(out, size, "tcp://%.*s:%lu", (int)hl, in, v);
	}
	if (n < 0 || (size_t)n >= size)
		return mq_err_set(err, MQ_EINVAL, "broker endpoint '%.100s...': too long", in);
	return 0;
}

static uint32_t new_id(mq_client_t *c)
{
	if (++c->last_id == 0)
		c->last_id = 1;
	return c->last_id;
}

static int zerr(mq_err_t *err, const char *what, const char *ep)
{
	return mq_err_set(err, MQ_EIO, "%s %s: %s", what, ep, zmq_strerror(zmq_errno()));
}

static void *open_socket(mq_client_t *c, void **monitor, mq_err_t *err, int *rc)
{
	void *s = zmq_socket(c->ctx, ZMQ_DEALER);
	if (!s) {
		*rc = zerr(err, "cannot create a socket for", c->endpoint);
		return NULL;
	}
	const mq_sockopt_t opts[] = {
		{ZMQ_LINGER, "ZMQ_LINGER", 0, 0},
		{ZMQ_IMMEDIATE, "ZMQ_IMMEDIATE", 1, 0},
		{ZMQ_SNDHWM, "ZMQ_SNDHWM", HWM, 0},
		{ZMQ_RCVHWM, "ZMQ_RCVHWM", HWM, 0},
		{ZMQ_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL", HB_IVL_MS, 0},
		{ZMQ_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TIMEOUT", HB_TIMEOUT_MS, 0},
		{ZMQ_HEARTBEAT_TTL, "ZMQ_HEARTBEAT_TTL", c->timeout_ms > 6000000 ? 6000000 : c->timeout_ms, 0},
		{ZMQ_RECONNECT_IVL, "ZMQ_RECONNECT_IVL", 100, 0},
		{ZMQ_RECONNECT_IVL_MAX, "ZMQ_RECONNECT_IVL_MAX", 1000, 0},
		{ZMQ_IPV6, "ZMQ_IPV6", mq_endpoint_is_ipv6(c->endpoint), 0},
	};
	if (!(*rc = mq_wire_sockopts(s, opts, sizeof(opts) / sizeof(opts[0]), err)) && c->curve &&
	    (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, c->curve_server, MQ_CURVE_KEY_TEXT) ||
	     zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, c->curve_public, MQ_CURVE_KEY_TEXT) ||
	     zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, c->curve_secret, MQ_CURVE_KEY_TEXT)))
		*rc = mq_err_set(err, MQ_EINVAL, "cannot use the CurveZMQ keys for %s: %s", c->endpoint,
				 zmq_strerror(zmq_errno()));
	if (*rc) {
		zmq_close(s);
		return NULL;
	}
	/* The monitor goes first so that no event of the connect is missed.
	 * Each client has a ZeroMQ context of its own: the inproc name is its. */
	const char *mname = monitor == &c->mon ? "inproc://mq-client-monitor" : "inproc://mq-client-monitor-data";
	if (zmq_socket_monitor(s, mname, MON_EVENTS) != 0 || !(*monitor = zmq_socket(c->ctx, ZMQ_PAIR)) ||
	    zmq_setsockopt(*monitor, ZMQ_LINGER, &(int){0}, sizeof(int)) != 0 || zmq_connect(*monitor, mname) != 0) {
		*rc = zerr(err, "cannot watch the connection to", c->endpoint);
		zmq_close(s);
		return NULL;
	}
	if (zmq_connect(s, c->endpoint) != 0) {
		*rc = mq_err_set(err, MQ_EINVAL, "broker endpoint '%s': %s (use e.g. tcp://127.0.0.1:7733 or ipc:///path)",
				 c->endpoint, zmq_strerror(zmq_errno()));
		zmq_close(s);
		return NULL;
	}
	return s;
}

/* A setting, from the option or else the environment: NULL when
 * neither is set (set but empty is not set). */
static const char *setting(const char *opt, const char *env, const char **from, const char *optname)
{
	if (opt) {
		*from = optname;
		return opt;
	}
	const char *v = getenv(env);
	*from = env;
	return v && *v ? v : NULL;
}

/* The CurveZMQ keys of o (or of the environment) into c.  Settings
 * that cannot take effect are errors, never ignored. */
static int curve_keys(mq_client_t *c, const mq_client_opts_t *o, mq_err_t *err)
{
	const char *sfrom, *kfrom;
	const char *server = setting(o->curve_server, "MQ_CURVE_SERVER", &sfrom, "--curve-server");
	const char *secret = setting(o->curve_secret, "MQ_CURVE_SECRET", &kfrom, "--curve-secret");
	if (!server && !secret)
		return 0;
	if (!server)
		return mq_err_set(err, MQ_EINVAL, "%s is set but not the broker's public key: give --curve-server KEY "
				  "or set MQ_CURVE_SERVER (the key mq-admin keygen wrote for the broker)", kfrom);
	if (!mq_zmtp_supports(c->endpoint))
		return mq_err_set(err, MQ_EINVAL, "%s is set, but the broker endpoint %s cannot use CurveZMQ (use "
				  "tcp://HOST:PORT or ipc://PATH, or unset it)", sfrom, c->endpoint);
	if (!mq_curve_available())
		return mq_err_set(err, MQ_EINVAL, "%s is set, but this libzmq has no CurveZMQ (it was built without "
				  "libsodium): install one that has it", sfrom);
	int rc;
	if ((rc = mq_curve_server_key(server, sfrom, c->curve_server, err)))
		return rc;
	if (secret) {
		if ((rc = mq_curve_read_key(secret, 1, kfrom, c->curve_secret, err)) ||
		    (rc = mq_curve_public_of(c->curve_secret, c->curve_public, err)))
			return rc;
	} else if (zmq_curve_keypair(c->curve_public, c->curve_secret) != 0) {
		return mq_err_set(err, MQ_EIO, "cannot make a CurveZMQ key pair: %s", zmq_strerror(zmq_errno()));
	}
	c->curve = 1;
	return 0;
}

int mq_client_open(const mq_client_opts_t *o, mq_client_t **out, mq_err_t *err)
{
	int rc = 0;
	mq_client_t *c = calloc(1, sizeof *c);
	if (!c)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	const char *ep = mq_client_default_endpoint(o->endpoint);
	if (!strncmp(ep, "kafka://", 8)) {
		free(c);
		return mq_err_set(err, MQ_EINVAL, "broker endpoint '%.200s': Kafka clusters are not available in this "
				  "version (use an mq-serve endpoint such as tcp://127.0.0.1:7733)", ep);
	}
	if ((rc = mq_endpoint_normalize(ep, c->endpoint, sizeof c->endpoint, err))) {
		free(c);
		return rc;
	}
	if ((rc = curve_keys(c, o, err))) {
		explicit_bzero(c->curve_secret, sizeof c->curve_secret);
		free(c);
		return rc;
	}
	snprintf(c->name, sizeof c->name, "%s", o->name ? o->name : "mq");
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : MQ_DEFAULT_TIMEOUT_MS;
	c->interrupt = o->interrupt;
	c->watch_fd = -1;
	c->wake_fd = -1;
	c->resend_ms = c->timeout_ms / 5;
	if (c->resend_ms < 200)
		c->resend_ms = 200;
	if (c->resend_ms > 2000)
		c->resend_ms = 2000;
	if (o->lite && !c->curve && mq_zmtp_supports(c->endpoint)) {
		c->lite = 1; /* dialled by the first call */
		c->dial_ivl = LITE_REDIAL_MIN_MS;
		*out = c;
		return 0;
	}
	/* A client process makes few connections: one I/O thread is plenty. */
	c->ctx = zmq_ctx_new();
	if (!c->ctx) {
		rc = zerr(err, "cannot start ZeroMQ for", ep);
		goto err;
	}
	if (!(c->ctl = open_socket(c, &c->mon, err, &rc)) || !(c->data = open_socket(c, &c->dmon, err, &rc)))
		goto err;
	*out = c;
	return 0;
err:
	mq_client_close(c);
	return rc;
}

void mq_client_close(mq_client_t *c)
{
	if (!c)
		return;
	mq_zmtp_close(c->z);
	free(c->stash);
	free(c->stash_fr);
	if (c->mon)
		zmq_close(c->mon);
	if (c->dmon)
		zmq_close(c->dmon);
	if (c->ctl)
		zmq_close(c->ctl);
	if (c->data)
		zmq_close(c->data);
	if (c->ctx)
		zmq_ctx_term(c->ctx);
	mq_buf_free(&c->freq);
	explicit_bzero(c->curve_secret, sizeof c->curve_secret);
	free(c);
}

uint64_t mq_client_expired(const mq_client_t *c)
{
	return c->expired;
}

const char *mq_client_endpoint(const mq_client_t *c)
{
	return c->endpoint;
}

int64_t mq_client_timeout(const mq_client_t *c)
{
	return c->timeout_ms;
}

static int timed_out(mq_client_t *c, const char *what, mq_err_t *err)
{
	(void)what; /* the request does not help the reader: the broker is away */
	return mq_err_set(err, MQ_ETIMEDOUT, "broker %s did not answer within %lld%s%s", c->endpoint,
			  (long long)(c->timeout_ms % 1000 ? c->timeout_ms : c->timeout_ms / 1000),
			  c->timeout_ms % 1000 ? "ms" : "s",
			  c->curve && c->handshake_lost ? " (it closed the connection during the CurveZMQ handshake: "
							  "is --curve-server the broker's public key?)" : "");
}

static void lite_lost(mq_client_t *c);
static int64_t after(int64_t t, int64_t ms);

/* Send one or two frames without blocking: 1 sent, 0 not now (no live
 * connection or pipe full), < 0 error.  Lite: written on the connection
 * (waiting while the kernel's buffer is full), 0 when there is none. */
static int send_frames(mq_client_t *c, void *s, const void *a, size_t an, const void *b, size_t bn, mq_err_t *err)
{
	if (c->lite) {
		if (!c->z)
			return 0;
		mq_zmtp_frame_t f[2] = {{a, an}, {b, bn}};
		mq_err_t e;
		if (mq_zmtp_send(c->z, f, b ? 2 : 1, c->timeout_ms == MQ_TIMEOUT_FOREVER ? -1 : after(mq_mono_ms(), c->timeout_ms),
				 &e)) {
			lite_lost(c); /* sent again on the next connection */
			return 0;
		}
		return 1;
	}
	if (s == c->data && c->data_dead)
		return 0;
	if (zmq_send(s, a, an, ZMQ_DONTWAIT | (b ? ZMQ_SNDMORE : 0)) < 0) {
		if (zmq_errno() == EAGAIN || zmq_errno() == EINTR)
			return 0;
		return mq_err_set(err, MQ_EIO, "sending to the broker: %s", zmq_strerror(zmq_errno()));
	}
	/* The rest of a multipart message is accepted once its first frame was. */
	if (b && zmq_send(s, b, bn, 0) < 0)
		return mq_err_set(err, MQ_EIO, "sending to the broker: %s", zmq_strerror(zmq_errno()));
	return 1;
}

/* Drop the remaining frames of a message. */
static void drain_more(void *s)
{
	int more = 0;
	size_t sz = sizeof more;
	zmq_getsockopt(s, ZMQ_RCVMORE, &more, &sz);
	while (more) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, s, 0) < 0) {
			zmq_msg_close(&m);
			return;
		}
		more = zmq_msg_more(&m);
		zmq_msg_close(&m);
	}
}

/* t + ms, where a timeout of MQ_TIMEOUT_FOREVER never comes. */
static int64_t after(int64_t t, int64_t ms)
{
	return ms >= INT64_MAX - t ? INT64_MAX : t + ms;
}

/* Why connecting to the endpoint fails, found by trying once ourselves
 * (only after ZeroMQ saw a connect fail, so never on the way of a
 * working connection): 0 with why filled, or 1 when the connect worked
 * this time (the broker just came up: ZeroMQ will connect too). */
static int probe(const char *ep, char *why, size_t n)
{
	char direct[512];
	const char *semi = strchr(ep, ';');
	if (!strncmp(ep, "tcp://", 6) && semi) { /* tcp://SOURCE;HOST:PORT */
		snprintf(direct, sizeof direct, "tcp://%s", semi + 1);
		ep = direct;
	}
	int fd = mq_zmtp_dial(ep, after(mq_mono_ms(), PROBE_MS), why, n);
	if (fd >= 0) {
		close(fd);
		return 1;
	}
	if (fd == -MQ_EINVAL)
		snprintf(why, n, "connection failed");
	return 0;
}

/* The error for a broker never reached: why says what the dial met. */
static int connect_failed(mq_client_t *c, const char *why, mq_err_t *err)
{
	char w[320];
	snprintf(w, sizeof w, "%s", why); /* why may be err->msg */
	return mq_err_set(err, MQ_ECONNECT, "cannot connect to %s: %s (%s)", c->endpoint, w,
			  strncmp(w, "host '", 6) ? "is mq-serve running? set -b or MQ_BROKER"
						  : "check the host in -b or MQ_BROKER");
}

/* Take the control socket's connection events (never blocks).  0, or
 * -MQ_ECONNECT when a connect failed before the broker was ever reached. */
/* The next event of a monitor: 1 with its kind, 0 none waiting. */
static int mon_event(void *mon, uint16_t *what, uint32_t *value)
{
	zmq_msg_t ev;
	zmq_msg_init(&ev);
	if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&ev);
		return 0;
	}
	*what = 0;
	*value = 0;
	if (zmq_msg_size(&ev) >= 6) {
		memcpy(what, zmq_msg_data(&ev), 2);
		memcpy(value, (const uint8_t *)zmq_msg_data(&ev) + 2, 4);
	}
	zmq_msg_close(&ev);
	drain_more(mon); /* the endpoint: ours */
	return 1;
}

/* A handshake that failed: 0 when it is worth trying again (the broker
 * closed the connection during it: a restart, or a wrong server key),
 * else -MQ_ECONNECT saying which setting to fix. */
static int handshake_failed(mq_client_t *c, uint16_t what, uint32_t value, mq_err_t *err)
{
	if (what == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
		return mq_err_set(err, MQ_ECONNECT, "cannot connect to %s: the broker refused this client's CurveZMQ "
				  "key (status %u): is its public key %s in a file in mq-serve's --curve-allow "
				  "directory (then SIGHUP mq-serve)?", c->endpoint, (unsigned)value, c->curve_public);
	if (what == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
		return c->curve ? mq_err_set(err, MQ_ECONNECT, "cannot connect to %s: the broker does not use CurveZMQ "
					     "(it runs without --curve-secret), but a CurveZMQ key was given: drop "
					     "--curve-server/--curve-secret and MQ_CURVE_SERVER/MQ_CURVE_SECRET, or "
					     "start mq-serve with --curve-secret", c->endpoint)
				: mq_err_set(err, MQ_ECONNECT, "cannot connect to %s: the broker requires CurveZMQ: give "
					     "--curve-server KEY (the broker's public key) and --curve-secret FILE (this "
					     "client's secret key), or set MQ_CURVE_SERVER and MQ_CURVE_SECRET",
					     c->endpoint);
	if (what == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
		return mq_err_set(err, MQ_ECONNECT, "cannot connect to %s: the handshake failed (protocol error %#x: not "
				  "an mq-serve, or a damaged connection)", c->endpoint, (unsigned)value);
	c->handshake_lost = 1;
	char mech[21];
	if (c->curve && !c->reached && mq_zmtp_mechanism(c->endpoint, -1, mech) && !strcmp(mech, "NULL"))
		return handshake_failed(c, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH,
					err); /* a broker without CurveZMQ drops a CURVE client just so */
	if (c->curve && !c->reached)
		return mq_err_set(err, MQ_ECONNECT, "cannot connect to %s: the broker closed the connection during the "
				  "CurveZMQ handshake: is --curve-server (or MQ_CURVE_SERVER) the broker's public key "
				  "(the one mq-admin keygen wrote beside its --curve-secret)?", c->endpoint);
	return 0;
}

static int conn_events(mq_client_t *c, mq_err_t *err)
{
	uint16_t what;
	uint32_t value;
	int rc;
	while (mon_event(c->dmon, &what, &value)) {
		if (what == ZMQ_EVENT_DISCONNECTED) {
			c->ddowns++;
			c->data_dead = 1;
		} else if (what == ZMQ_EVENT_CONNECTED) {
			c->data_dead = 0;
		} else if ((what & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
				    ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)) &&
			   (rc = handshake_failed(c, what, value, err))) {
			return rc;
		}
	}
	while (mon_event(c->mon, &what, &value)) {
		if (what & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
			    ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)) {
			if ((rc = handshake_failed(c, what, value, err)))
				return rc;
		} else if (what == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
			c->reached = 1;
			c->handshake_lost = 0;
		} else if (what == ZMQ_EVENT_CONNECTED) {
			if (!c->curve) /* with CurveZMQ, reached once the handshake is through */
				c->reached = 1;
			c->down_since = 0;
		} else if (what == ZMQ_EVENT_DISCONNECTED) {
			c->downs++;
			if (!c->down_since)
				c->down_since = mq_mono_ms();
		} else if (what == ZMQ_EVENT_CONNECT_RETRIED && !c->reached) {
			char why[320];
			if (probe(c->endpoint, why, sizeof why))
				continue;
			return connect_failed(c, why, err);
		}
	}
	return 0;
}

/* Wait up to ms (< 0: no limit) for events (ZMQ_POLLIN, ZMQ_POLLOUT) on
 * s, taking the connection's events meanwhile, and with watch, ending
 * early (-MQ_EAGAIN) when the watched descriptor (mq_client_watch) is
 * ready.  The events that came (> 0), 0 when ms ran out, < 0 error. */
static int lite_wait(mq_client_t *c, short events, int watch, int64_t ms, mq_err_t *err);

static int wait_sock(mq_client_t *c, void *s, short events, int watch, int64_t ms, mq_err_t *err)
{
	if (c->lite)
		return lite_wait(c, events, watch, ms, err);
	int64_t until = ms < 0 ? INT64_MAX : after(mq_mono_ms(), ms);
	uint32_t downs = c->downs, ddowns = c->ddowns;
	int dead = c->data_dead;
	for (;;) {
		int rc = conn_events(c, err);
		if (rc)
			return rc;
		if (c->downs != downs || c->ddowns != ddowns || c->data_dead != dead)
			return 0; /* a connection was lost or made: what the caller does changes */
		short ev = s == c->data && c->data_dead ? (short)(events & ~ZMQ_POLLOUT) : events;
		zmq_pollitem_t it[5] = {{.socket = s, .events = ev},
					{.socket = c->mon, .events = ZMQ_POLLIN},
					{.socket = c->dmon, .events = ZMQ_POLLIN}};
		int n = 3, wi = -1, si = -1;
		if (watch && c->watch_fd >= 0) {
			wi = n;
			it[n++] = (zmq_pollitem_t){.fd = c->watch_fd, .events = c->watch_events};
		}
		if (c->wake_fd >= 0) {
			si = n;
			it[n++] = (zmq_pollitem_t){.fd = c->wake_fd, .events = ZMQ_POLLIN};
		}
		int64_t now = mq_mono_ms(), left = until == INT64_MAX ? -1 : until < now ? 0 : until - now;
		if (left > INT32_MAX)
			left = INT32_MAX;
		int r = zmq_poll(it, n, (long)left);
		if (r < 0) {
			if (zmq_errno() == EINTR)
				return mq_err_set(err, MQ_EAGAIN, "interrupted");
			return mq_err_set(err, MQ_EIO, "waiting for the broker: %s", zmq_strerror(zmq_errno()));
		}
		if (si >= 0 && it[si].revents) {
			mq_drain_fd(c->wake_fd);
			return mq_err_set(err, MQ_EAGAIN, "interrupted");
		}
		if (wi >= 0 && it[wi].revents)
			return mq_err_set(err, MQ_EAGAIN, "descriptor %d is ready", c->watch_fd);
		if (it[0].revents & ev)
			return it[0].revents & ev;
		if (!it[1].revents && !it[2].revents && (r == 0 || mq_mono_ms() >= until))
			return 0;
	}
}

/* A received reply: the frame stays alive while msg points into it. */
typedef struct reply {
	zmq_msg_t frame;
	uint8_t *own; /* lite: the frame's bytes, copied (then frame is unused) */
	mq_wire_msg_t msg;
	int live;
} reply_t;

static void reply_free(reply_t *r)
{
	if (r->live) {
		mq_wire_msg_free(&r->msg);
		if (r->own)
			free(r->own);
		else
			zmq_msg_close(&r->frame);
		r->own = NULL;
		r->live = 0;
	}
}

/* Lite: take one whole message if it arrived; only its first frame is
 * kept.  1 taken, 0 none (a lost connection is noted: lite_lost). */
/* Lite: a copy of message f[0..n) in one allocation: *buf owns the
 * bytes, *out the frames pointing into it.  0 or -MQ_ENOMEM. */
static int lite_copy(const mq_zmtp_frame_t *f, int n, uint8_t **buf, mq_zmtp_frame_t **out)
{
	size_t total = 1;
	for (int i = 0; i < n; i++)
		total += f[i].len;
	*buf = malloc(total);
	*out = malloc((size_t)n * sizeof **out);
	if (!*buf || !*out) {
		free(*buf);
		free(*out);
		*buf = NULL;
		*out = NULL;
		return -MQ_ENOMEM;
	}
	size_t at = 0;
	for (int i = 0; i < n; i++) {
		memcpy(*buf + at, f[i].p, f[i].len);
		(*out)[i] = (mq_zmtp_frame_t){*buf + at, f[i].len};
		at += f[i].len;
	}
	return 0;
}

/* Lite: the id of a message's header frame, or 0 when it has none. */
static uint32_t lite_id(const mq_zmtp_frame_t *f)
{
	mq_wire_msg_t m;
	uint32_t id = mq_wire_parse(f[0].p, f[0].len, &m, NULL) < 0 ? 0 : m.id;
	mq_wire_msg_free(&m);
	return id;
}

/* Take one whole message if it arrived; only its first frame is kept,
 * except that the outstanding FETCH's reply is kept whole for
 * mq_client_fetch_recv (the stash).  1 taken, 0 none (a lost
 * connection is noted: lite_lost). */
/* The next whole message on the connection: 1 with f[0..n) (into its
 * buffers until the next take), 0 none yet or the connection lost. */
static int lite_take(mq_client_t *c, const mq_zmtp_frame_t **f, int *n)
{
	mq_err_t e;
	if (!c->z)
		return 0;
	int rc = mq_zmtp_recv(c->z, f, n, &e);
	if (rc < 0)
		lite_lost(c);
	return rc > 0;
}

static int lite_recv(mq_client_t *c, reply_t *r)
{
	for (;;) {
		const mq_zmtp_frame_t *f;
		int n = 0;
		if (!lite_take(c, &f, &n))
			return 0;
		if (c->fetch_state == 2 && !c->stash && lite_id(f) == c->fetch_id) {
			if (lite_copy(f, n, &c->stash, &c->stash_fr) == 0)
				c->stash_n = n;
			continue;
		}
		if (!(r->own = malloc(f[0].len ? f[0].len : 1)))
			return 0;
		memcpy(r->own, f[0].p, f[0].len);
		if (mq_wire_parse(r->own, f[0].len, &r->msg, NULL) < 0) {
			mq_wire_msg_free(&r->msg);
			free(r->own);
			r->own = NULL;
			return 0;
		}
		r->live = 1;
		return 1;
	}
}

/* Receive one message's first frame from s (readable) and parse it;
 * extra frames stay for the caller unless drop_more.  1 parsed, 0 not
 * msgpack (dropped). */
static int recv_reply(mq_client_t *c, void *s, reply_t *r, int drop_more)
{
	r->own = NULL;
	if (c->lite)
		return lite_recv(c, r);
	zmq_msg_init(&r->frame);
	if (zmq_msg_recv(&r->frame, s, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&r->frame);
		return 0;
	}
	if (mq_wire_parse(zmq_msg_data(&r->frame), zmq_msg_size(&r->frame), &r->msg, NULL) < 0) {
		mq_wire_msg_free(&r->msg);
		zmq_msg_close(&r->frame);
		drain_more(s);
		return 0;
	}
	if (drop_more)
		drain_more(s);
	r->live = 1;
	return 1;
}

/* ---- lite: one direct connection (zmtp.h) ---- */

/* The connection is gone, and what was sent on it with it. */
static void lite_lost(mq_client_t *c)
{
	mq_zmtp_close(c->z);
	c->z = NULL;
	c->downs++;
	c->ddowns++;
	c->next_dial = c->down_since = mq_mono_ms();
}

/* Dial by deadline (INT64_MAX: none): 0 connected or to be tried again
 * at next_dial, < 0 what ends the call (nothing listens where nothing
 * ever did, or what listens is not an mq-serve we can talk to). */
static int lite_dial(mq_client_t *c, int64_t deadline, mq_err_t *err)
{
	mq_err_t e;
	int rc = mq_zmtp_connect(c->endpoint, deadline == INT64_MAX ? -1 : deadline, MQ_BATCH_MAX_BYTES + 65536,
				 &c->z, &e);
	if (!rc) {
		c->reached = 1;
		c->down_since = 0;
		c->dial_ivl = LITE_REDIAL_MIN_MS;
		return 0;
	}
	c->z = NULL;
	if (rc == -MQ_EPROTO || rc == -MQ_ENOMEM)
		return mq_err_set(err, -rc, "cannot connect to %s: %s", c->endpoint, e.msg);
	if (rc == -MQ_EIO)
		c->reached = 1; /* it listened, then went away: a restart */
	if (rc == -MQ_ECONNECT && !c->reached)
		return connect_failed(c, e.msg, err);
	/* A restart (or a timeout): again after a pause, as libzmq would. */
	c->next_dial = after(mq_mono_ms(), c->dial_ivl);
	c->dial_ivl = c->dial_ivl * 2 > LITE_REDIAL_MAX_MS ? LITE_REDIAL_MAX_MS : c->dial_ivl * 2;
	return 0;
}

static short to_poll(short zev)
{
	return (short)((zev & ZMQ_POLLIN ? POLLIN : 0) | (zev & ZMQ_POLLOUT ? POLLOUT : 0) |
		       (zev & ZMQ_POLLERR ? POLLERR : 0));
}

/* wait_sock for a lite client: the same contract, on the connection's
 * descriptor (dialling it first when there is none and it is time). */
static int lite_wait(mq_client_t *c, short events, int watch, int64_t ms, mq_err_t *err)
{
	int64_t until = ms < 0 ? INT64_MAX : after(mq_mono_ms(), ms);
	for (;;) {
		int64_t now = mq_mono_ms();
		if (!c->z && now >= c->next_dial) {
			int rc = lite_dial(c, until, err);
			if (rc)
				return rc;
			now = mq_mono_ms();
		}
		short ready = 0;
		if (c->z && (events & ZMQ_POLLIN) && mq_zmtp_ready(c->z))
			ready |= ZMQ_POLLIN;
		if (c->z && (events & ZMQ_POLLOUT))
			ready |= ZMQ_POLLOUT; /* connected: it takes what we send */
		if (ready)
			return ready;
		struct pollfd pf[3];
		int n = 0, wi = -1, si = -1;
		if (c->z)
			pf[n++] = (struct pollfd){.fd = mq_zmtp_fd(c->z), .events = POLLIN};
		if (watch && c->watch_fd >= 0) {
			wi = n;
			pf[n++] = (struct pollfd){.fd = c->watch_fd, .events = to_poll(c->watch_events)};
		}
		if (c->wake_fd >= 0) {
			si = n;
			pf[n++] = (struct pollfd){.fd = c->wake_fd, .events = POLLIN};
		}
		int64_t end = !c->z && c->next_dial < until ? c->next_dial : until;
		int64_t left = end == INT64_MAX ? -1 : end < now ? 0 : end - now;
		int r = poll(pf, (nfds_t)n, left > INT32_MAX ? INT32_MAX : (int)left);
		if (r < 0) {
			if (errno == EINTR)
				return mq_err_set(err, MQ_EAGAIN, "interrupted");
			return mq_err_sys(err, "waiting for the broker");
		}
		if (si >= 0 && pf[si].revents) {
			mq_drain_fd(c->wake_fd);
			return mq_err_set(err, MQ_EAGAIN, "interrupted");
		}
		if (wi >= 0 && pf[wi].revents)
			return mq_err_set(err, MQ_EAGAIN, "descriptor %d is ready", c->watch_fd);
		if (c->z && pf[0].revents) {
			if (events & ZMQ_POLLIN)
				return ZMQ_POLLIN;
			/* Nothing awaited: a heartbeat, a late reply, or the end. */
			reply_t late;
			while (lite_recv(c, &late))
				reply_free(&late);
			continue;
		}
		if (r == 0 && mq_mono_ms() >= until)
			return 0;
	}
}

/* What a lite client cannot do. */
static int lite_refuses(const char *what, mq_err_t *err)
{
	return mq_err_set(err, MQ_EINVAL, "%s needs a full client (this one was opened lite)", what);
}

/* An error reply [ERR, id, code, message] into err. */
static int reply_error(mq_client_t *c, const mq_wire_msg_t *m, mq_err_t *err)
{
	uint64_t code = MQ_EPROTO;
	const char *s = "";
	size_t n = 0;
	if (mq_wire_u64(mq_wire_arg(m, 0), &code, "error code", NULL) || code == 0 || code > 1000)
		code = MQ_EPROTO;
	if (mq_wire_strv(mq_wire_arg(m, 1), &s, &n, "error message", NULL))
		s = "", n = 0;
	if (n == 0)
		return mq_err_set(err, (int)code, "broker %s refused the request (error %llu)", c->endpoint,
				  (unsigned long long)code);
	return mq_err_set(err, (int)code, "%.*s", (int)(n > 400 ? 400 : n), s);
}

/* One control request: send req (header frame, id already in it) and
 * wait for the reply with that id, resending it every resend_ms, for
 * at most the timeout.  On MQ_REP_OK, r holds the reply. */
static int call_pl(mq_client_t *c, const mq_buf_t *req, const void *pl, size_t pl_len, uint32_t id,
		   const char *what, reply_t *r, mq_err_t *err);

static int call(mq_client_t *c, const mq_buf_t *req, uint32_t id, const char *what, reply_t *r, mq_err_t *err)
{
	return call_pl(c, req, NULL, 0, id, what, r, err);
}

/* call with a payload frame after the header (pl NULL: none). */
static int call_pl(mq_client_t *c, const mq_buf_t *req, const void *pl, size_t pl_len, uint32_t id,
		   const char *what, reply_t *r, mq_err_t *err)
{
	int64_t start = mq_mono_ms(), deadline = after(start, c->timeout_ms), next_send = start;
	int stopped = c->interrupt && *c->interrupt, unsent = 1;
	uint32_t downs = c->downs;
	r->live = 0;
	for (;;) {
		int64_t now = mq_mono_ms();
		if (c->downs != downs) { /* what went out on the lost connection is gone */
			downs = c->downs;
			unsent = 1;
		}
		if (unsent || now >= next_send) {
			int rc = send_frames(c, c->ctl, req->p, req->len, pl, pl_len, err);
			if (rc < 0)
				return rc;
			/* Not sent (no connection yet): again once the socket can take it. */
			unsent = !rc;
			next_send = after(now, c->resend_ms);
		}
		if (now >= deadline)
			return timed_out(c, what, err);
		int64_t until = unsent || next_send > deadline ? deadline : next_send;
		int rc = wait_sock(c, c->ctl, ZMQ_POLLIN | (unsent ? ZMQ_POLLOUT : 0), 0,
				   until == INT64_MAX ? -1 : until - now, err);
		if (rc == -MQ_EAGAIN && !(c->interrupt && *c->interrupt && !stopped))
			continue;
		if (rc < 0)
			return rc;
		if (!(rc & ZMQ_POLLIN))
			continue;
		if (!recv_reply(c, c->ctl, r, 1))
			continue;
		if (r->msg.id != id) {
			reply_free(r); /* late answer to an earlier request */
			continue;
		}
		if (r->msg.kind == MQ_REP_OK)
			return 0;
		rc = reply_error(c, &r->msg, err);
		reply_free(r);
		return rc;
	}
}

/* A control request being packed. */
typedef struct req {
	mq_buf_t b;
	msgpack_packer pk;
	uint32_t id, kind;
} req_t;

static msgpack_packer *req_begin(mq_client_t *c, req_t *q, uint32_t kind, uint32_t nargs)
{
	memset(&q->b, 0, sizeof q->b);
	mq_wire_packer(&q->pk, &q->b);
	q->id = new_id(c);
	q->kind = kind;
	mq_wire_begin(&q->pk, kind, q->id, nargs);
	return &q->pk;
}

/* Send q, wait for its reply, free q. */
static int req_call(mq_client_t *c, req_t *q, reply_t *r, mq_err_t *err)
{
	r->live = 0;
	int rc = q->b.p ? call(c, &q->b, q->id, mq_wire_kind_name(q->kind), r, err)
			: mq_err_set(err, MQ_ENOMEM, "out of memory");
	mq_buf_free(&q->b);
	return rc;
}

/* ---- control requests ---- */

static int bad_reply(mq_client_t *c, const char *what, mq_err_t *err)
{
	char tmp[sizeof err->msg];
	snprintf(tmp, sizeof tmp, "%s", err->msg);
	return mq_err_set(err, MQ_EPROTO, "broker %s sent a malformed %s reply: %s", c->endpoint, what, tmp);
}

int mq_client_hello(mq_client_t *c, mq_hello_t *h, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_HELLO, 2);
	mq_wire_pack_str(pk, c->name);
	msgpack_pack_uint32(pk, MQ_PROTOCOL_VERSION);
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	if (rc)
		return rc;
	uint64_t mx = 0, parts = 0;
	const msgpack_object *ver = mq_wire_arg(&r.msg, 0);
	const char *vs = "";
	size_t vn = 0;
	char vbuf[32];
	if (ver && ver->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		snprintf(vbuf, sizeof vbuf, "%llu", (unsigned long long)ver->via.u64);
		vs = vbuf;
		vn = strlen(vbuf);
	} else if (mq_wire_strv(ver, &vs, &vn, "broker_version", err)) {
		rc = -MQ_EPROTO;
	}
	if (rc || mq_wire_u64(mq_wire_arg(&r.msg, 1), &mx, "max_message_bytes", err) ||
	    mq_wire_u64(mq_wire_arg(&r.msg, 2), &parts, "default_partitions", err)) {
		rc = bad_reply(c, "HELLO", err);
	} else {
		snprintf(h->broker_version, sizeof h->broker_version, "%.*s", (int)(vn > 31 ? 31 : vn), vs);
		h->max_message_bytes = mx;
		h->default_partitions = (uint32_t)parts;
	}
	reply_free(&r);
	return rc;
}

int mq_client_meta(mq_client_t *c, const char *topic, int create, uint32_t *partitions, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_META, 2);
	mq_wire_pack_str(pk, topic);
	mq_wire_pack_bool(pk, create);
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	if (rc)
		return rc;
	uint64_t n = 0;
	if (mq_wire_u64(mq_wire_arg(&r.msg, 0), &n, "partitions", err) || n == 0 || n > UINT32_MAX)
		rc = bad_reply(c, "META", err);
	reply_free(&r);
	if (!rc)
		*partitions = (uint32_t)n;
	return rc;
}

int mq_client_offsets(mq_client_t *c, const char *topic, int64_t time, mq_part_offsets_t *out, uint32_t n,
		      mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_OFFSETS, 2);
	mq_wire_pack_str(pk, topic);
	if (time < 0)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_int64(pk, time);
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < n; i++)
		out[i] = (mq_part_offsets_t){.partition = i, .at_time = -1};
	const msgpack_object_array *a;
	if (mq_wire_array(mq_wire_arg(&r.msg, 0), &a, "partitions", err)) {
		rc = bad_reply(c, "OFFSETS", err);
		goto out;
	}
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object_array *e;
		uint64_t p, s, en;
		int64_t at;
		if (mq_wire_array(&a->ptr[i], &e, "entry", err) || e->size < 4 ||
		    mq_wire_u64(&e->ptr[0], &p, "partition", err) || mq_wire_u64(&e->ptr[1], &s, "start", err) ||
		    mq_wire_u64(&e->ptr[2], &en, "end", err) || mq_wire_i64(&e->ptr[3], &at, "at_time", err)) {
			rc = bad_reply(c, "OFFSETS", err);
			goto out;
		}
		if (p < n)
			out[p] = (mq_part_offsets_t){(uint32_t)p, s, en, at};
	}
out:
	reply_free(&r);
	return rc;
}

int mq_client_committed(mq_client_t *c, const char *group, const char *topic, int64_t *off, uint32_t n,
			mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_COMMITTED, 2);
	mq_wire_pack_str(pk, group);
	mq_wire_pack_str(pk, topic);
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < n; i++)
		off[i] = -1;
	const msgpack_object_array *a;
	if (mq_wire_array(mq_wire_arg(&r.msg, 0), &a, "offsets", err)) {
		rc = bad_reply(c, "COMMITTED", err);
		goto out;
	}
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object_array *e;
		uint64_t p, o;
		if (mq_wire_array(&a->ptr[i], &e, "entry", err) || e->size < 2 ||
		    mq_wire_u64(&e->ptr[0], &p, "partition", err) || mq_wire_u64(&e->ptr[1], &o, "offset", err) ||
		    o > INT64_MAX) {
			rc = bad_reply(c, "COMMITTED", err);
			goto out;
		}
		if (p < n)
			off[p] = (int64_t)o;
	}
out:
	reply_free(&r);
	return rc;
}

int mq_client_commit(mq_client_t *c, const char *group, const char *member, const char *topic,
		     const uint32_t *parts, const uint64_t *offsets, uint32_t n, mq_err_t *err)
{
	if (n == 0)
		return 0;
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_COMMIT, 4);
	mq_wire_pack_str(pk, group);
	mq_wire_pack_str(pk, member);
	mq_wire_pack_str(pk, topic);
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_array(pk, 2);
		msgpack_pack_uint32(pk, parts[i]);
		msgpack_pack_uint64(pk, offsets[i]);
	}
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	reply_free(&r);
	return rc;
}

static void free_topics(char **v, uint32_t n)
{
	for (uint32_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int mq_client_topics(mq_client_t *c, mq_topic_list_t *out, mq_err_t *err)
{
	memset(out, 0, sizeof *out);
	req_t q;
	req_begin(c, &q, MQ_REQ_TOPICS, 0);
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	if (rc)
		return rc;
	const msgpack_object_array *a;
	const msgpack_object *eo = mq_wire_arg(&r.msg, 1);
	if (mq_wire_array(mq_wire_arg(&r.msg, 0), &a, "topics", err) ||
	    (eo && mq_wire_u64(eo, &out->epoch, "topics epoch", err))) {
		rc = bad_reply(c, "TOPICS", err);
		goto out;
	}
	out->has_epoch = eo != NULL;
	out->names = calloc(a->size ? a->size : 1, sizeof *out->names);
	out->parts = calloc(a->size ? a->size : 1, sizeof *out->parts);
	if (!out->names || !out->parts) {
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object_array *e;
		const char *t;
		size_t n;
		uint64_t p;
		if (mq_wire_array(&a->ptr[i], &e, "entry", err) || e->size < 2 ||
		    mq_wire_strv(&e->ptr[0], &t, &n, "topic", err) || mq_wire_u64(&e->ptr[1], &p, "partitions", err) ||
		    n == 0 || n > MQ_NAME_MAX || p > UINT32_MAX) {
			rc = bad_reply(c, "TOPICS", err);
			goto out;
		}
		if (!(out->names[i] = strndup(t, n))) {
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
			goto out;
		}
		out->parts[i] = (uint32_t)p;
		out->n++;
	}
out:
	reply_free(&r);
	if (rc)
		mq_topic_list_free(out);
	return rc;
}

void mq_topic_list_free(mq_topic_list_t *l)
{
	if (!l)
		return;
	free_topics(l->names, l->n);
	free(l->parts);
	memset(l, 0, sizeof *l);
}

int mq_client_bucket_take(mq_client_t *c, const char *name, uint64_t want, uint64_t min, const mq_rate_t *rate,
			  uint64_t burst, uint64_t *granted, uint64_t *wait_ns, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_BUCKET_TAKE, 6);
	mq_wire_pack_str(pk, name);
	msgpack_pack_uint64(pk, want);
	msgpack_pack_uint64(pk, min);
	if (rate) {
		msgpack_pack_uint64(pk, rate->tokens);
		msgpack_pack_uint64(pk, rate->per_ns);
	} else {
		msgpack_pack_nil(pk);
		msgpack_pack_nil(pk);
	}
	msgpack_pack_uint64(pk, burst);
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	if (rc)
		return rc;
	if (mq_wire_u64(mq_wire_arg(&r.msg, 0), granted, "granted", err) ||
	    mq_wire_u64(mq_wire_arg(&r.msg, 1), wait_ns, "wait_ns", err) || *granted > want)
		rc = bad_reply(c, "BUCKET_TAKE", err);
	reply_free(&r);
	return rc;
}

/* ---- transactions ---- */

static int call_empty(mq_client_t *c, req_t *q, mq_err_t *err);

int mq_client_txn_begin(mq_client_t *c, uint64_t txid, const char *topic, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_TXN_BEGIN, 2);
	msgpack_pack_uint64(pk, txid);
	mq_wire_pack_str(pk, topic);
	return call_empty(c, &q, err);
}

/* A transaction call whose reply is one unsigned number. */
static int txn_call(mq_client_t *c, req_t *q, const void *pl, size_t pl_len, uint64_t *v, mq_err_t *err)
{
	reply_t r;
	r.live = 0;
	int rc = q->b.p ? call_pl(c, &q->b, pl, pl_len, q->id, mq_wire_kind_name(q->kind), &r, err)
			: mq_err_set(err, MQ_ENOMEM, "out of memory");
	mq_buf_free(&q->b);
	if (rc == 0 && mq_wire_u64(mq_wire_arg(&r.msg, 0), v, "result", err))
		rc = bad_reply(c, mq_wire_kind_name(q->kind), err);
	reply_free(&r);
	return rc;
}

int mq_client_txn_add(mq_client_t *c, uint64_t txid, uint32_t index, uint32_t partition, const void *batch,
		      size_t len, int *dup, mq_err_t *err)
{
	req_t q;
	uint64_t v = 0;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_TXN_ADD, 3);
	msgpack_pack_uint64(pk, txid);
	msgpack_pack_uint32(pk, index);
	msgpack_pack_uint32(pk, partition);
	int rc = txn_call(c, &q, batch, len, &v, err);
	*dup = v != 0;
	return rc;
}

int mq_client_txn_end(mq_client_t *c, uint64_t txid, uint32_t nbatches, uint64_t *messages, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_TXN_END, 2);
	msgpack_pack_uint64(pk, txid);
	msgpack_pack_uint32(pk, nbatches);
	return txn_call(c, &q, NULL, 0, messages, err);
}

int mq_client_txn_decide(mq_client_t *c, uint64_t txid, const char *topic, int verdict, int from_checker,
			 int *was, mq_err_t *err)
{
	req_t q;
	uint32_t kind = from_checker ? MQ_REQ_TXN_VERDICT
			: verdict == MQ_VERDICT_COMMIT ? MQ_REQ_TXN_COMMIT : MQ_REQ_TXN_ROLLBACK;
	msgpack_packer *pk = req_begin(c, &q, kind, from_checker ? 3 : 2);
	msgpack_pack_uint64(pk, txid);
	if (topic && *topic)
		mq_wire_pack_str(pk, topic);
	else
		msgpack_pack_nil(pk);
	if (from_checker)
		msgpack_pack_int(pk, verdict);
	uint64_t v = 0;
	int rc = txn_call(c, &q, NULL, 0, &v, err);
	if (was)
		*was = (int)v;
	return rc;
}

int mq_client_txn_check(mq_client_t *c, const char *topic, uint32_t wait_ms, uint64_t *txid, mq_buf_t *msgs,
			mq_err_t *err)
{
	if (c->lite)
		return lite_refuses("checking transactions", err);
	mq_buf_t req = {0};
	msgpack_packer pk;
	mq_wire_packer(&pk, &req);
	uint32_t id = new_id(c);
	mq_wire_begin(&pk, MQ_REQ_TXN_CHECK, id, 2);
	mq_wire_pack_str(&pk, topic);
	msgpack_pack_uint32(&pk, wait_ms);
	if (!req.p)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	/* A long poll on the data socket: sent again only when the answer is
	 * late by resend_ms past the wait, given up after the timeout. */
	int64_t first = mq_mono_ms(), sent = -1;
	uint32_t downs = c->ddowns;
	int rc = 0;
	for (;;) {
		int64_t now = mq_mono_ms();
		if (c->ddowns != downs) { /* lost with the connection */
			downs = c->ddowns;
			sent = -1;
		}
		if (sent < 0 || now - sent >= (int64_t)wait_ms + c->resend_ms) {
			rc = send_frames(c, c->data, req.p, req.len, NULL, 0, err);
			if (rc < 0)
				break;
			if (rc)
				sent = now;
		}
		int64_t give_up = after((sent < 0 ? first : sent) + (int64_t)wait_ms, c->timeout_ms);
		if (now >= give_up) {
			rc = timed_out(c, "TXN_CHECK", err);
			break;
		}
		/* Unsent: until the socket can take it; sent: until it is late. */
		int64_t until = sent < 0 ? give_up : sent + (int64_t)wait_ms + c->resend_ms;
		if (until > give_up)
			until = give_up;
		if ((rc = wait_sock(c, c->data, ZMQ_POLLIN | (sent < 0 ? ZMQ_POLLOUT : 0), 0,
				    until == INT64_MAX ? -1 : until - now, err)) < 0) {
			if (rc == -MQ_EAGAIN && !(c->interrupt && *c->interrupt))
				continue;
			break;
		}
		if (!(rc & ZMQ_POLLIN))
			continue;
		reply_t r;
		if (!recv_reply(c, c->data, &r, 0))
			continue;
		if (r.msg.id != id) {
			reply_free(&r);
			drain_more(c->data);
			continue;
		}
		if (r.msg.kind != MQ_REP_OK) {
			rc = reply_error(c, &r.msg, err);
			reply_free(&r);
			drain_more(c->data);
			break;
		}
		const msgpack_object *o = mq_wire_arg(&r.msg, 0);
		rc = 0;
		if (o && o->type != MSGPACK_OBJECT_NIL) {
			if (mq_wire_u64(o, txid, "transaction id", err)) {
				rc = bad_reply(c, "TXN_CHECK", err);
			} else {
				zmq_msg_t f;
				zmq_msg_init(&f);
				int more = 0;
				size_t sz = sizeof more;
				zmq_getsockopt(c->data, ZMQ_RCVMORE, &more, &sz);
				if (!more || zmq_msg_recv(&f, c->data, 0) < 0)
					rc = mq_err_set(err, MQ_EPROTO, "broker %s sent a check without its messages",
							c->endpoint);
				else if (mq_buf_append(msgs, zmq_msg_data(&f), zmq_msg_size(&f)))
					rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
				else
					rc = 1;
				zmq_msg_close(&f);
			}
		}
		reply_free(&r);
		drain_more(c->data);
		break;
	}
	mq_buf_free(&req);
	return rc;
}

/* ---- administration ---- */

int mq_client_ping(mq_client_t *c, mq_hello_t *h, int64_t *rtt_us, mq_err_t *err)
{
	/* The first request also waits for the connection: time the second. */
	int rc = mq_client_hello(c, h, err);
	uint64_t t0 = mq_mono_ns();
	if (rc == 0)
		rc = mq_client_hello(c, h, err);
	*rtt_us = (int64_t)((mq_mono_ns() - t0) / 1000);
	return rc;
}

/* A request whose reply has no results: send, wait, check. */
static int call_empty(mq_client_t *c, req_t *q, mq_err_t *err)
{
	reply_t r;
	int rc = req_call(c, q, &r, err);
	reply_free(&r);
	return rc;
}

static void pack_opt_i64(msgpack_packer *pk, int64_t v)
{
	if (v < 0)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_int64(pk, v);
}

int mq_client_topic_create(mq_client_t *c, const char *topic, uint32_t partitions, int64_t retention_ms,
			   int64_t retention_bytes, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_TOPIC_CREATE, 4);
	mq_wire_pack_str(pk, topic);
	msgpack_pack_uint32(pk, partitions);
	pack_opt_i64(pk, retention_ms);
	pack_opt_i64(pk, retention_bytes);
	return call_empty(c, &q, err);
}

int mq_client_topic_describe(mq_client_t *c, const char *topic, mq_topic_info_t *out, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_TOPIC_DESCRIBE, 1);
	mq_wire_pack_str(pk, topic);
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	if (rc)
		return rc;
	uint64_t parts, bytes, msgs;
	memset(out, 0, sizeof *out);
	snprintf(out->name, sizeof out->name, "%s", topic);
	if (mq_wire_u64(mq_wire_arg(&r.msg, 0), &parts, "partitions", err) || parts > UINT32_MAX ||
	    mq_wire_i64(mq_wire_arg(&r.msg, 1), &out->retention_ms, "retention_ms", err) ||
	    mq_wire_i64(mq_wire_arg(&r.msg, 2), &out->retention_bytes, "retention_bytes", err) ||
	    mq_wire_i64(mq_wire_arg(&r.msg, 3), &out->created_ms, "created_ms", err) ||
	    mq_wire_u64(mq_wire_arg(&r.msg, 4), &bytes, "bytes", err) ||
	    mq_wire_u64(mq_wire_arg(&r.msg, 5), &msgs, "messages", err))
		rc = bad_reply(c, "TOPIC_DESCRIBE", err);
	else
		out->partitions = (uint32_t)parts, out->bytes = bytes, out->messages = msgs;
	out->default_retention_ms = out->default_retention_bytes = -1;
	if (!rc && r.msg.nargs >= 8 &&
	    (mq_wire_i64(mq_wire_arg(&r.msg, 6), &out->default_retention_ms, "default_retention_ms", err) ||
	     mq_wire_i64(mq_wire_arg(&r.msg, 7), &out->default_retention_bytes, "default_retention_bytes", err)))
		rc = bad_reply(c, "TOPIC_DESCRIBE", err);
	reply_free(&r);
	return rc;
}

int mq_client_topic_delete(mq_client_t *c, const char *topic, int force, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_TOPIC_DELETE, 2);
	mq_wire_pack_str(pk, topic);
	mq_wire_pack_bool(pk, force);
	return call_empty(c, &q, err);
}

int mq_client_topic_partitions(mq_client_t *c, const char *topic, uint32_t n, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_TOPIC_PARTITIONS, 2);
	mq_wire_pack_str(pk, topic);
	msgpack_pack_uint32(pk, n);
	return call_empty(c, &q, err);
}

static int copy_str(const msgpack_object *o, char *buf, size_t size, const char *what, mq_err_t *err)
{
	const char *s;
	size_t n;
	if (mq_wire_strv(o, &s, &n, what, err))
		return -MQ_EPROTO;
	if (n >= size)
		return mq_err_set(err, MQ_EPROTO, "%s: too long", what);
	memcpy(buf, s, n);
	buf[n] = 0;
	return 0;
}

static int parse_member_info(const msgpack_object *o, mq_group_member_info_t *m, mq_err_t *err)
{
	const msgpack_object_array *e;
	uint64_t owned;
	if (mq_wire_array(o, &e, "member", err) || e->size < 4 ||
	    copy_str(&e->ptr[0], m->id, sizeof m->id, "member id", err) ||
	    copy_str(&e->ptr[1], m->client, sizeof m->client, "client", err) ||
	    mq_wire_i64(&e->ptr[2], &m->idle_ms, "idle_ms", err) || mq_wire_u64(&e->ptr[3], &owned, "owned", err))
		return -MQ_EPROTO;
	m->nowned = (uint32_t)owned;
	return 0;
}

static int parse_row(const msgpack_object *o, mq_group_row_t *w, mq_err_t *err)
{
	const msgpack_object_array *e, *h;
	uint64_t p;
	memset(w, 0, sizeof *w);
	if (mq_wire_array(o, &e, "row", err) || e->size < 7 ||
	    copy_str(&e->ptr[0], w->topic, sizeof w->topic, "topic", err) ||
	    mq_wire_u64(&e->ptr[1], &p, "partition", err) || p > UINT32_MAX ||
	    mq_wire_i64(&e->ptr[2], &w->committed, "committed", err) ||
	    mq_wire_u64(&e->ptr[3], &w->start, "start", err) || mq_wire_u64(&e->ptr[4], &w->end, "end", err) ||
	    copy_str(&e->ptr[5], w->owner, sizeof w->owner, "owner", err) ||
	    mq_wire_array(&e->ptr[6], &h, "history", err))
		return -MQ_EPROTO;
	w->partition = (uint32_t)p;
	/* keep the newest MQ_LAG_HISTORY samples */
	uint32_t skip = h->size > MQ_LAG_HISTORY ? h->size - MQ_LAG_HISTORY : 0;
	for (uint32_t i = skip; i < h->size; i++) {
		const msgpack_object_array *s;
		mq_lag_sample_t *x = &w->hist[w->nhist];
		if (mq_wire_array(&h->ptr[i], &s, "sample", err) || s->size < 3 ||
		    mq_wire_i64(&s->ptr[0], &x->ms, "ms", err) || mq_wire_i64(&s->ptr[1], &x->committed, "committed", err) ||
		    mq_wire_u64(&s->ptr[2], &x->end, "end", err))
			return -MQ_EPROTO;
		w->nhist++;
	}
	w->since_ms = -1; /* a broker that does not say */
	if (e->size >= 8 && mq_wire_i64(&e->ptr[7], &w->since_ms, "since_ms", err))
		return -MQ_EPROTO;
	return 0;
}

static int parse_group(const msgpack_object *o, mq_group_info_t *g, int64_t interval, mq_err_t *err)
{
	const msgpack_object_array *e, *ms, *rs;
	if (mq_wire_array(o, &e, "group", err) || e->size < 4 ||
	    copy_str(&e->ptr[0], g->name, sizeof g->name, "group", err) ||
	    mq_wire_u64(&e->ptr[1], &g->generation, "generation", err) ||
	    mq_wire_array(&e->ptr[2], &ms, "members", err) || mq_wire_array(&e->ptr[3], &rs, "rows", err))
		return -MQ_EPROTO;
	g->interval_ms = interval;
	g->members = calloc(ms->size ? ms->size : 1, sizeof *g->members);
	g->rows = calloc(rs->size ? rs->size : 1, sizeof *g->rows);
	if (!g->members || !g->rows)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < ms->size; i++, g->nmembers++)
		if (parse_member_info(&ms->ptr[i], &g->members[i], err))
			return -MQ_EPROTO;
	for (uint32_t i = 0; i < rs->size; i++, g->nrows++)
		if (parse_row(&rs->ptr[i], &g->rows[i], err))
			return -MQ_EPROTO;
	return 0;
}

void mq_group_info_free(mq_group_info_t *g, uint32_t n)
{
	for (uint32_t i = 0; g && i < n; i++) {
		free(g[i].members);
		free(g[i].rows);
	}
	free(g);
}

int mq_client_groups(mq_client_t *c, const char *group, const char *topic, mq_group_info_t **out, uint32_t *n,
		     mq_err_t *err)
{
	*out = NULL;
	*n = 0;
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_GROUPS, 2);
	if (group)
		mq_wire_pack_str(pk, group);
	else
		msgpack_pack_nil(pk);
	if (topic)
		mq_wire_pack_str(pk, topic);
	else
		msgpack_pack_nil(pk);
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	if (rc)
		return rc;
	int64_t interval;
	const msgpack_object_array *a;
	mq_group_info_t *v = NULL;
	uint32_t got = 0;
	if (mq_wire_i64(mq_wire_arg(&r.msg, 0), &interval, "interval_ms", err) ||
	    mq_wire_array(mq_wire_arg(&r.msg, 1), &a, "groups", err)) {
		rc = bad_reply(c, "GROUPS", err);
	} else if (!(v = calloc(a->size ? a->size : 1, sizeof *v))) {
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	} else {
		for (; got < a->size && rc == 0; got++)
			if ((rc = parse_group(&a->ptr[got], &v[got], interval, err)) == -MQ_EPROTO)
				rc = bad_reply(c, "GROUPS", err);
	}
	reply_free(&r);
	if (rc) {
		mq_group_info_free(v, got);
		return rc;
	}
	*out = v;
	*n = got;
	return 0;
}

/* Parse reply argument 0, an array, into a new array of n elements of
 * size bytes, each filled by one(); bad_reply naming what otherwise. */
static int parse_list(mq_client_t *c, const reply_t *r, const char *what, size_t size, void **out, uint32_t *n,
		      int (*one)(const msgpack_object *o, void *elem, mq_err_t *err), mq_err_t *err)
{
	const msgpack_object_array *a;
	*out = NULL;
	*n = 0;
	if (mq_wire_array(mq_wire_arg(&r->msg, 0), &a, "list", err))
		return bad_reply(c, what, err);
	uint8_t *v = calloc(a->size ? a->size : 1, size);
	if (!v)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < a->size; i++)
		if (one(&a->ptr[i], v + i * size, err)) {
			free(v);
			return bad_reply(c, what, err);
		}
	*out = v;
	*n = a->size;
	return 0;
}

static int parse_reset_entry(const msgpack_object *o, void *elem, mq_err_t *err)
{
	mq_reset_entry_t *x = elem;
	const msgpack_object_array *e;
	uint64_t p;
	if (mq_wire_array(o, &e, "entry", err) || e->size < 3 || mq_wire_u64(&e->ptr[0], &p, "partition", err) ||
	    p > UINT32_MAX || mq_wire_i64(&e->ptr[1], &x->old, "old", err) ||
	    mq_wire_u64(&e->ptr[2], &x->new_offset, "new", err))
		return -MQ_EPROTO;
	x->partition = (uint32_t)p;
	return 0;
}

static int parse_stat(const msgpack_object *o, void *elem, mq_err_t *err)
{
	mq_stat_t *x = elem;
	const msgpack_object_array *e;
	if (mq_wire_array(o, &e, "stat", err) || e->size < 2 ||
	    copy_str(&e->ptr[0], x->name, sizeof x->name, "name", err) || mq_wire_i64(&e->ptr[1], &x->value, "value", err))
		return -MQ_EPROTO;
	return 0;
}

int mq_client_group_reset(mq_client_t *c, const char *group, const char *topic, const mq_offset_spec_t *to,
			  unsigned flags, mq_reset_entry_t **out, uint32_t *n, mq_err_t *err)
{
	*out = NULL;
	*n = 0;
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_GROUP_RESET, 6);
	mq_wire_pack_str(pk, group);
	mq_wire_pack_str(pk, topic);
	msgpack_pack_uint32(pk, (uint32_t)to->kind);
	msgpack_pack_int64(pk, to->v);
	mq_wire_pack_bool(pk, (flags & MQ_RESET_DRY_RUN) != 0);
	mq_wire_pack_bool(pk, (flags & MQ_RESET_CREATE) != 0);
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	if (rc)
		return rc;
	rc = parse_list(c, &r, "GROUP_RESET", sizeof **out, (void **)out, n, parse_reset_entry, err);
	reply_free(&r);
	return rc;
}

int mq_client_group_delete(mq_client_t *c, const char *group, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_GROUP_DELETE, 1);
	mq_wire_pack_str(pk, group);
	return call_empty(c, &q, err);
}

int mq_client_stats(mq_client_t *c, mq_stat_t **out, uint32_t *n, mq_err_t *err)
{
	*out = NULL;
	*n = 0;
	req_t q;
	req_begin(c, &q, MQ_REQ_STATS, 0);
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	if (rc)
		return rc;
	rc = parse_list(c, &r, "STATS", sizeof **out, (void **)out, n, parse_stat, err);
	reply_free(&r);
	return rc;
}

/* ---- group membership ---- */

static int add_owned(mq_member_t *m, uint32_t t, uint32_t p)
{
	if (m->nowned == m->cap) {
		uint32_t cap = m->cap ? m->cap * 2 : 16;
		mq_owned_t *v = realloc(m->owned, cap * sizeof *v);
		if (!v)
			return -MQ_ENOMEM;
		m->owned = v;
		m->cap = cap;
	}
	m->owned[m->nowned++] = (mq_owned_t){t, p};
	return 0;
}

static int cmp_owned(const void *a, const void *b)
{
	const mq_owned_t *x = a, *y = b;
	if (x->topic != y->topic)
		return x->topic < y->topic ? -1 : 1;
	return x->partition < y->partition ? -1 : x->partition > y->partition;
}

/* Index of topic t (n bytes) among m's topics, or -1. */
static int64_t member_topic(const mq_member_t *m, const char *t, size_t n)
{
	for (uint32_t i = 0; i < m->ntopics; i++)
		if (strlen(m->topics[i]) == n && !memcmp(m->topics[i], t, n))
			return i;
	return -1;
}

/* [[topic, p]...] into m->owned (our topics only). */
static int parse_assignment(mq_member_t *m, const msgpack_object *o, mq_err_t *err)
{
	const msgpack_object_array *a;
	if (mq_wire_array(o, &a, "assignment", err))
		return -MQ_EPROTO;
	m->nowned = 0;
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object_array *e;
		const char *t;
		size_t n;
		uint64_t p;
		if (mq_wire_array(&a->ptr[i], &e, "assignment entry", err) || e->size < 2 ||
		    mq_wire_strv(&e->ptr[0], &t, &n, "topic", err) || mq_wire_u64(&e->ptr[1], &p, "partition", err) ||
		    p > UINT32_MAX)
			return -MQ_EPROTO;
		int64_t ti = member_topic(m, t, n);
		if (ti >= 0 && add_owned(m, (uint32_t)ti, (uint32_t)p))
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	if (m->nowned > 1)
		qsort(m->owned, m->nowned, sizeof *m->owned, cmp_owned);
	return 0;
}

int mq_member_set_topics(mq_member_t *m, const char *const *topics, uint32_t n, mq_err_t *err)
{
	char **v = calloc(n ? n : 1, sizeof *v);
	for (uint32_t i = 0; v && i < n; i++)
		if (!(v[i] = strdup(topics[i]))) {
			free_topics(v, i);
			v = NULL;
		}
	if (!v)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	free_topics(m->topics, m->ntopics);
	m->topics = v;
	m->ntopics = n;
	return 0;
}

int mq_client_join(mq_client_t *c, mq_member_t *m, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_JOIN, 5);
	mq_wire_pack_str(pk, m->group);
	msgpack_pack_array(pk, m->ntopics);
	for (uint32_t i = 0; i < m->ntopics; i++)
		mq_wire_pack_str(pk, m->topics[i]);
	mq_wire_pack_str(pk, m->member);
	msgpack_pack_int64(pk, m->session_ms);
	mq_wire_pack_str(pk, c->name);
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	if (rc)
		return rc;
	const char *s;
	size_t n;
	uint64_t gen;
	if (mq_wire_strv(mq_wire_arg(&r.msg, 0), &s, &n, "member", err) || n == 0 || n > MQ_MEMBER_ID_MAX ||
	    mq_wire_u64(mq_wire_arg(&r.msg, 1), &gen, "generation", err) ||
	    parse_assignment(m, mq_wire_arg(&r.msg, 2), err)) {
		rc = bad_reply(c, "JOIN", err);
	} else {
		memcpy(m->member, s, n);
		m->member[n] = 0;
		m->generation = gen;
	}
	reply_free(&r);
	return rc;
}

int mq_client_heartbeat(mq_client_t *c, mq_member_t *m, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_HEARTBEAT, 3);
	mq_wire_pack_str(pk, m->group);
	mq_wire_pack_str(pk, m->member);
	msgpack_pack_uint64(pk, m->acked);
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	if (rc)
		return rc;
	uint64_t gen;
	if (mq_wire_u64(mq_wire_arg(&r.msg, 0), &gen, "generation", err) ||
	    parse_assignment(m, mq_wire_arg(&r.msg, 1), err))
		rc = bad_reply(c, "HEARTBEAT", err);
	else
		m->generation = gen;
	reply_free(&r);
	return rc;
}

int mq_client_leave(mq_client_t *c, mq_member_t *m, mq_err_t *err)
{
	if (!m->member[0])
		return 0;
	req_t q;
	msgpack_packer *pk = req_begin(c, &q, MQ_REQ_LEAVE, 2);
	mq_wire_pack_str(pk, m->group);
	mq_wire_pack_str(pk, m->member);
	reply_t r;
	int rc = req_call(c, &q, &r, err);
	reply_free(&r);
	if (!rc)
		m->member[0] = 0;
	return rc;
}

void mq_member_free(mq_member_t *m)
{
	if (!m)
		return;
	free(m->owned);
	m->owned = NULL;
	m->nowned = m->cap = 0;
	free_topics(m->topics, m->ntopics);
	m->topics = NULL;
	m->ntopics = 0;
}

int mq_member_owns(const mq_member_t *m, uint32_t topic, uint32_t p)
{
	mq_owned_t k = {topic, p};
	return m->nowned && bsearch(&k, m->owned, m->nowned, sizeof k, cmp_owned) != NULL;
}

/* ---- pipelined produce ---- */

enum { SLOT_FREE = 0, SLOT_UNSENT, SLOT_SENT };

typedef struct slot {
	mq_buf_t buf;
	uint32_t id;
	uint32_t partition;
	uint32_t count;
	int state;
	int64_t sent; /* mono ms of the last send */
} slot_t;

struct mq_producer {
	mq_client_t *c;
	char topic[MQ_NAME_MAX + 1];
	uint32_t partitions;
	uint64_t pid;
	uint32_t *seq;
	uint32_t *pending; /* per partition: batches not yet acknowledged or refused */
	slot_t *slots;
	uint32_t window, head, used; /* ring: slots[head .. head+used) */
	uint32_t inflight;
	int64_t last_progress;
	int resend_now; /* a batch came out of order: resend at once */
	uint32_t downs;  /* the client's lost connections when last pumped */
	mq_buf_t hdr;
	mq_producer_stats_t st;
	char error[512];
	int error_new;
	mq_times_t times; /* --at/--delay/--ttl of every batch */
};

int mq_producer_new(mq_client_t *c, const char *topic, uint32_t partitions, uint32_t window,
		    mq_producer_t **out, mq_err_t *err)
{
	if (window < 1 || window > 1024 || partitions == 0 || strlen(topic) > MQ_NAME_MAX)
		return mq_err_set(err, MQ_EINVAL, "producer: bad window, partition count or topic");
	mq_producer_t *p = calloc(1, sizeof *p);
	if (!p || !(p->seq = calloc(partitions, sizeof *p->seq)) || !(p->pending = calloc(partitions, sizeof *p->pending)) ||
	    !(p->slots = calloc(window, sizeof *p->slots))) {
		mq_producer_free(p);
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	p->c = c;
	p->downs = c->ddowns;
	strcpy(p->topic, topic);
	p->partitions = partitions;
	p->window = window;
	/* A random id per run: a restarted mq-pub is a new producer, so
	 * its sequences cannot collide with the ones the broker saw. */
	while (p->pid == 0) {
		if (getrandom(&p->pid, sizeof p->pid, 0) != (ssize_t)sizeof p->pid) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			p->pid = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 48);
		}
	}
	*out = p;
	return 0;
}

void mq_producer_free(mq_producer_t *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; p->slots && i < p->window; i++)
		mq_buf_free(&p->slots[i].buf);
	free(p->slots);
	free(p->seq);
	free(p->pending);
	mq_buf_free(&p->hdr);
	free(p);
}

void mq_producer_begin(mq_producer_t *p, uint32_t partition, mq_batch_builder_t *b, mq_buf_t *buf)
{
	mq_batch_begin(b, buf);
	b->hdr.producer_id = p->pid;
	b->hdr.base_seq = p->seq[partition];
	if (p->times.at_ms || p->times.delay_ms || p->times.ttl_ms)
		mq_times_apply(&p->times, mq_now_ms(), &b->hdr.deliver_at, &b->hdr.expire_at);
}

void mq_producer_set_times(mq_producer_t *p, const mq_times_t *t)
{
	p->times = *t;
}

void mq_times_apply(const mq_times_t *t, int64_t now_ms, int64_t *deliver_at, int64_t *expire_at)
{
	int64_t due = t->at_ms ? t->at_ms : t->delay_ms ? now_ms + t->delay_ms : 0;
	*deliver_at = due > now_ms ? due : 0; /* due already: delivered at once */
	*expire_at = t->ttl_ms ? (due > now_ms ? due : now_ms) + t->ttl_ms : 0;
}

static slot_t *ring(mq_producer_t *p, uint32_t i)
{
	return &p->slots[(p->head + i) % p->window];
}

/* Whether s is the partition's oldest batch not yet answered: the broker
 * may then take it even when its sequence is ahead of what it expects. */
static int slot_oldest(mq_producer_t *p, const slot_t *s)
{
	for (uint32_t i = 0; i < p->used && ring(p, i) != s; i++)
		if (ring(p, i)->state != SLOT_FREE && ring(p, i)->partition == s->partition)
			return 0;
	return 1;
}

/* Each send gets a new id: an answer to an earlier send of the same
 * batch (an out-of-order refusal above all) is then told apart and
 * dropped, and the answer to the last send decides. */
static int slot_send(mq_producer_t *p, slot_t *s, mq_err_t *err)
{
	p->hdr.len = 0;
	msgpack_packer pk;
	mq_wire_packer(&pk, &p->hdr);
	uint32_t id = new_id(p->c);
	mq_wire_begin(&pk, MQ_REQ_PRODUCE, id, 3);
	mq_wire_pack_str(&pk, p->topic);
	msgpack_pack_uint32(&pk, s->partition);
	mq_wire_pack_bool(&pk, slot_oldest(p, s));
	int rc = send_frames(p->c, p->c->data, p->hdr.p, p->hdr.len, s->buf.p, s->buf.len, err);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		s->id = id;
		s->state = SLOT_SENT;
		s->sent = mq_mono_ms();
	}
	return rc;
}

static void slot_done(mq_producer_t *p, slot_t *s)
{
	s->state = SLOT_FREE;
	s->buf.len = 0;
	p->inflight--;
	p->pending[s->partition]--;
	while (p->used && ring(p, 0)->state == SLOT_FREE) {
		p->head = (p->head + 1) % p->window;
		p->used--;
	}
}

static void on_reply(mq_producer_t *p, const mq_wire_msg_t *m)
{
	slot_t *s = NULL;
	for (uint32_t i = 0; i < p->used && !s; i++)
		if (ring(p, i)->state == SLOT_SENT && ring(p, i)->id == m->id)
			s = ring(p, i);
	if (!s)
		return; /* the answer to an earlier send of a batch sent again */
	uint64_t code = 0;
	if (m->kind != MQ_REP_OK && !mq_wire_u64(mq_wire_arg(m, 0), &code, "error code", NULL) && code == MQ_ESEQ) {
		/* An earlier batch of the partition did not arrive (lost with a
		 * connection): send them all again in sequence order.  Not
		 * progress: a broker that keeps refusing ends in the timeout. */
		for (uint32_t i = 0; i < p->used; i++) {
			slot_t *o = ring(p, i);
			if (o->state == SLOT_SENT && o->partition == s->partition) {
				o->state = SLOT_UNSENT;
				p->st.resent++;
			}
		}
		p->resend_now = 1;
		return;
	}
	p->last_progress = mq_mono_ms();
	if (m->kind == MQ_REP_OK) {
		int dup = 0;
		uint64_t dup_ids = 0;
		mq_wire_bool(mq_wire_arg(m, 2), &dup, "duplicate", NULL);
		if (mq_wire_arg(m, 3))
			mq_wire_u64(mq_wire_arg(m, 3), &dup_ids, "duplicate ids", NULL);
		p->st.acked += s->count;
		if (dup)
			p->st.duplicates += s->count;
		else
			p->st.duplicates += dup_ids < s->count ? dup_ids : s->count;
	} else {
		mq_err_t e;
		reply_error(p->c, m, &e);
		p->st.failed += s->count;
		if (!p->error_new) {
			snprintf(p->error, sizeof p->error, "partition %u: %.400s", s->partition, e.msg);
			p->error_new = 1;
		}
	}
	slot_done(p, s);
}

/* Send what is unsent; resend everything in flight when the oldest
 * batch waited resend_ms (a lost connection loses all that followed). */
static int pump(mq_producer_t *p, mq_err_t *err)
{
	int64_t now = mq_mono_ms();
	int resend = p->downs != p->c->ddowns; /* what was in flight went with the connection */
	p->downs = p->c->ddowns;
	for (uint32_t i = 0; i < p->used; i++) {
		slot_t *s = ring(p, i);
		if (s->state == SLOT_SENT && now - s->sent >= p->c->resend_ms)
			resend = 1;
	}
	for (uint32_t i = 0; i < p->used; i++) {
		slot_t *s = ring(p, i);
		if (s->state == SLOT_UNSENT || (resend && s->state == SLOT_SENT)) {
			int was_sent = s->state == SLOT_SENT;
			int rc = slot_send(p, s, err);
			if (rc < 0)
				return rc;
			if (rc == 0) {
				s->state = SLOT_UNSENT;
				break; /* keep the order: nothing after it either */
			}
			if (was_sent)
				p->st.resent++;
		}
	}
	if (p->inflight && now - p->last_progress >= p->c->timeout_ms)
		return timed_out(p->c, "PRODUCE", err);
	return 0;
}

/* What p waits for: a reply, the socket taking what waits unsent (the
 * events), and by when at the latest: the oldest batch's resend time or
 * the timeout (INT64_MAX: nothing in flight). */
static short producer_events(mq_producer_t *p, int64_t *next)
{
	int unsent = 0;
	*next = p->inflight ? after(p->last_progress, p->c->timeout_ms) : INT64_MAX;
	for (uint32_t i = 0; i < p->used; i++) {
		const slot_t *s = ring(p, i);
		unsent |= s->state == SLOT_UNSENT;
		if (s->state == SLOT_SENT && s->sent + p->c->resend_ms < *next)
			*next = s->sent + p->c->resend_ms;
	}
	return p->inflight ? ZMQ_POLLIN | (unsent ? ZMQ_POLLOUT : 0) : 0;
}

/* Take every reply that arrived; send again what they asked for. */
static int producer_replies(mq_producer_t *p, mq_err_t *err)
{
	for (int n = 0; n < 4096; n++) {
		reply_t r;
		if (!recv_reply(p->c, p->c->data, &r, 1))
			break;
		on_reply(p, &r.msg);
		reply_free(&r);
	}
	if (p->resend_now) {
		p->resend_now = 0;
		return pump(p, err);
	}
	return 0;
}

int mq_producer_poll(mq_producer_t *p, int wait_ms, mq_err_t *err)
{
	int rc = pump(p, err);
	if (rc)
		return rc;
	int watching = p->c->watch_fd >= 0;
	if (!p->inflight && (!watching || wait_ms == 0))
		return 0;
	/* Wake for a reply, for the socket taking what waits unsent, for the
	 * oldest batch's resend time, the timeout, or the watched descriptor. */
	int64_t next;
	short events = producer_events(p, &next);
	int64_t now = mq_mono_ms(), w = next == INT64_MAX ? -1 : next > now ? next - now : 0;
	if (wait_ms >= 0 && (w < 0 || wait_ms < w))
		w = wait_ms;
	rc = wait_sock(p->c, p->c->data, events, 1, w, err);
	if (rc <= 0)
		return rc == -MQ_EAGAIN ? 0 : rc;
	if (!(rc & ZMQ_POLLIN))
		return pump(p, err); /* the connection is back: send what waited */
	return producer_replies(p, err);
}

int mq_producers_poll(mq_producer_t *const *ps, uint32_t n, int wait_ms, int watch_fd, short watch_events,
		      mq_err_t *err)
{
	if (n > MQ_PRODUCERS_POLL_MAX)
		return mq_err_set(err, MQ_EINVAL, "%u producers to wait for: at most %d", n, MQ_PRODUCERS_POLL_MAX);
	if (n == 1 && ps[0]->c->lite) { /* its own wait, watching fd for the call */
		mq_client_t *c = ps[0]->c;
		int fd = c->watch_fd;
		short ev = c->watch_events;
		mq_client_watch(c, watch_fd, watch_events);
		int rc = mq_producer_poll(ps[0], wait_ms, err);
		mq_client_watch(c, fd, ev);
		return rc;
	}
	for (uint32_t i = 0; i < n; i++)
		if (ps[i]->c->lite)
			return lite_refuses("waiting for several producers", err);
	zmq_pollitem_t it[3 * MQ_PRODUCERS_POLL_MAX + 2];
	int64_t next = INT64_MAX, now = mq_mono_ms();
	int busy = 0, rc;
	for (uint32_t i = 0; i < n; i++) {
		int64_t t;
		if ((rc = conn_events(ps[i]->c, err)) || (rc = pump(ps[i], err)))
			return rc;
		short ev = producer_events(ps[i], &t);
		if (ps[i]->c->data_dead)
			ev = (short)(ev & ~ZMQ_POLLOUT); /* sends wait for the new connection */
		busy |= ps[i]->inflight != 0;
		if (t < next)
			next = t;
		it[3 * i] = (zmq_pollitem_t){.socket = ps[i]->c->data, .events = ev};
		it[3 * i + 1] = (zmq_pollitem_t){.socket = ps[i]->c->mon, .events = ZMQ_POLLIN};
		it[3 * i + 2] = (zmq_pollitem_t){.socket = ps[i]->c->dmon, .events = ZMQ_POLLIN};
	}
	int k = 3 * (int)n, si = -1;
	if (watch_fd >= 0)
		it[k++] = (zmq_pollitem_t){.fd = watch_fd, .events = watch_events};
	else if (!busy || wait_ms == 0)
		return 0;
	if (ps[0]->c->wake_fd >= 0) {
		si = k;
		it[k++] = (zmq_pollitem_t){.fd = ps[0]->c->wake_fd, .events = ZMQ_POLLIN};
	}
	int64_t w = next == INT64_MAX ? -1 : next > now ? next - now : 0;
	if (wait_ms >= 0 && (w < 0 || wait_ms < w))
		w = wait_ms;
	if (w > INT32_MAX)
		w = INT32_MAX;
	if (zmq_poll(it, k, (long)w) < 0) {
		if (zmq_errno() == EINTR)
			return 0;
		return mq_err_set(err, MQ_EIO, "waiting for the broker: %s", zmq_strerror(zmq_errno()));
	}
	if (si >= 0 && it[si].revents) {
		mq_drain_fd(ps[0]->c->wake_fd);
		return 0; /* a signal: the caller looks at its flag */
	}
	for (uint32_t i = 0; i < n; i++) {
		if ((rc = conn_events(ps[i]->c, err)))
			return rc;
		rc = it[3 * i].revents & ZMQ_POLLIN ? producer_replies(ps[i], err) : pump(ps[i], err);
		if (rc)
			return rc;
	}
	return 0;
}

int mq_producer_send(mq_producer_t *p, mq_batch_builder_t *b, uint32_t partition, mq_err_t *err)
{
	uint32_t count = b->count;
	if (mq_batch_finish(b) == 0)
		return 0;
	/* The broker recognises a retry among a producer's last
	 * MQ_PRODUCER_BATCHES batches of a partition only: never more out. */
	while (p->used == p->window || p->pending[partition] >= MQ_PRODUCER_BATCHES) {
		int rc = mq_producer_poll(p, (int)p->c->resend_ms, err);
		if (rc) {
			p->st.sent += count;
			b->buf->len = 0;
			return rc;
		}
	}
	slot_t *s = ring(p, p->used);
	mq_buf_t tmp = s->buf;
	s->buf = *b->buf;
	*b->buf = tmp;
	b->buf->len = 0;
	s->partition = partition;
	s->count = count;
	s->state = SLOT_UNSENT;
	p->used++;
	p->pending[partition]++;
	if (p->inflight++ == 0)
		p->last_progress = mq_mono_ms();
	p->seq[partition] += count;
	p->st.sent += count;
	/* Send at once unless older batches still wait to go out. */
	int older_unsent = 0;
	for (uint32_t i = 0; i + 1 < p->used; i++)
		older_unsent |= ring(p, i)->state == SLOT_UNSENT;
	if (!older_unsent) {
		int rc = slot_send(p, s, err);
		if (rc < 0)
			return rc;
	}
	return mq_producer_poll(p, 0, err);
}

int mq_producer_flush(mq_producer_t *p, mq_err_t *err)
{
	while (p->inflight) {
		int rc = mq_producer_poll(p, (int)p->c->resend_ms, err);
		if (rc)
			return rc;
	}
	return 0;
}

uint32_t mq_producer_inflight(const mq_producer_t *p)
{
	return p->inflight;
}

void *mq_producer_socket(mq_producer_t *p)
{
	return p->c->data;
}

void mq_producer_stats(const mq_producer_t *p, mq_producer_stats_t *s)
{
	*s = p->st;
}

const char *mq_producer_take_error(mq_producer_t *p)
{
	if (!p->error_new)
		return NULL;
	p->error_new = 0;
	return p->error;
}

/* ---- fetch ---- */

static void frames_release(mq_fetch_reply_t *r)
{
	if (r->lite) {
		free(r->own); /* frames is the copy's own array */
		free(r->frames);
		r->own = r->frames = NULL;
		r->frames_cap = 0;
	} else {
		zmq_msg_t *f = r->frames;
		for (uint32_t i = 0; i < r->nframes; i++)
			zmq_msg_close(&f[i]);
	}
	r->nframes = 0;
	r->n = 0;
}

static const void *frame_data(const mq_fetch_reply_t *r, uint32_t i)
{
	return r->lite ? ((const mq_zmtp_frame_t *)r->frames)[i].p : zmq_msg_data(&((zmq_msg_t *)r->frames)[i]);
}

static size_t frame_size(const mq_fetch_reply_t *r, uint32_t i)
{
	return r->lite ? ((const mq_zmtp_frame_t *)r->frames)[i].len : zmq_msg_size(&((zmq_msg_t *)r->frames)[i]);
}

void mq_fetch_reply_free(mq_fetch_reply_t *r)
{
	if (!r)
		return;
	frames_release(r);
	free(r->frames);
	free(r->e);
	memset(r, 0, sizeof *r);
}

int mq_client_fetch_send(mq_client_t *c, const char *const *topics, uint32_t ntopics, const mq_fetch_pos_t *pos,
			 uint32_t n, uint32_t max_bytes, uint32_t max_wait_ms, const char *group, const char *member,
			 const uint64_t *epoch, mq_err_t *err)
{
	if (ntopics > MQ_FETCH_MAX_TOPICS || (ntopics == 0 && (n || !epoch)))
		return mq_err_set(err, MQ_EINVAL, "a fetch of %u topics (1 to %d, or 0 with an epoch to wait for)",
				  ntopics, MQ_FETCH_MAX_TOPICS);
	c->freq.len = 0;
	msgpack_packer pk;
	mq_wire_packer(&pk, &c->freq);
	c->fetch_id = new_id(c);
	mq_wire_begin(&pk, MQ_REQ_FETCH, c->fetch_id, 7);
	msgpack_pack_array(&pk, ntopics);
	for (uint32_t i = 0; i < ntopics; i++)
		mq_wire_pack_str(&pk, topics[i]);
	msgpack_pack_array(&pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_array(&pk, 3);
		msgpack_pack_uint32(&pk, pos[i].topic);
		msgpack_pack_uint32(&pk, pos[i].partition);
		msgpack_pack_uint64(&pk, pos[i].offset);
	}
	msgpack_pack_uint32(&pk, max_bytes);
	msgpack_pack_uint32(&pk, max_wait_ms);
	if (group && *group)
		mq_wire_pack_str(&pk, group);
	else
		msgpack_pack_nil(&pk);
	if (member && *member)
		mq_wire_pack_str(&pk, member);
	else
		msgpack_pack_nil(&pk);
	if (epoch)
		msgpack_pack_uint64(&pk, *epoch);
	else
		msgpack_pack_nil(&pk);
	if (!c->freq.p)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	c->fetch_wait = max_wait_ms;
	c->fetch_first = mq_mono_ms();
	free(c->stash); /* a reply to the fetch this one replaces */
	free(c->stash_fr);
	c->stash = NULL;
	c->stash_fr = NULL;
	c->stash_n = 0;
	c->fetch_downs = c->ddowns;
	c->fetch_state = 1;
	int rc = send_frames(c, c->data, c->freq.p, c->freq.len, NULL, 0, err);
	if (rc < 0)
		return rc;
	if (rc) {
		c->fetch_state = 2;
		c->fetch_sent = c->fetch_first;
	}
	return 0;
}

int mq_client_fetch_pending(const mq_client_t *c)
{
	return c->fetch_state != 0;
}

void mq_client_fetch_cancel(mq_client_t *c)
{
	c->fetch_state = 0;
}

static int grow(void **v, uint32_t *cap, uint32_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	uint32_t n = *cap ? *cap : 16;
	while (n < need)
		n *= 2;
	void *p = realloc(*v, n * size);
	if (!p)
		return -MQ_ENOMEM;
	*v = p;
	*cap = n;
	return 0;
}

int mq_fetch_entry_check(const mq_fetch_entry_t *x, const char *topic, mq_err_t *err)
{
	const uint8_t *d = x->data, *end = x->data + x->nbytes;
	uint64_t expect = 0;
	mq_batch_hdr_t h;
	mq_err_t e;
	if (x->err)
		return mq_err_set(err, MQ_EPROTO, "topic '%s' partition %u: data sent with error %d", topic,
				  x->partition, x->err);
	while (d < end) {
		if (mq_batch_hdr_decode(d, (size_t)(end - d), &h, &e) || h.length > (size_t)(end - d) ||
		    mq_batch_verify(d, h.length, &e))
			return mq_err_set(err, MQ_ECORRUPT, "topic '%s' partition %u: the broker sent a damaged batch "
					  "at byte %zu of its reply: %s (retry; if it stays, run mq-admin verify on "
					  "the broker's data)", topic, x->partition, (size_t)(d - x->data), e.msg);
		if (d != x->data && h.base_offset != expect)
			return mq_err_set(err, MQ_ECORRUPT, "topic '%s' partition %u: the broker sent offset %" PRIu64
					  " where %" PRIu64 " was due (retry; if it stays, run mq-admin verify on the "
					  "broker's data)", topic, x->partition, h.base_offset, expect);
		expect = h.base_offset + h.count;
		d += h.length;
	}
	if (x->expired > x->next || expect != x->next - x->expired)
		return mq_err_set(err, MQ_ECORRUPT, "topic '%s' partition %u: the broker sent batches up to offset "
				  "%" PRIu64 " but says %" PRIu64 " is next after %" PRIu64 " expired", topic, x->partition,
				  expect, x->next, x->expired);
	return 0;
}

/* Receive the rest of a FETCH reply whose first frame is in r->frames[0]. */
static int fetch_parse(mq_client_t *c, mq_fetch_reply_t *r, const mq_wire_msg_t *m, mq_err_t *err)
{
	const msgpack_object_array *a;
	const msgpack_object *eo = mq_wire_arg(m, 1);
	if (mq_wire_array(mq_wire_arg(m, 0), &a, "entries", err) ||
	    grow((void **)&r->e, &r->cap, a->size, sizeof *r->e) ||
	    (eo && mq_wire_u64(eo, &r->epoch, "topics epoch", err)))
		return bad_reply(c, "FETCH", err);
	r->has_epoch = eo != NULL;
	uint32_t next_frame = 1;
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object_array *e;
		uint64_t t, p, s, en, nx, nb, code, xp = 0;
		if (mq_wire_array(&a->ptr[i], &e, "entry", err) || e->size < 7 ||
		    mq_wire_u64(&e->ptr[0], &t, "topic", err) || mq_wire_u64(&e->ptr[1], &p, "partition", err) ||
		    mq_wire_u64(&e->ptr[2], &s, "start", err) || mq_wire_u64(&e->ptr[3], &en, "end", err) ||
		    mq_wire_u64(&e->ptr[4], &nx, "next", err) || mq_wire_u64(&e->ptr[5], &nb, "nbytes", err) ||
		    mq_wire_u64(&e->ptr[6], &code, "err", err) || t > UINT32_MAX || p > UINT32_MAX ||
		    (e->size > 7 && mq_wire_u64(&e->ptr[7], &xp, "expired", err)))
			return bad_reply(c, "FETCH", err);
		mq_fetch_entry_t *x = &r->e[r->n++];
		*x = (mq_fetch_entry_t){(uint32_t)t, (uint32_t)p, s, en, nx, (int)code, NULL, 0, xp};
		c->expired += xp;
		if (nb > 0) {
			if (next_frame >= r->nframes) {
				mq_err_set(err, MQ_EPROTO, "partition %u: %llu bytes announced, no frame", x->partition,
					   (unsigned long long)nb);
				return bad_reply(c, "FETCH", err);
			}
			x->data = frame_data(r, next_frame);
			x->nbytes = frame_size(r, next_frame);
			next_frame++;
		}
	}
	return 0;
}

/* Receive a whole message (all frames) into r->frames. */
static int recv_all(void *s, mq_fetch_reply_t *r)
{
	frames_release(r);
	for (;;) {
		if (grow(&r->frames, &r->frames_cap, r->nframes + 1, sizeof(zmq_msg_t)))
			return -MQ_ENOMEM;
		zmq_msg_t *f = (zmq_msg_t *)r->frames + r->nframes;
		zmq_msg_init(f);
		if (zmq_msg_recv(f, s, r->nframes ? 0 : ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(f);
			return r->nframes ? 1 : 0;
		}
		r->nframes++;
		if (!zmq_msg_more(f))
			return 1;
	}
}

/* A lite client's next message into r (the stash first): 1, 0 none,
 * -MQ_ENOMEM.  A reply to a control call nobody waits for is dropped
 * by the caller (its id is not the fetch's). */
static int lite_fetch_reply(mq_client_t *c, mq_fetch_reply_t *r)
{
	if (c->stash) {
		r->own = c->stash;
		r->frames = c->stash_fr;
		r->nframes = (uint32_t)c->stash_n;
		c->stash = NULL;
		c->stash_fr = NULL;
		c->stash_n = 0;
		return 1;
	}
	const mq_zmtp_frame_t *f;
	int n = 0;
	if (!lite_take(c, &f, &n))
		return 0;
	uint8_t *buf;
	mq_zmtp_frame_t *fr;
	if (lite_copy(f, n, &buf, &fr))
		return -MQ_ENOMEM;
	r->own = buf;
	r->frames = fr;
	r->nframes = (uint32_t)n;
	return 1;
}

void mq_client_watch_fd(mq_client_t *c, int fd)
{
	mq_client_watch(c, fd, 0);
}

void mq_client_watch(mq_client_t *c, int fd, short events)
{
	c->watch_fd = fd;
	c->watch_events = events;
}

void mq_client_wake_on(mq_client_t *c, int fd)
{
	c->wake_fd = fd;
}

int mq_client_wake_fd(const mq_client_t *c)
{
	return c->wake_fd;
}

int mq_client_fetch_recv(mq_client_t *c, mq_fetch_reply_t *r, int wait_ms, mq_err_t *err)
{
	int64_t start = mq_mono_ms(), until = after(start, wait_ms < 0 ? 0 : wait_ms);
	frames_release(r);
	if (r->lite != c->lite) { /* the frame table is of the other kind */
		free(r->frames);
		r->frames = NULL;
		r->frames_cap = 0;
		r->lite = c->lite;
	}
	while (c->fetch_state) {
		int64_t now = mq_mono_ms();
		if (c->fetch_downs != c->ddowns) { /* lost with the connection: a new wait */
			c->fetch_downs = c->ddowns;
			c->fetch_state = 1;
			c->fetch_first = now;
		}
		if (c->fetch_state == 1 || now - c->fetch_sent >= (int64_t)c->fetch_wait + c->resend_ms) {
			int rc = send_frames(c, c->data, c->freq.p, c->freq.len, NULL, 0, err);
			if (rc < 0)
				return rc;
			if (rc) {
				c->fetch_state = 2;
				c->fetch_sent = now;
			}
		}
		/* A long wait is no silence: give up when the connection has been
		 * down for the timeout, or when a broker still connected has not
		 * answered for the timeout past the wait. */
		int64_t give_up = c->down_since ? after(c->down_since, c->timeout_ms)
						: after(c->fetch_first + (int64_t)c->fetch_wait, c->timeout_ms);
		if (now >= give_up) {
			c->fetch_state = 0;
			return timed_out(c, "FETCH", err);
		}
		if (now >= until)
			return -MQ_EAGAIN;
		/* Unsent: until the socket takes it; sent: until the reply is late. */
		int64_t w = until < give_up ? until : give_up;
		if (c->fetch_state == 2 && c->fetch_sent + (int64_t)c->fetch_wait + c->resend_ms < w)
			w = c->fetch_sent + (int64_t)c->fetch_wait + c->resend_ms;
		int rc = c->stash ? 0 /* it came already */
				  : wait_sock(c, c->data, ZMQ_POLLIN | (c->fetch_state == 1 ? ZMQ_POLLOUT : 0), 1,
					      w == INT64_MAX ? -1 : w - now, err);
		if (rc < 0)
			return rc;
		if (!(rc & ZMQ_POLLIN) && !c->stash)
			continue;
		rc = c->lite ? lite_fetch_reply(c, r) : recv_all(c->data, r);
		if (rc <= 0) {
			if (rc < 0)
				return mq_err_set(err, MQ_ENOMEM, "out of memory");
			continue;
		}
		mq_wire_msg_t m;
		if (mq_wire_parse(frame_data(r, 0), frame_size(r, 0), &m, NULL) < 0 || m.id != c->fetch_id) {
			mq_wire_msg_free(&m);
			frames_release(r);
			continue;
		}
		c->fetch_state = 0;
		if (m.kind == MQ_REP_OK)
			rc = fetch_parse(c, r, &m, err);
		else
			rc = reply_error(c, &m, err);
		mq_wire_msg_free(&m);
		return rc;
	}
	return mq_err_set(err, MQ_EINVAL, "no FETCH outstanding");
}

/* ---- offsets given by people ---- */

#define OFF_HINT "use beginning, end, N, -N, @SECONDS, @MS, @2026-11-24, @2026-11-24T10:00, @2026-11-24T10:00:00Z or @-1h30m"

int mq_offset_spec_parse(const char *s, int64_t now_ms, mq_offset_spec_t *o, mq_err_t *err)
{
	uint64_t v;
	if (!strcmp(s, "beginning") || !strcmp(s, "begin") || !strcmp(s, "start")) {
		*o = (mq_offset_spec_t){MQ_OFF_BEGINNING, 0};
		return 0;
	}
	if (!strcmp(s, "end")) {
		*o = (mq_offset_spec_t){MQ_OFF_END, 0};
		return 0;
	}
	if (s[0] == '-' && mq_parse_u64(s + 1, &v, NULL) == 0 && v <= INT64_MAX) {
		*o = (mq_offset_spec_t){MQ_OFF_FROM_END, (int64_t)v};
		return 0;
	}
	if (mq_parse_u64(s, &v, NULL) == 0 && v <= INT64_MAX) {
		*o = (mq_offset_spec_t){MQ_OFF_ABS, (int64_t)v};
		return 0;
	}
	if (s[0] == '@') {
		int64_t ms;
		if (mq_time_parse(s + 1, now_ms, &ms, NULL) == 0) {
			*o = (mq_offset_spec_t){MQ_OFF_TIME, ms};
			return 0;
		}
		return mq_err_set(err, MQ_EINVAL, "offset '%.200s': time not understood (" OFF_HINT ")", s);
	}
	return mq_err_set(err, MQ_EINVAL, "offset '%.200s': not understood (" OFF_HINT ")", s);
}

int mq_client_resolve(mq_client_t *c, const char *topic, const mq_offset_spec_t *o, uint64_t *off,
		      uint32_t n, mq_err_t *err)
{
	mq_part_offsets_t *po = calloc(n ? n : 1, sizeof *po);
	if (!po)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	int rc = mq_client_offsets(c, topic, o->kind == MQ_OFF_TIME ? (o->v < 0 ? 0 : o->v) : -1, po, n, err);
	for (uint32_t i = 0; !rc && i < n; i++) {
		uint64_t s = po[i].start, e = po[i].end, v = (uint64_t)o->v;
		switch (o->kind) {
		case MQ_OFF_BEGINNING:
			off[i] = s;
			break;
		case MQ_OFF_END:
			off[i] = e;
			break;
		case MQ_OFF_ABS:
			off[i] = v < s ? s : v > e ? e : v;
			break;
		case MQ_OFF_FROM_END:
			off[i] = e - s < v ? s : e - v;
			break;
		case MQ_OFF_TIME:
			off[i] = po[i].at_time < 0 ? e : (uint64_t)po[i].at_time;
			break;
		}
	}
	free(po);
	return rc;
}
