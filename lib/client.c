/*
 * client.c -- ZeroMQ client side of wire.h: the connection (ZeroMQ
 * sockets or one direct ZMTP stream) and control calls.  The rest of
 * the client builds on these (client_int.h): client_admin.c
 * (administration, transactions), client_group.c (group membership),
 * producer.c (the pipelined producer), fetch.c (the overlapped fetch).
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
#include "client_int.h"

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

uint32_t mq_cl_new_id(mq_client_t *c)
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
	if (mq_kafka_endpoint(ep)) {
		snprintf(c->endpoint, sizeof c->endpoint, "%s", ep);
		snprintf(c->name, sizeof c->name, "%s", o->name ? o->name : "mq");
		c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : MQ_DEFAULT_TIMEOUT_MS;
		c->resend_ms = 1000;
		c->watch_fd = c->wake_fd = -1;
		mq_kafka_opts_t ko = {.endpoint = ep, .client_id = c->name, .timeout_ms = c->timeout_ms,
				      .delivered = mq_cl_kafka_delivered, .verbose = o->verbose};
		if ((rc = mq_kafka_open(&ko, &c->kafka, err))) {
			free(c);
			return rc;
		}
		*out = c;
		return 0;
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
	mq_cl_kafka_fetch_free(c);
	mq_kafka_close(c->kafka);
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

int mq_cl_timed_out(mq_client_t *c, const char *what, mq_err_t *err)
{
	(void)what; /* the request does not help the reader: the broker is away */
	return mq_err_set(err, MQ_ETIMEDOUT, "broker %s did not answer within %lld%s%s", c->endpoint,
			  (long long)(c->timeout_ms % 1000 ? c->timeout_ms : c->timeout_ms / 1000),
			  c->timeout_ms % 1000 ? "ms" : "s",
			  c->curve && c->handshake_lost ? " (it closed the connection during the CurveZMQ handshake: "
							  "is --curve-server the broker's public key?)" : "");
}

static void lite_lost(mq_client_t *c);
int64_t mq_cl_after(int64_t t, int64_t ms);

/* Send one or two frames without blocking: 1 sent, 0 not now (no live
 * connection or pipe full), < 0 error.  Lite: written on the connection
 * (waiting while the kernel's buffer is full), 0 when there is none. */
