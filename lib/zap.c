/*
 * zap.c -- the broker's ZAP handler (see zap.h).
 *
 * A request, as libzmq sends it: version "1.0", request id, domain,
 * address, routing id, mechanism, then the mechanism's credentials
 * (CURVE: the client's 32-byte public key).  The reply: version,
 * request id, status code ("200" in, "400" refused, "500" a request we
 * cannot read), status text, user id, metadata (ZMTP properties).  A
 * REP socket must answer every request it took, so even one that does
 * not parse gets a reply.
 */
#include "zap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "curve.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_FRAMES 8         /* a CURVE request has 7; more are read and refused */
#define REPORT_EVERY_MS 60000 /* a refused key is reported at most this often */
#define REPORT_KEYS 64        /* refused keys remembered for pacing */

typedef struct refused {
	uint8_t key[MQ_CURVE_KEY_BYTES];
	int64_t at;      /* when last reported */
	uint64_t since;  /* refusals not reported since */
	int used;
} refused_t;

struct mq_zap {
	void *sock;
	char *allow_dir, *admin_dir;
	mq_curve_allow_t *allow; /* NULL: every key is let in */
	void (*report)(void *ctx, const char *msg);
	void *report_ctx;
	refused_t refused[REPORT_KEYS];
	int next_slot;
};

static void say(mq_zap_t *z, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(mq_zap_t *z, const char *fmt, ...)
{
	if (!z->report)
		return;
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	z->report(z->report_ctx, msg);
}

static int load(mq_zap_t *z, mq_curve_allow_t **out, mq_err_t *err)
{
	*out = NULL;
	if (!z->allow_dir && !z->admin_dir)
		return 0;
	return mq_curve_allow_load(z->allow_dir, z->admin_dir, out, err);
}

static char *dup_or_null(const char *s, int *fail)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*fail = 1;
	return d;
}

