/*
 * zmtp.h -- one DEALER connection to mq-serve, spoken directly: ZMTP 3.1
 * (rfc.zeromq.org/spec/37) with the NULL mechanism over one TCP or
 * Unix-domain stream, without libzmq.
 *
 * It is what a short-lived client needs and nothing more: a one-shot
 * `mq-pub -m` starts no I/O threads and does not load libzmq at all, so
 * it costs little more than the exec and its round trips.  The peer is
 * an ordinary ZeroMQ ROUTER (mq-serve's sockets): heartbeats it sends
 * (PING) are answered, its ERROR command is reported.
 *
 * No reconnection here: a lost connection is an error and the caller
 * decides (lib/client.c connects again within its timeout).  Every
 * frame length read from the peer is checked against max_frame before
 * it is waited for, and the input buffer grows only with bytes that
 * actually arrived.
 */
#ifndef MQ_ZMTP_H
#define MQ_ZMTP_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct mq_zmtp mq_zmtp_t;

typedef struct mq_zmtp_frame {
	const void *p;
	size_t len;
} mq_zmtp_frame_t;

#define MQ_ZMTP_MAX_FRAMES 8192 /* frames a message may have (a FETCH reply: one a partition) */

/* Whether endpoint is one this module can dial: "tcp://HOST:PORT" (HOST
 * a name, an IPv4 address or a bracketed IPv6 address) or
 * "ipc://PATH".  Other forms (a source address, other transports) are
 * libzmq's. */
int mq_zmtp_supports(const char *endpoint);

/* Open a stream to endpoint and wait until deadline_ms (mq_mono_ms; <
 * 0: no limit) for it: the connected descriptor (close-on-exec,
 * non-blocking), or < 0 with why (n bytes) saying what failed in
 * words that fit after "cannot connect to ENDPOINT: ", e.g.
 * "connection refused" or "host 'x' not found (...)": -MQ_ECONNECT,
 * -MQ_ETIMEDOUT, or -MQ_EINVAL for an endpoint mq_zmtp_supports refuses. */
int mq_zmtp_dial(const char *endpoint, int64_t deadline_ms, char *why, size_t n);

/* Dial endpoint and complete the handshake as a DEALER by deadline_ms.
 * Received frames over max_frame bytes are a protocol error.  0, or <
 * 0 with err: -MQ_ECONNECT / -MQ_ETIMEDOUT (err->msg is the dial's why),
 * -MQ_EPROTO (the peer is not a ZMTP 3 ROUTER with the NULL mechanism),
 * -MQ_EIO (the connection failed during the handshake). */
int mq_zmtp_connect(const char *endpoint, int64_t deadline_ms, size_t max_frame, mq_zmtp_t **out, mq_err_t *err);

/* mq_zmtp_connect over a stream already connected (non-blocking; z
 * owns fd from here on, closed on failure too). */
int mq_zmtp_attach(int fd, int64_t deadline_ms, size_t max_frame, mq_zmtp_t **out, mq_err_t *err);

/* The security mechanism the ZMTP 3 peer at endpoint asks for, as its
 * greeting names it ("NULL", "CURVE", ...; printable, NUL-terminated),
 * waiting at most a second and never past deadline_ms: 1 with mech, 0
 * when no greeting came (nothing listens, not ZMTP 3).  For saying why
 * a handshake failed: libzmq drops a peer of another mechanism as soon
 * as it reads its greeting, before showing its own, so this sends only
 * the signature and version, and nothing else. */
int mq_zmtp_mechanism(const char *endpoint, int64_t deadline_ms, char mech[21]);

/* The descriptor to wait on (readable: mq_zmtp_recv may have a message). */
int mq_zmtp_fd(const mq_zmtp_t *z);

/* Send a message of n frames (n >= 1), waiting while the socket is full
 * until deadline_ms.  0, or < 0 (-MQ_EIO: the connection failed; the
 * message may be partly sent and the connection must be closed). */
int mq_zmtp_send(mq_zmtp_t *z, const mq_zmtp_frame_t *f, int n, int64_t deadline_ms, mq_err_t *err);

/* Take the next whole message if one has arrived, reading what the
 * descriptor has without waiting: 1 with (*f)[0..*n) pointing into z's
 * buffers (valid until the next call on z), 0 when none is complete
 * yet, < 0 when the connection was closed or the peer broke the
 * protocol.  Heartbeats are answered here. */
int mq_zmtp_recv(mq_zmtp_t *z, const mq_zmtp_frame_t **f, int *n, mq_err_t *err);

/* Whether mq_zmtp_recv would return at once without reading: a whole
 * message is buffered, or an error or the end of the stream is known. */
int mq_zmtp_ready(const mq_zmtp_t *z);

void mq_zmtp_close(mq_zmtp_t *z);

/* ---- the framing, shared with the broker's side (zsrv.c) ---- */

#define MQ_ZMTP_GREETING 64
#define MQ_ZMTP_F_MORE 1
#define MQ_ZMTP_F_LONG 2
#define MQ_ZMTP_F_CMD 4
#define MQ_ZMTP_BAD_FLAGS (-1)
#define MQ_ZMTP_TOO_LARGE (-2)

/* A frame's flags and size into h (9 bytes at most): its length. */
size_t mq_zmtp_frame_head(uint8_t *h, int flags, size_t len);

/* The frame at p[0..have): 1 whole (its flags, body and length; *used
 * the bytes it takes with its head), 0 not all there yet (*used then
 * says how many it takes in all once its head has come, else stays
 * untouched), MQ_ZMTP_BAD_FLAGS, or MQ_ZMTP_TOO_LARGE for a body over
 * max_frame (*len its size; checked before anything waits for it). */
int mq_zmtp_frame_parse(const uint8_t *p, size_t have, size_t max_frame, int *flags, const uint8_t **body,
			size_t *len, size_t *used);

/* A command's body split into its name and the rest: 0, or -1 malformed. */
int mq_zmtp_cmd_split(const uint8_t *b, size_t len, const uint8_t **name, size_t *nl, const uint8_t **rest,
		      size_t *rl);
int mq_zmtp_is_cmd(const uint8_t *name, size_t nl, const char *want);

/* Property want (case-insensitive) in a READY's properties p[0..rl):
 * 1 with its value, 0 absent, -1 the properties are malformed. */
int mq_zmtp_prop(const uint8_t *p, size_t rl, const char *want, const uint8_t **v, size_t *vl);

#endif