int mq_cl_send_frames(mq_client_t *c, void *s, const void *a, size_t an, const void *b, size_t bn, mq_err_t *err)
{
	if (c->lite) {
		if (!c->z)
			return 0;
		mq_zmtp_frame_t f[2] = {{a, an}, {b, bn}};
		mq_err_t e;
		int64_t deadline = c->timeout_ms == MQ_TIMEOUT_FOREVER ? -1 : mq_cl_after(mq_mono_ms(), c->timeout_ms);
		if (mq_zmtp_send(c->z, f, b ? 2 : 1, deadline, &e)) {
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
void mq_cl_drain_more(void *s)
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
int64_t mq_cl_after(int64_t t, int64_t ms)
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
	int fd = mq_zmtp_dial(ep, mq_cl_after(mq_mono_ms(), PROBE_MS), why, n);
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
	mq_cl_drain_more(mon); /* the endpoint: ours */
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

int mq_cl_conn_events(mq_client_t *c, mq_err_t *err)
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

int mq_cl_wait_sock(mq_client_t *c, void *s, short events, int watch, int64_t ms, mq_err_t *err)
{
	if (c->lite)
		return lite_wait(c, events, watch, ms, err);
	int64_t until = ms < 0 ? INT64_MAX : mq_cl_after(mq_mono_ms(), ms);
	uint32_t downs = c->downs, ddowns = c->ddowns;
	int dead = c->data_dead;
	for (;;) {
		int rc = mq_cl_conn_events(c, err);
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
		if (wi >= 0 && it[wi].revents) {
			c->watch_hit = 1;
			return mq_err_set(err, MQ_EAGAIN, "descriptor %d is ready", c->watch_fd);
		}
		if (it[0].revents & ev)
			return it[0].revents & ev;
		if (!it[1].revents && !it[2].revents && (r == 0 || mq_mono_ms() >= until))
			return 0;
	}
}


void mq_cl_reply_free(reply_t *r)
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
int mq_cl_lite_copy(const mq_zmtp_frame_t *f, int n, uint8_t **buf, mq_zmtp_frame_t **out)
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
int mq_cl_lite_take(mq_client_t *c, const mq_zmtp_frame_t **f, int *n)
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
		if (!mq_cl_lite_take(c, &f, &n))
			return 0;
		if (c->fetch_state == 2 && !c->stash && lite_id(f) == c->fetch_id) {
			if (mq_cl_lite_copy(f, n, &c->stash, &c->stash_fr) == 0)
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
int mq_cl_recv_reply(mq_client_t *c, void *s, reply_t *r, int drop_more)
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
		mq_cl_drain_more(s);
		return 0;
	}
	if (drop_more)
		mq_cl_drain_more(s);
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
	c->next_dial = mq_cl_after(mq_mono_ms(), c->dial_ivl);
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
	int64_t until = ms < 0 ? INT64_MAX : mq_cl_after(mq_mono_ms(), ms);
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
		if (wi >= 0 && pf[wi].revents) {
			c->watch_hit = 1;
			return mq_err_set(err, MQ_EAGAIN, "descriptor %d is ready", c->watch_fd);
		}
		if (c->z && pf[0].revents) {
			if (events & ZMQ_POLLIN)
				return ZMQ_POLLIN;
			/* Nothing awaited: a heartbeat, a late reply, or the end. */
			reply_t late;
			while (lite_recv(c, &late))
				mq_cl_reply_free(&late);
			continue;
		}
		if (r == 0 && mq_mono_ms() >= until)
			return 0;
	}
}

/* What a lite client cannot do. */
int mq_cl_lite_refuses(const char *what, mq_err_t *err)
{
	return mq_err_set(err, MQ_EINVAL, "%s needs a full client (this one was opened lite)", what);
}

/* An error reply [ERR, id, code, message] into err. */
int mq_cl_reply_error(mq_client_t *c, const mq_wire_msg_t *m, mq_err_t *err)
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
int mq_cl_call_pl(mq_client_t *c, const mq_buf_t *req, const void *pl, size_t pl_len, uint32_t id,
		   const char *what, reply_t *r, mq_err_t *err);

int mq_cl_call(mq_client_t *c, const mq_buf_t *req, uint32_t id, const char *what, reply_t *r, mq_err_t *err)
{
	return mq_cl_call_pl(c, req, NULL, 0, id, what, r, err);
}

/* call with a payload frame after the header (pl NULL: none). */
int mq_cl_call_pl(mq_client_t *c, const mq_buf_t *req, const void *pl, size_t pl_len, uint32_t id,
		   const char *what, reply_t *r, mq_err_t *err)
{
	int64_t start = mq_mono_ms(), deadline = mq_cl_after(start, c->timeout_ms), next_send = start;
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
			int rc = mq_cl_send_frames(c, c->ctl, req->p, req->len, pl, pl_len, err);
			if (rc < 0)
				return rc;
			/* Not sent (no connection yet): again once the socket can take it. */
			unsent = !rc;
			next_send = mq_cl_after(now, c->resend_ms);
		}
		if (now >= deadline)
			return mq_cl_timed_out(c, what, err);
		int64_t until = unsent || next_send > deadline ? deadline : next_send;
		int rc = mq_cl_wait_sock(c, c->ctl, ZMQ_POLLIN | (unsent ? ZMQ_POLLOUT : 0), 0,
				   until == INT64_MAX ? -1 : until - now, err);
		if (rc == -MQ_EAGAIN && !(c->interrupt && *c->interrupt && !stopped))
			continue;
		if (rc < 0)
			return rc;
		if (!(rc & ZMQ_POLLIN))
			continue;
		if (!mq_cl_recv_reply(c, c->ctl, r, 1))
			continue;
		if (r->msg.id != id) {
			mq_cl_reply_free(r); /* late answer to an earlier request */
			continue;
		}
		if (r->msg.kind == MQ_REP_OK)
			return 0;
		rc = mq_cl_reply_error(c, &r->msg, err);
		mq_cl_reply_free(r);
		return rc;
	}
}


msgpack_packer *mq_cl_req_begin(mq_client_t *c, req_t *q, uint32_t kind, uint32_t nargs)
{
	memset(&q->b, 0, sizeof q->b);
	mq_wire_packer(&q->pk, &q->b);
	q->id = mq_cl_new_id(c);
	q->kind = kind;
	mq_wire_begin(&q->pk, kind, q->id, nargs);
	return &q->pk;
}

