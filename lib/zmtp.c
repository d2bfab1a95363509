/*
 * zmtp.c -- a DEALER peer speaking ZMTP 3.1 with the NULL mechanism,
 * without libzmq (see zmtp.h).
 *
 * The wire, as libzmq speaks it:
 *   greeting   64 bytes each way: signature FF 00*8 7F, version 3.1,
 *              mechanism "NULL" padded to 20 bytes, as-server 0, zeros;
 *   handshake  each side sends READY (a command) with its properties,
 *              Socket-Type above all; a peer refusing sends ERROR;
 *   traffic    frames: a flags byte (bit 0 more, bit 1 long size, bit 2
 *              command), a 1- or 8-byte big-endian size, the body.
 *              Commands between messages: PING (answered with PONG and
 *              the ping's context), others ignored.
 */
#include "zmtp.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define GREETING 64
#define F_MORE 1
#define F_LONG 2
#define F_CMD 4
#define READ_CHUNK 65536
#define PONG_WAIT_MS 1000
#define MQ_ZMTP_SEND_FRAMES 16

struct mq_zmtp {
	int fd;
	size_t max_frame;
	mq_buf_t in;  /* bytes received; in.p[rpos..in.len) not yet taken */
	size_t rpos;
	int eof;
	mq_zmtp_frame_t *fr; /* the message being taken: grows with frames received */
	int fr_cap;
};

/* ---- dialing ---- */

int mq_zmtp_supports(const char *ep)
{
	if (!strncmp(ep, "ipc://", 6)) {
		size_t n = strlen(ep + 6);
		return n > 0 && n < sizeof(((struct sockaddr_un *)0)->sun_path);
	}
	if (strncmp(ep, "tcp://", 6) || strchr(ep, ';'))
		return 0;
	const char *h = ep + 6, *colon = strrchr(h, ':');
	if (!colon || colon == h || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return 0;
	if (h[0] == '[')
		return colon[-1] == ']' && colon - h > 2;
	return !memchr(h, ']', (size_t)(colon - h)) && !(colon - h == 1 && h[0] == '*');
}

static int64_t left_ms(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t l = deadline - mq_mono_ms();
	return l < 0 ? 0 : l > INT32_MAX ? INT32_MAX : l;
}

/* Wait for events on fd until deadline: 1 ready, 0 deadline passed, < 0 errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, (int)left_ms(deadline));
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

static void lower_first(char *s)
{
	if (s[0] >= 'A' && s[0] <= 'Z' && !(s[1] >= 'A' && s[1] <= 'Z'))
		s[0] = (char)(s[0] - 'A' + 'a'); /* "Connection refused" in the middle of a sentence */
}

/* Connect fd to sa by deadline: 0, or an errno. */
static int connect_by(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EINTR)
		return errno;
	int r = wait_fd(fd, POLLOUT, deadline);
	if (r == 0)
		return ETIMEDOUT;
	if (r < 0)
		return -r;
	int e = 0;
	socklen_t sl = sizeof e;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) != 0)
		return errno;
	return e;
}

static int dial_ipc(const char *path, int64_t deadline, char *why, size_t n)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t pl = strlen(path);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + pl + 1);
	memcpy(sun.sun_path, path, pl);
	if (path[0] == '@') { /* the abstract namespace, as libzmq writes it */
		sun.sun_path[0] = '\0';
		len--;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(why, n, "cannot create a socket: %s", strerror(errno));
		return -MQ_ECONNECT;
	}
	int e = connect_by(fd, (struct sockaddr *)&sun, len, deadline);
	if (!e)
		return fd;
	close(fd);
	snprintf(why, n, "%s", strerror(e));
	lower_first(why);
	return e == ETIMEDOUT ? -MQ_ETIMEDOUT : -MQ_ECONNECT;
}