int mq_zap_open(void *zctx, const mq_zap_opts_t *o, mq_zap_t **out, mq_err_t *err)
{
	mq_zap_t *z = calloc(1, sizeof *z);
	if (!z)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	int fail = 0, rc;
	z->allow_dir = dup_or_null(o->allow_dir, &fail);
	z->admin_dir = dup_or_null(o->admin_dir, &fail);
	z->report = o->report;
	z->report_ctx = o->report_ctx;
	if (fail) {
		mq_zap_close(z);
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	if ((rc = load(z, &z->allow, err))) {
		mq_zap_close(z);
		return rc;
	}
	if (!(z->sock = zmq_socket(zctx, ZMQ_REP)) || zmq_setsockopt(z->sock, ZMQ_LINGER, &(int){0}, sizeof(int)) ||
	    zmq_bind(z->sock, ZAP_ENDPOINT)) {
		rc = mq_err_set(err, MQ_EIO, "cannot start the CurveZMQ key check (%s): %s", ZAP_ENDPOINT,
				zmq_strerror(zmq_errno()));
		mq_zap_close(z);
		return rc;
	}
	*out = z;
	return 0;
}

void *mq_zap_socket(mq_zap_t *z)
{
	return z->sock;
}

long mq_zap_keys(const mq_zap_t *z)
{
	return z->allow ? (long)mq_curve_allow_count(z->allow) : -1;
}

int mq_zap_reload(mq_zap_t *z, mq_err_t *err)
{
	mq_curve_allow_t *a;
	int rc = load(z, &a, err);
	if (rc)
		return rc;
	mq_curve_allow_free(z->allow);
	z->allow = a;
	return 0;
}

/* Whether a refusal of key is to be reported now: 1 with the refusals
 * not reported since the last report of it in *since. */
static int pace(mq_zap_t *z, const uint8_t *key, int64_t now, uint64_t *since)
{
	refused_t *free_slot = NULL;
	for (int i = 0; i < REPORT_KEYS; i++) {
		refused_t *r = &z->refused[i];
		if (r->used && !memcmp(r->key, key, MQ_CURVE_KEY_BYTES)) {
			if (now - r->at < REPORT_EVERY_MS) {
				r->since++;
				return 0;
			}
			*since = r->since;
			r->since = 0;
			r->at = now;
			return 1;
		}
		if (!r->used && !free_slot)
			free_slot = r;
	}
	if (!free_slot) { /* the oldest slot in turn: a flood of keys is still reported, paced per key */
		free_slot = &z->refused[z->next_slot];
		z->next_slot = (z->next_slot + 1) % REPORT_KEYS;
	}
	memcpy(free_slot->key, key, MQ_CURVE_KEY_BYTES);
	free_slot->used = 1;
	free_slot->at = now;
	free_slot->since = 0;
	*since = 0;
	return 1;
}

static int send_frame(void *s, const void *p, size_t n, int more)
{
	return zmq_send(s, p, n, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

/* ZMTP metadata: one property, name and value. */
static size_t property(uint8_t *out, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	out[0] = (uint8_t)nl;
	memcpy(out + 1, name, nl);
	out[1 + nl] = (uint8_t)(vl >> 24);
	out[2 + nl] = (uint8_t)(vl >> 16);
	out[3 + nl] = (uint8_t)(vl >> 8);
	out[4 + nl] = (uint8_t)vl;
	memcpy(out + 5 + nl, value, vl);
	return 5 + nl + vl;
}

static void reply(mq_zap_t *z, const zmq_msg_t *reqid, const char *code, const char *text, const char *user,
		  const char *role)
{
	uint8_t md[64];
	size_t mdl = role ? property(md, MQ_ZAP_ROLE, role) : 0;
	const void *id = reqid ? zmq_msg_data((zmq_msg_t *)reqid) : "";
	size_t idl = reqid ? zmq_msg_size(reqid) : 0;
	if (send_frame(z->sock, "1.0", 3, 1) || send_frame(z->sock, id, idl, 1) ||
	    send_frame(z->sock, code, strlen(code), 1) || send_frame(z->sock, text, strlen(text), 1) ||
	    send_frame(z->sock, user, strlen(user), 1) || send_frame(z->sock, md, mdl, 0))
		say(z, "cannot answer a CurveZMQ key check: %s", zmq_strerror(zmq_errno()));
}

static void answer(mq_zap_t *z, zmq_msg_t *f, int n, int64_t now)
{
	if (n < 2) {
		reply(z, NULL, "500", "malformed request", "", NULL);
		return;
	}
	if (n != 7 || zmq_msg_size(&f[0]) != 3 || memcmp(zmq_msg_data(&f[0]), "1.0", 3) ||
	    zmq_msg_size(&f[5]) != 5 || memcmp(zmq_msg_data(&f[5]), "CURVE", 5) ||
	    zmq_msg_size(&f[6]) != MQ_CURVE_KEY_BYTES) {
		reply(z, &f[1], "400", "only CurveZMQ clients are accepted", "", NULL);
		return;
	}
	const uint8_t *key = zmq_msg_data(&f[6]);
	const char *name = "", *role = "admin";
	int admin = 1;
	if (z->allow) {
		if (!mq_curve_allow_find(z->allow, key, &name, &admin)) {
			uint64_t since;
			if (pace(z, key, now, &since)) {
				char text[MQ_CURVE_KEY_TEXT + 1];
				zmq_z85_encode(text, key, MQ_CURVE_KEY_BYTES);
				char more[96] = "";
				if (since)
					snprintf(more, sizeof more, " (refused %llu more times since the last report)",
						 (unsigned long long)since);
				size_t al = zmq_msg_size(&f[3]);
				say(z, "refused a client at %.*s: its public key %s is not in %s%s%s%s%s (to let it in, put "
				    "the key in a file there and send mq-serve SIGHUP)%s",
				    (int)(al > 100 ? 100 : al), (const char *)zmq_msg_data(&f[3]), text,
				    z->allow_dir ? "--curve-allow " : "", z->allow_dir ? z->allow_dir : "",
				    z->allow_dir && z->admin_dir ? " or " : "", z->admin_dir ? "--curve-allow-admin " : "",
				    z->admin_dir ? z->admin_dir : "", more);
			}
			reply(z, &f[1], "400", "key not allowed", "", NULL);
			return;
		}
		role = admin || !z->admin_dir ? "admin" : "client";
	}
	reply(z, &f[1], "200", "OK", name, role);
}

int mq_zap_serve(mq_zap_t *z, int64_t now_ms)
{
	int served = 0;
	for (;;) {
		zmq_msg_t f[ZAP_FRAMES];
		int n = 0, more = 1;
		zmq_msg_init(&f[0]);
		if (zmq_msg_recv(&f[0], z->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&f[0]);
			return served;
		}
		more = zmq_msg_more(&f[0]);
		n = 1;
		while (more) {
			zmq_msg_t *m = &f[n < ZAP_FRAMES ? n : ZAP_FRAMES - 1];
			if (n >= ZAP_FRAMES) /* counted, not kept: refused below */
				zmq_msg_close(m);
			zmq_msg_init(m);
			if (zmq_msg_recv(m, z->sock, 0) < 0)
				break;
			more = zmq_msg_more(m);
			n++;
		}
		answer(z, f, n, now_ms);
		for (int i = 0; i < (n < ZAP_FRAMES ? n : ZAP_FRAMES); i++)
			zmq_msg_close(&f[i]);
		served++;
	}
}

void mq_zap_close(mq_zap_t *z)
{
	if (!z)
		return;
	if (z->sock)
		zmq_close(z->sock);
	mq_curve_allow_free(z->allow);
	free(z->allow_dir);
	free(z->admin_dir);
	free(z);
}
