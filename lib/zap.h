/*
 * zap.h -- the broker's ZAP handler (rfc.zeromq.org/spec/27): which
 * CurveZMQ clients may connect, and with what rights.
 *
 * libzmq asks, for every CURVE handshake on a socket of the context,
 * over inproc://zeromq.zap.01; the broker's loop polls mq_zap_socket
 * and calls mq_zap_serve, so no thread of ours is involved.  A client
 * whose public key is in the allow-list (curve.h) is let in, its
 * messages carrying User-Id (the key file's name) and the property
 * MQ_ZAP_ROLE: "admin" or "client".  With no allow-list at all, every
 * client is let in (the traffic is still encrypted and the server
 * authenticated) as an admin.  Refused keys are reported, each at most
 * once a minute with a count of the refusals in between.
 */
#ifndef MQ_ZAP_H
#define MQ_ZAP_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MQ_ZAP_ROLE "X-Mq-Role"

typedef struct mq_zap mq_zap_t;

typedef struct mq_zap_opts {
	const char *allow_dir; /* NULL: every key is let in */
	const char *admin_dir; /* NULL: every key let in is an admin */
	void (*report)(void *ctx, const char *msg);
	void *report_ctx;
} mq_zap_opts_t;

/* Read the lists and bind the handler in zctx.  0, or < 0 with err
 * (a list that cannot be read, a handler bound already). */
int mq_zap_open(void *zctx, const mq_zap_opts_t *o, mq_zap_t **out, mq_err_t *err);

/* The socket to poll for ZMQ_POLLIN. */
void *mq_zap_socket(mq_zap_t *z);

/* Answer every request waiting (never blocks); now_ms (mq_mono_ms)
 * paces the reports.  The number answered. */
int mq_zap_serve(mq_zap_t *z, int64_t now_ms);

/* Read the lists again (SIGHUP): 0 with the new lists in force, or < 0
 * with err and the old lists still in force.  Connections made are not
 * touched. */
int mq_zap_reload(mq_zap_t *z, mq_err_t *err);

/* Keys in the lists now; -1 when every key is let in. */
long mq_zap_keys(const mq_zap_t *z);

void mq_zap_close(mq_zap_t *z);

#endif