static int dial_tcp(const char *hp, int64_t deadline, char *why, size_t n)
{
	char host[256];
	const char *colon = strrchr(hp, ':');
	size_t hl = (size_t)(colon - hp);
	if (hl >= 2 && hp[0] == '[')
		hp++, hl -= 2;
	if (hl >= sizeof host) {
		snprintf(why, n, "host name too long");
		return -MQ_ECONNECT;
	}
	memcpy(host, hp, hl);
	host[hl] = '\0';
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	int g = getaddrinfo(host, colon + 1, &hints, &ai);
	if (g) {
		snprintf(why, n, "host '%.100s' not found (%s)", host, g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
		return -MQ_ECONNECT;
	}
	/* Each address in turn ("localhost" may be ::1 and 127.0.0.1). */
	int e = ECONNREFUSED;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (!(e = connect_by(fd, a->ai_addr, a->ai_addrlen, deadline))) {
			freeaddrinfo(ai);
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
			return fd;
		}
		close(fd);
		if (e == ETIMEDOUT)
			break;
	}
	freeaddrinfo(ai);
	snprintf(why, n, "%s", strerror(e));
	lower_first(why);
	return e == ETIMEDOUT ? -MQ_ETIMEDOUT : -MQ_ECONNECT;
}

int mq_zmtp_dial(const char *ep, int64_t deadline, char *why, size_t n)
{
	if (!mq_zmtp_supports(ep)) {
		snprintf(why, n, "not a tcp://HOST:PORT or ipc://PATH endpoint");
		return -MQ_EINVAL;
	}
	return !strncmp(ep, "ipc://", 6) ? dial_ipc(ep + 6, deadline, why, n) : dial_tcp(ep + 6, deadline, why, n);
}

/* ---- sending ---- */

/* Write every byte of iov[0..n) by deadline (iov is consumed). */
static int send_iov(mq_zmtp_t *z, struct iovec *iov, int n, int64_t deadline, mq_err_t *err)
{
	while (n > 0) {
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t w = sendmsg(z->fd, &mh, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return mq_err_sys(err, "sending to the broker");
			int r = wait_fd(z->fd, POLLOUT, deadline);
			if (r == 0)
				return mq_err_set(err, MQ_ETIMEDOUT, "sending to the broker: it took nothing for too long");
			if (r < 0) {
				errno = -r;
				return mq_err_sys(err, "sending to the broker");
			}
			continue;
		}
		size_t done = (size_t)w;
		while (n > 0 && done >= iov->iov_len) {
			done -= iov->iov_len;
			iov++, n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + done;
			iov->iov_len -= done;
		}
	}
	return 0;
}