/* Send q, wait for its reply, free q. */
int mq_cl_req_call(mq_client_t *c, req_t *q, reply_t *r, mq_err_t *err)
{
	r->live = 0;
	int rc = q->b.p ? mq_cl_call(c, &q->b, q->id, mq_wire_kind_name(q->kind), r, err)
			: mq_err_set(err, MQ_ENOMEM, "out of memory");
	mq_buf_free(&q->b);
	return rc;
}

/* ---- control requests ---- */

int mq_cl_bad_reply(mq_client_t *c, const char *what, mq_err_t *err)
{
	char tmp[sizeof err->msg];
	snprintf(tmp, sizeof tmp, "%s", err->msg);
	return mq_err_set(err, MQ_EPROTO, "broker %s sent a malformed %s reply: %s", c->endpoint, what, tmp);
}

int mq_client_hello(mq_client_t *c, mq_hello_t *h, mq_err_t *err)
{
	if (c->kafka) { /* what a Kafka cluster takes by default (message.max.bytes) */
		memset(h, 0, sizeof *h);
		snprintf(h->broker_version, sizeof h->broker_version, "kafka");
		h->max_message_bytes = 1000000;
		h->default_partitions = 1;
		return 0;
	}
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_HELLO, 2);
	mq_wire_pack_str(pk, c->name);
	msgpack_pack_uint32(pk, MQ_PROTOCOL_VERSION);
	reply_t r;
	int rc = mq_cl_req_call(c, &q, &r, err);
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
		rc = mq_cl_bad_reply(c, "HELLO", err);
	} else {
		snprintf(h->broker_version, sizeof h->broker_version, "%.*s", (int)(vn > 31 ? 31 : vn), vs);
		h->max_message_bytes = mx;
		h->default_partitions = (uint32_t)parts;
	}
	mq_cl_reply_free(&r);
	return rc;
}

int mq_client_meta(mq_client_t *c, const char *topic, int create, uint32_t *partitions, mq_err_t *err)
{
	if (c->kafka)
		return mq_kafka_partitions(c->kafka, topic, create, partitions, err);
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_META, 2);
	mq_wire_pack_str(pk, topic);
	mq_wire_pack_bool(pk, create);
	reply_t r;
	int rc = mq_cl_req_call(c, &q, &r, err);
	if (rc)
		return rc;
	uint64_t n = 0;
	if (mq_wire_u64(mq_wire_arg(&r.msg, 0), &n, "partitions", err) || n == 0 || n > UINT32_MAX)
		rc = mq_cl_bad_reply(c, "META", err);
	mq_cl_reply_free(&r);
	if (!rc)
		*partitions = (uint32_t)n;
	return rc;
}

int mq_client_offsets(mq_client_t *c, const char *topic, int64_t time, mq_part_offsets_t *out, uint32_t n,
		      mq_err_t *err)
{
	if (c->kafka)
		return mq_cl_kafka_offsets(c, topic, time, out, n, err);
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_OFFSETS, 2);
	mq_wire_pack_str(pk, topic);
	if (time < 0)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_int64(pk, time);
	reply_t r;
	int rc = mq_cl_req_call(c, &q, &r, err);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < n; i++)
		out[i] = (mq_part_offsets_t){.partition = i, .at_time = -1};
	const msgpack_object_array *a;
	if (mq_wire_array(mq_wire_arg(&r.msg, 0), &a, "partitions", err)) {
		rc = mq_cl_bad_reply(c, "OFFSETS", err);
		goto out;
	}
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object_array *e;
		uint64_t p, s, en;
		int64_t at;
		if (mq_wire_array(&a->ptr[i], &e, "entry", err) || e->size < 4 ||
		    mq_wire_u64(&e->ptr[0], &p, "partition", err) || mq_wire_u64(&e->ptr[1], &s, "start", err) ||
		    mq_wire_u64(&e->ptr[2], &en, "end", err) || mq_wire_i64(&e->ptr[3], &at, "at_time", err)) {
			rc = mq_cl_bad_reply(c, "OFFSETS", err);
			goto out;
		}
		if (p < n)
			out[p] = (mq_part_offsets_t){(uint32_t)p, s, en, at};
	}
out:
	mq_cl_reply_free(&r);
	return rc;
}

