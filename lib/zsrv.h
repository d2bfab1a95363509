/*
 * zsrv.h -- mq-serve's own ZMTP listener: what a ZeroMQ ROUTER socket
 * does for DEALER peers over TCP with the NULL mechanism, done in the
 * broker's thread.
 *
 * Why not libzmq here: libzmq reads and writes sockets in an I/O thread
 * and hands every message across to the application thread and back,
 * each hop a thread wake-up.  On a machine of two cores that is most of
 * a round trip (a ROUTER echo measured 40 us where the same exchange
 * over plain TCP takes 12 us), and the latency a pipe user sees is two
 * of those hops.  So the broker serves its plain TCP endpoints itself;
 * CurveZMQ endpoints, ipc:// and the forms only libzmq resolves (network
 * interface names, a source address) stay with libzmq, whose ROUTER the
 * broker keeps using for them.
 *
 * The ROUTER's rules are kept: each message comes with the id of the
 * connection it came on; a reply to a connection that is gone is
 * dropped (-MQ_ENOENT), and so is one to a peer that stopped reading
 * while more than max_queue bytes wait for it (-MQ_EAGAIN): the client's
 * timeout and retry take over, as with ZMQ_ROUTER_MANDATORY.  Heartbeat
 * PINGs are answered with PONG.  A peer that breaks the protocol, sends
 * a frame over max_frame or does not finish its handshake in time is
 * disconnected; a dead peer is found by TCP keepalive.
 *
 * Every length read from a peer is checked against max_frame (4 KiB
 * until its handshake is done) before the input buffer grows for it,
 * and it grows at most twofold per read, as bytes come.  Peers speak
 * ZMTP 3.0 or later (libzmq 4.1 on); older ones are dropped.  Input
 * is read from a connection only when no whole message of it is waiting
 * to be taken, so a broker that is behind pushes back on its clients
 * through TCP instead of buffering without bound.
 */
#ifndef MQ_ZSRV_H
#define MQ_ZSRV_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"
#include "zmtp.h"

typedef struct mq_zsrv mq_zsrv_t;

typedef struct mq_zsrv_opts {
	size_t max_frame; /* a larger frame from a peer: it is disconnected */
	size_t max_queue; /* output bytes waiting for one peer beyond which replies to it are dropped */
	int handshake_ms; /* a peer must finish its handshake this soon (0: 30 s, as libzmq) */
	/* accept failed for a reason worth the broker's log (no descriptors) */
	void (*fault)(void *ctx, const mq_err_t *err);
	void *ctx;
} mq_zsrv_opts_t;

#define MQ_ZSRV_MAX_FRAMES 64 /* frames of one message from a peer; more: disconnected */

/* Whether endpoint is one this module listens on: "tcp://HOST:PORT"
 * with HOST "*", "localhost", an IPv4 address or a bracketed IPv6
 * address, and PORT a number (0 or "*": any free port). */
int mq_zsrv_supports(const char *endpoint);

/* Listen on endpoint: 0, or < 0 with err ("cannot listen on ...";
 * -MQ_EBUSY when the address is in use). */
int mq_zsrv_listen(const char *endpoint, const mq_zsrv_opts_t *o, mq_zsrv_t **out, mq_err_t *err);

/* A server without a listening socket, for connections given with
 * mq_zsrv_adopt (tests, fuzzing). */
int mq_zsrv_new(const mq_zsrv_opts_t *o, mq_zsrv_t **out, mq_err_t *err);

/* Serve a connected stream as if accepted (s owns fd, also on failure). */
int mq_zsrv_adopt(mq_zsrv_t *s, int fd, mq_err_t *err);

/* The endpoint as bound, with the port chosen ("tcp://0.0.0.0:7733"). */
const char *mq_zsrv_endpoint(const mq_zsrv_t *s);

/* The waits for the next poll, at most max of them, into p: the number.
 * mq_zsrv_npoll says how many there may be.  Connections closed or timed
 * out are released here: frames taken before are invalid from now on. */
int mq_zsrv_npoll(const mq_zsrv_t *s);
int mq_zsrv_poll(mq_zsrv_t *s, struct pollfd *p, int max, int64_t now_ms);

/* After the poll: accept, read and write what p[0..n) says is ready
 * (n as mq_zsrv_poll returned, revents filled in). */
void mq_zsrv_handle(mq_zsrv_t *s, const struct pollfd *p, int n);

/* Take the next whole message, the connections in turn: 1 with its
 * frames (pointing into s's buffers, valid until the next mq_zsrv_poll)
 * and the connection's id, 0 when none is waiting. */
int mq_zsrv_recv(mq_zsrv_t *s, uint64_t *peer, const mq_zmtp_frame_t **f, int *n);

/* 1 when a whole message is waiting (the poll must not sleep). */
int mq_zsrv_ready(const mq_zsrv_t *s);

/* Queue a message of frames[0..n) (n >= 1) to peer, taking their
 * memory: every frames[i] is empty after the call, whatever it returns.
 * 0, -MQ_ENOENT (the connection is gone), -MQ_EAGAIN (its queue is
 * full), -MQ_ENOMEM.  Nothing is written until mq_zsrv_flush. */
int mq_zsrv_send(mq_zsrv_t *s, uint64_t peer, mq_buf_t *frames, int n);

/* Write what is queued to every connection, as much as each takes now. */
void mq_zsrv_flush(mq_zsrv_t *s);

/* The monotonic ms of the next handshake deadline or accept retry, or
 * INT64_MAX. */
int64_t mq_zsrv_next_deadline(const mq_zsrv_t *s);

/* Connections open (handshaking or not). */
int mq_zsrv_peers(const mq_zsrv_t *s);

void mq_zsrv_close(mq_zsrv_t *s);

#endif