size_t mq_zmtp_frame_head(uint8_t *h, int flags, size_t len)
{
	if (len <= 255) {
		h[0] = (uint8_t)flags;
		h[1] = (uint8_t)len;
		return 2;
	}
	h[0] = (uint8_t)(flags | F_LONG);
	for (int i = 0; i < 8; i++)
		h[1 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	return 9;
}

#define frame_head mq_zmtp_frame_head

int mq_zmtp_send(mq_zmtp_t *z, const mq_zmtp_frame_t *f, int n, int64_t deadline, mq_err_t *err)
{
	if (n < 1 || n > MQ_ZMTP_SEND_FRAMES)
		return mq_err_set(err, MQ_EINVAL, "a message of %d frames to send (at most %d)", n, MQ_ZMTP_SEND_FRAMES);
	uint8_t heads[MQ_ZMTP_SEND_FRAMES][9];
	struct iovec iov[2 * MQ_ZMTP_SEND_FRAMES];
	int k = 0;
	for (int i = 0; i < n; i++) {
		iov[k++] = (struct iovec){heads[i], frame_head(heads[i], i + 1 < n ? F_MORE : 0, f[i].len)};
		if (f[i].len)
			iov[k++] = (struct iovec){(void *)f[i].p, f[i].len};
	}
	return send_iov(z, iov, k, deadline, err);
}

/* A command: name and body (the properties or data after the name). */
static int send_cmd(mq_zmtp_t *z, const char *name, const void *body, size_t len, int64_t deadline, mq_err_t *err)
{
	uint8_t head[9], nm[256];
	size_t nl = strlen(name);
	nm[0] = (uint8_t)nl;
	memcpy(nm + 1, name, nl);
	struct iovec iov[3] = {{head, frame_head(head, F_CMD, 1 + nl + len)}, {nm, 1 + nl}, {(void *)body, len}};
	return send_iov(z, iov, len ? 3 : 2, deadline, err);
}

/* ---- receiving ---- */

/* Read what the socket has now (never waits): > 0 bytes, 0 nothing
 * (EAGAIN), < 0 error, and z->eof at the end of the stream. */
static int fill(mq_zmtp_t *z, mq_err_t *err)
{
	if (z->rpos && z->rpos == z->in.len)
		z->rpos = z->in.len = 0;
	if (z->in.cap - z->in.len < READ_CHUNK / 4 && mq_buf_reserve(&z->in, READ_CHUNK))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	for (;;) {
		ssize_t r = recv(z->fd, z->in.p + z->in.len, z->in.cap - z->in.len, 0);
		if (r > 0) {
			z->in.len += (size_t)r;
			return 1;
		}
		if (r == 0) {
			z->eof = 1;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return mq_err_sys(err, "receiving from the broker");
	}
}

int mq_zmtp_frame_parse(const uint8_t *p, size_t have, size_t max_frame, int *flags, const uint8_t **body,
			size_t *len, size_t *used)
{
	if (have < 2)
		return 0;
	if (p[0] & ~(F_MORE | F_LONG | F_CMD))
		return MQ_ZMTP_BAD_FLAGS;
	size_t hl = p[0] & F_LONG ? 9 : 2;
	uint64_t n = 0;
	if (have < hl)
		return 0;
	if (hl == 2) {
		n = p[1];
	} else {
		for (int i = 1; i < 9; i++)
			n = n << 8 | p[i];
	}
	*len = (size_t)n;
	if (n > max_frame)
		return MQ_ZMTP_TOO_LARGE;
	*used = hl + (size_t)n;
	if (have - hl < n)
		return 0;
	*flags = p[0];
	*body = p + hl;
	return 1;
}

/* The frame at *pos: 1 whole (flags, body, its length; *pos past it), 0
 * not all there yet, < 0 malformed. */
static int frame_at(const mq_zmtp_t *z, size_t *pos, int *flags, const uint8_t **body, size_t *len, mq_err_t *err)
{
	size_t used = 0;
	const uint8_t *p = z->in.p + *pos;
	int rc = mq_zmtp_frame_parse(p, z->in.len - *pos, z->max_frame, flags, body, len, &used);
	if (rc == MQ_ZMTP_BAD_FLAGS)
		return mq_err_set(err, MQ_EPROTO, "the broker sent a frame with flags 0x%02x", p[0]);
	if (rc == MQ_ZMTP_TOO_LARGE)
		return mq_err_set(err, MQ_EPROTO, "the broker sent a frame of %zu bytes (at most %zu expected)", *len,
				  z->max_frame);
	if (rc == 1)
		*pos += used;
	return rc;
}

int mq_zmtp_cmd_split(const uint8_t *b, size_t len, const uint8_t **name, size_t *nl, const uint8_t **rest,
		      size_t *rl)
{
	if (len < 1 || (size_t)b[0] + 1 > len)
		return -1;
	*name = b + 1;
	*nl = b[0];
	*rest = b + 1 + b[0];
	*rl = len - 1 - b[0];
	return 0;
}

static int cmd_split(const uint8_t *b, size_t len, const uint8_t **name, size_t *nl, const uint8_t **rest,
		     size_t *rl, mq_err_t *err)
{
	if (mq_zmtp_cmd_split(b, len, name, nl, rest, rl))
		return mq_err_set(err, MQ_EPROTO, "the broker sent a malformed command");
	return 0;
}

int mq_zmtp_is_cmd(const uint8_t *name, size_t nl, const char *want)
{
	return nl == strlen(want) && !memcmp(name, want, nl);
}

#define is_cmd mq_zmtp_is_cmd

int mq_zmtp_prop(const uint8_t *p, size_t rl, const char *want, const uint8_t **v, size_t *vl)
{
	int found = 0;
	size_t wl = strlen(want);
	while (rl) {
		size_t kl = p[0];
		if (1 + kl + 4 > rl)
			return -1;
		const uint8_t *key = p + 1, *val = p + 1 + kl + 4;
		uint32_t n = (uint32_t)p[1 + kl] << 24 | (uint32_t)p[2 + kl] << 16 | (uint32_t)p[3 + kl] << 8 | p[4 + kl];
		if (n > rl - 1 - kl - 4)
			return -1;
		if (!found && kl == wl && !strncasecmp((const char *)key, want, wl)) {
			*v = val;
			*vl = n;
			found = 1;
		}
		p = val + n;
		rl -= 1 + kl + 4 + n;
	}
	return found;
}

/* A command between messages: PING answered, ERROR an error, others
 * (SUBSCRIBE, PONG, ...) not for a DEALER and dropped. */
static int on_cmd(mq_zmtp_t *z, const uint8_t *b, size_t len, mq_err_t *err)
{
	const uint8_t *name = NULL, *rest = NULL;
	size_t nl = 0, rl = 0;
	if (cmd_split(b, len, &name, &nl, &rest, &rl, err))
		return -MQ_EPROTO;
	if (is_cmd(name, nl, "PING")) {
		if (rl < 2 || rl - 2 > 16)
			return mq_err_set(err, MQ_EPROTO, "the broker sent a malformed PING");
		return send_cmd(z, "PONG", rest + 2, rl - 2, mq_mono_ms() + PONG_WAIT_MS, err);
	}
	if (is_cmd(name, nl, "ERROR")) {
		size_t rn = rl ? rest[0] : 0;
		if (rn + 1 > rl)
			rn = rl ? rl - 1 : 0;
		return mq_err_set(err, MQ_EPROTO, "the broker closed the connection: %.*s", (int)rn, rest + 1);
	}
	return 0;
}

/* A whole message at rpos (commands before it handled): 1 with its
 * frames, 0 not all there, < 0 error. */
static int take_msg(mq_zmtp_t *z, int *n, mq_err_t *err)
{
	for (;;) {
		size_t pos = z->rpos;
		int k = 0, flags, rc;
		const uint8_t *body;
		size_t len;
		while ((rc = frame_at(z, &pos, &flags, &body, &len, err)) == 1) {
			if (flags & F_CMD) {
				if (k)
					return mq_err_set(err, MQ_EPROTO, "the broker sent a command inside a message");
				break;
			}
			if (k == MQ_ZMTP_MAX_FRAMES)
				return mq_err_set(err, MQ_EPROTO, "the broker sent a message of more than %d frames",
						  MQ_ZMTP_MAX_FRAMES);
			if (k == z->fr_cap) { /* each frame has come: at least two bytes of it */
				int cap = z->fr_cap ? 2 * z->fr_cap : 16;
				mq_zmtp_frame_t *nf = realloc(z->fr, (size_t)cap * sizeof *nf);
				if (!nf)
					return mq_err_set(err, MQ_ENOMEM, "out of memory");
				z->fr = nf;
				z->fr_cap = cap;
			}
			z->fr[k++] = (mq_zmtp_frame_t){body, len};
			if (!(flags & F_MORE)) {
				*n = k;
				z->rpos = pos;
				return 1;
			}
		}
		if (rc <= 0)
			return rc;
		z->rpos = pos; /* the command */
		if ((rc = on_cmd(z, body, len, err)))
			return rc;
	}
}

int mq_zmtp_recv(mq_zmtp_t *z, const mq_zmtp_frame_t **f, int *n, mq_err_t *err)
{
	*f = NULL;
	/* What the previous call returned is released: keep only the rest. */
	if (z->rpos) {
		memmove(z->in.p, z->in.p + z->rpos, z->in.len - z->rpos);
		z->in.len -= z->rpos;
		z->rpos = 0;
	}
	for (;;) {
		int rc = take_msg(z, n, err);
		if (rc > 0)
			*f = z->fr;
		if (rc)
			return rc;
		if (z->eof)
			return mq_err_set(err, MQ_EIO, "the broker closed the connection");
		if ((rc = fill(z, err)) <= 0 && !z->eof)
			return rc;
	}
}

int mq_zmtp_ready(const mq_zmtp_t *z)
{
	size_t pos = z->rpos;
	int flags = 0;
	const uint8_t *b;
	size_t len;
	mq_err_t e;
	int rc;
	while ((rc = frame_at(z, &pos, &flags, &b, &len, &e)) == 1)
		if (!(flags & (F_CMD | F_MORE)))
			return 1;
	return rc < 0 || z->eof; /* an error or the end: for mq_zmtp_recv to say */
}

/* ---- the handshake ---- */

/* Wait for the next frame by deadline (for the handshake). */
static int next_frame(mq_zmtp_t *z, int64_t deadline, int *flags, const uint8_t **body, size_t *len, mq_err_t *err)
{
	for (;;) {
		size_t pos = z->rpos;
		int rc = frame_at(z, &pos, flags, body, len, err);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			z->rpos = pos;
			return 0;
		}
		if (z->eof)
			return mq_err_set(err, MQ_EIO, "the broker closed the connection during the handshake");
		if ((rc = fill(z, err)) < 0)
			return rc;
		if (rc == 0 && !z->eof && (rc = wait_fd(z->fd, POLLIN, deadline)) <= 0)
			return rc == 0 ? mq_err_set(err, MQ_ETIMEDOUT, "the broker did not complete the handshake in time")
				       : mq_err_set(err, MQ_EIO, "waiting for the broker: %s", strerror(-rc));
	}
}

/* The peer's READY: its Socket-Type must be one a DEALER talks to. */
static int check_ready(const uint8_t *b, size_t len, mq_err_t *err)
{
	const uint8_t *name = NULL, *p = NULL;
	size_t nl = 0, rl = 0;
	if (cmd_split(b, len, &name, &nl, &p, &rl, err))
		return -MQ_EPROTO;
	if (is_cmd(name, nl, "ERROR")) {
		size_t rn = rl ? p[0] : 0;
		if (rn + 1 > rl)
			rn = rl ? rl - 1 : 0;
		return mq_err_set(err, MQ_EPROTO, "the broker refused the connection: %.*s", (int)rn, p + 1);
	}
	if (!is_cmd(name, nl, "READY"))
		return mq_err_set(err, MQ_EPROTO, "the broker sent %.*s where READY was expected", (int)nl, name);
	const uint8_t *v = NULL;
	size_t vl = 0;
	int has = mq_zmtp_prop(p, rl, "Socket-Type", &v, &vl);
	if (has < 0)
		return mq_err_set(err, MQ_EPROTO, "the broker sent a malformed READY");
	if (has && !((vl == 6 && !memcmp(v, "ROUTER", 6)) || (vl == 6 && !memcmp(v, "DEALER", 6))))
		return mq_err_set(err, MQ_EPROTO, "the endpoint is a ZeroMQ %.*s socket, not mq-serve's ROUTER",
				  (int)(vl > 20 ? 20 : vl), v);
	return 0;
}

static int mech_error(const char *mech, mq_err_t *err);

/* The mechanism a greeting names (its 20 bytes at offset 12), printable. */
static void mech_of(const uint8_t *greeting, char mech[21])
{
	memcpy(mech, greeting + 12, 20);
	mech[20] = '\0';
	for (char *c = mech; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
}

static int handshake(mq_zmtp_t *z, int64_t deadline, mq_err_t *err)
{
	/* Greeting and READY go out together; libzmq reads them in turn. */
	uint8_t g[GREETING] = {0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1, 'N', 'U', 'L', 'L'};
	static const uint8_t props[] = {11, 'S', 'o', 'c', 'k', 'e', 't', '-', 'T', 'y', 'p', 'e', 0, 0, 0, 6,
					'D', 'E', 'A', 'L', 'E', 'R', 8, 'I', 'd', 'e', 'n', 't', 'i', 't', 'y',
					0, 0, 0, 0};
	uint8_t head[9], nm[6] = {5, 'R', 'E', 'A', 'D', 'Y'};
	struct iovec iov[4] = {{g, sizeof g}, {head, frame_head(head, F_CMD, sizeof nm + sizeof props)},
			       {nm, sizeof nm}, {(void *)props, sizeof props}};
	int rc = send_iov(z, iov, 4, deadline, err);
	if (rc)
		return rc;
	while (z->in.len < GREETING) {
		if (z->eof)
			return mq_err_set(err, MQ_EPROTO, "the endpoint closed the connection before greeting: "
					  "not mq-serve, or one that refused us");
		if ((rc = fill(z, err)) < 0)
			return rc;
		if (rc == 0 && !z->eof && (rc = wait_fd(z->fd, POLLIN, deadline)) <= 0)
			return rc == 0 ? mq_err_set(err, MQ_ETIMEDOUT, "the endpoint did not greet in time (not mq-serve?)")
				       : mq_err_set(err, MQ_EIO, "waiting for the broker: %s", strerror(-rc));
	}
	const uint8_t *pg = z->in.p;
	if (pg[0] != 0xFF || pg[9] != 0x7F || pg[10] < 3)
		return mq_err_set(err, MQ_EPROTO, "the endpoint does not speak ZMTP 3 (not mq-serve?)");
	static const char null_mech[20] = "NULL";
	if (memcmp(pg + 12, null_mech, sizeof null_mech)) {
		char mech[21];
		mech_of(pg, mech);
		return mech_error(mech, err);
	}
	z->rpos = GREETING;
	int flags;
	const uint8_t *body;
	size_t len;
	if ((rc = next_frame(z, deadline, &flags, &body, &len, err)))
		return rc;
	if (!(flags & F_CMD))
		return mq_err_set(err, MQ_EPROTO, "the broker sent a message before READY");
	return check_ready(body, len, err);
}

/* The mechanism a peer that reset the connection during the handshake
 * wants.  libzmq sends its greeting in two parts, the rest only once it
 * has the peer's version byte, and a server whose mechanism is not ours
 * drops the connection as soon as it reads ours: to a peer that sent
 * all of its greeting at once (as handshake does), it never shows its
 * own.  So: dial again, send the signature and the version only, and
 * read the peer's whole greeting (zmtp.h). */
int mq_zmtp_mechanism(const char *ep, int64_t deadline, char mech[21])
{
	int64_t until = mq_mono_ms() + PONG_WAIT_MS;
	if (deadline >= 0 && deadline < until)
		until = deadline;
	char why[320];
	int fd = mq_zmtp_dial(ep, until, why, sizeof why);
	if (fd < 0)
		return 0;
	static const uint8_t sig[11] = {0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3};
	uint8_t g[GREETING];
	size_t have = 0;
	if (send(fd, sig, sizeof sig, MSG_NOSIGNAL) == (ssize_t)sizeof sig) {
		while (have < GREETING && wait_fd(fd, POLLIN, until) > 0) {
			ssize_t r = recv(fd, g + have, GREETING - have, 0);
			if (r <= 0 && !(r < 0 && (errno == EINTR || errno == EAGAIN)))
				break;
			if (r > 0)
				have += (size_t)r;
		}
	}
	close(fd);
	if (have < 32 || g[0] != 0xFF || g[9] != 0x7F || g[10] < 3) /* the mechanism ends at byte 32 */
		return 0;
	mech_of(g, mech);
	return 1;
}

static int mech_error(const char *mech, mq_err_t *err)
{
	if (!strcmp(mech, "CURVE"))
		return mq_err_set(err, MQ_EPROTO, "the broker requires CurveZMQ: give --curve-server KEY (the "
				  "broker's public key) and --curve-secret FILE (this client's secret key), or "
				  "set MQ_CURVE_SERVER and MQ_CURVE_SECRET");
	return mq_err_set(err, MQ_EPROTO, "the broker requires the %s security mechanism", mech);
}

static int attach(int fd, int64_t deadline, size_t max_frame, mq_zmtp_t **out, int *sig_only, mq_err_t *err)
{
	mq_zmtp_t *z = calloc(1, sizeof *z);
	if (!z) {
		close(fd);
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	z->fd = fd;
	z->max_frame = max_frame < 256 ? 256 : max_frame;
	int rc = handshake(z, deadline, err);
	if (rc) {
		/* Lost before the peer's whole greeting came (its reset may
		 * even discard the signature it sent): what probe_mechanism
		 * looks into. */
		*sig_only = (rc == -MQ_EIO || (rc == -MQ_EPROTO && z->eof)) && z->in.len < GREETING;
		mq_zmtp_close(z);
		return rc;
	}
	*out = z;
	return 0;
}

int mq_zmtp_connect(const char *ep, int64_t deadline, size_t max_frame, mq_zmtp_t **out, mq_err_t *err)
{
	char why[320];
	int fd = mq_zmtp_dial(ep, deadline, why, sizeof why), sig_only = 0;
	if (fd < 0)
		return mq_err_set(err, -fd, "%s", why);
	int rc = attach(fd, deadline, max_frame, out, &sig_only, err);
	char mech[21];
	if (rc && sig_only && mq_zmtp_mechanism(ep, deadline, mech) && strcmp(mech, "NULL"))
		return mech_error(mech, err);
	return rc;
}

int mq_zmtp_attach(int fd, int64_t deadline, size_t max_frame, mq_zmtp_t **out, mq_err_t *err)
{
	int sig_only;
	return attach(fd, deadline, max_frame, out, &sig_only, err);
}

int mq_zmtp_fd(const mq_zmtp_t *z)
{
	return z->fd;
}

void mq_zmtp_close(mq_zmtp_t *z)
{
	if (!z)
		return;
	close(z->fd);
	mq_buf_free(&z->in);
	free(z->fr);
	free(z);
}