int mq_client_committed(mq_client_t *c, const char *group, const char *topic, int64_t *off, uint32_t n,
			mq_err_t *err)
{
	if (c->kafka) {
		(void)group; /* the consumer's, from the join */
		return mq_kafka_committed(c->kafka, topic, off, n, err);
	}
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_COMMITTED, 2);
	mq_wire_pack_str(pk, group);
	mq_wire_pack_str(pk, topic);
	reply_t r;
	int rc = mq_cl_req_call(c, &q, &r, err);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < n; i++)
		off[i] = -1;
	const msgpack_object_array *a;
	if (mq_wire_array(mq_wire_arg(&r.msg, 0), &a, "offsets", err)) {
		rc = mq_cl_bad_reply(c, "COMMITTED", err);
		goto out;
	}
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object_array *e;
		uint64_t p, o;
		if (mq_wire_array(&a->ptr[i], &e, "entry", err) || e->size < 2 ||
		    mq_wire_u64(&e->ptr[0], &p, "partition", err) || mq_wire_u64(&e->ptr[1], &o, "offset", err) ||
		    o > INT64_MAX) {
			rc = mq_cl_bad_reply(c, "COMMITTED", err);
			goto out;
		}
		if (p < n)
			off[p] = (int64_t)o;
	}
out:
	mq_cl_reply_free(&r);
	return rc;
}

int mq_client_commit(mq_client_t *c, const char *group, const char *member, const char *topic,
		     const uint32_t *parts, const uint64_t *offsets, uint32_t n, mq_err_t *err)
{
	if (n == 0)
		return 0;
	if (c->kafka)
		return mq_kafka_commit(c->kafka, topic, parts, offsets, n, err);
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_COMMIT, 4);
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
	int rc = mq_cl_req_call(c, &q, &r, err);
	mq_cl_reply_free(&r);
	return rc;
}

int mq_cl_set_topics(char ***list, uint32_t *nlist, const char *const *topics, uint32_t n, mq_err_t *err)
{
	char **v = calloc(n ? n : 1, sizeof *v);
	for (uint32_t i = 0; v && i < n; i++)
		if (!(v[i] = strdup(topics[i]))) {
			mq_cl_free_topics(v, i);
			v = NULL;
		}
	if (!v)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	mq_cl_free_topics(*list, *nlist);
	*list = v;
	*nlist = n;
	return 0;
}

void mq_cl_free_topics(char **v, uint32_t n)
{
	for (uint32_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int mq_client_topics(mq_client_t *c, mq_topic_list_t *out, mq_err_t *err)
{
	memset(out, 0, sizeof *out);
	if (c->kafka)
		return mq_cl_kafka_topics(c, out, err);
	req_t q;
	mq_cl_req_begin(c, &q, MQ_REQ_TOPICS, 0);
	reply_t r;
	int rc = mq_cl_req_call(c, &q, &r, err);
	if (rc)
		return rc;
	const msgpack_object_array *a;
	const msgpack_object *eo = mq_wire_arg(&r.msg, 1);
	if (mq_wire_array(mq_wire_arg(&r.msg, 0), &a, "topics", err) ||
	    (eo && mq_wire_u64(eo, &out->epoch, "topics epoch", err))) {
		rc = mq_cl_bad_reply(c, "TOPICS", err);
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
			rc = mq_cl_bad_reply(c, "TOPICS", err);
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
	mq_cl_reply_free(&r);
	if (rc)
		mq_topic_list_free(out);
	return rc;
}

void mq_topic_list_free(mq_topic_list_t *l)
{
	if (!l)
		return;
	mq_cl_free_topics(l->names, l->n);
	free(l->parts);
	memset(l, 0, sizeof *l);
}

int mq_client_bucket_take(mq_client_t *c, const char *name, uint64_t want, uint64_t min, const mq_rate_t *rate,
			  uint64_t burst, uint64_t *granted, uint64_t *wait_ns, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_BUCKET_TAKE, 6);
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
	int rc = mq_cl_req_call(c, &q, &r, err);
	if (rc)
		return rc;
	if (mq_wire_u64(mq_wire_arg(&r.msg, 0), granted, "granted", err) ||
	    mq_wire_u64(mq_wire_arg(&r.msg, 1), wait_ns, "wait_ns", err) || *granted > want)
		rc = mq_cl_bad_reply(c, "BUCKET_TAKE", err);
	mq_cl_reply_free(&r);
	return rc;
}
