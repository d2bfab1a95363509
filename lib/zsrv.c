/*
 * zsrv.c -- mq-serve's own ZMTP 3.1 listener for plain TCP endpoints
 * (see zsrv.h for why and what it keeps of a ROUTER).
 *
 * A connection goes GREETING (the peer's 64-byte greeting awaited; ours
 * and our READY went out on accept) -> READY (the peer's READY command
 * awaited: Socket-Type DEALER, REQ or ROUTER) -> OPEN.  Its input is one
 * buffer: c->in.p[rpos..len) not taken yet.  `full` says a whole message
 * lies at rpos (commands before it already handled), `need` how many
 * bytes from rpos the message in progress takes once its frame heads
 * have come, so that one read can bring a large frame whole.
 *
 * Output is a queue of segments: frame heads and small frames copied
 * into c->small, larger frames kept in the memory they came in (taken
 * from the caller, freed once written).  mq_zsrv_flush writes each
 * connection's queue with one sendmsg as far as the socket takes it;
 * the rest waits for POLLOUT.
 *
 * A connection is closed in two steps: `dead` at once (nothing more is
 * read, written or queued), released at the next mq_zsrv_poll, so that
 * frames handed out in the turn stay valid until it ends.
 */
#include "zsrv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_MIN (16u << 10)
#define READ_CHUNK (256u << 10)
#define SHRINK_ABOVE (4u << 20) /* an idle input buffer larger than this is given back */
#define SMALL_COPY 2048         /* frames up to this size are copied into the queue */
#define IOV_BATCH 256
#define HANDSHAKE_MS 30000
#define HANDSHAKE_FRAME_MAX 4096 /* READY with its properties */
#define ACCEPTS_PER_TURN 64
#define ACCEPT_PAUSE_MS 100 /* after running out of descriptors */
#define LINGER_MS 1000

enum { ST_GREETING, ST_READY, ST_OPEN };

typedef struct seg {
	uint8_t *own; /* NULL: the bytes are c->small.p[off..off+len) */
	size_t off, len;
} seg_t;

typedef struct conn {
	int fd; /* -1: a free slot */
	uint32_t gen;
	int state;
	int dead, eof;
	int full;    /* a whole message is at rpos */
	int filled;  /* the last read filled the buffer: the next may take more */
	size_t need; /* bytes from rpos the message in progress takes (0: not known yet) */
	int64_t hs_deadline;
	mq_buf_t in;
	size_t rpos;
	seg_t *seg;
	int nseg, segcap, shead;
	mq_buf_t small;
	size_t queued; /* bytes waiting to be written */
} conn_t;

struct mq_zsrv {
	mq_zsrv_opts_t o;
	size_t max_msg;
	int lfd; /* -1: none */
	char endpoint[128];
	int64_t accept_after; /* mono ms; 0: accepting */
	conn_t *c;
	int nc, capc;
	int open;  /* slots in use */
	int nfull; /* connections with a whole message waiting */
	int cursor;
	uint32_t gen;
	mq_zmtp_frame_t fr[MQ_ZSRV_MAX_FRAMES];
};

/* ---- endpoints ---- */

/* Split "tcp://HOST:PORT" into the address to bind: 0, or -1 not ours. */
static int parse_ep(const char *ep, struct sockaddr_storage *ss, socklen_t *len)
{
	if (strncmp(ep, "tcp://", 6))
		return -1;
	const char *h = ep + 6, *colon = strrchr(h, ':');
	if (!colon || colon == h)
		return -1;
	const char *port = colon + 1;
	unsigned long pv = 0;
	if (!strcmp(port, "*")) {
		pv = 0;
	} else {
		if (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5)
			return -1;
		pv = strtoul(port, NULL, 10);
		if (pv > 65535)
			return -1;
	}
	size_t hl = (size_t)(colon - h);
	char host[64];
	if (hl >= sizeof host)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memset(ss, 0, sizeof *ss);
	if (host[0] == '[') {
		if (hl < 3 || host[hl - 1] != ']')
			return -1;
		host[hl - 1] = '\0';
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			return -1;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)pv);
		*len = sizeof *a;
		return 0;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	if (!strcmp(host, "*"))
		a->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (!strcmp(host, "localhost"))
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return -1;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)pv);
	*len = sizeof *a;
	return 0;
}

int mq_zsrv_supports(const char *endpoint)
{
	struct sockaddr_storage ss;
	socklen_t len;
	return parse_ep(endpoint, &ss, &len) == 0;
}

int mq_zsrv_new(const mq_zsrv_opts_t *o, mq_zsrv_t **out, mq_err_t *err)
{
	mq_zsrv_t *s = calloc(1, sizeof *s);
	if (!s)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	s->o = *o;
	if (s->o.handshake_ms <= 0)
		s->o.handshake_ms = HANDSHAKE_MS;
	if (s->o.max_frame < 256)
		s->o.max_frame = 256;
	s->max_msg = 2 * s->o.max_frame;
	s->lfd = -1;
	*out = s;
	return 0;
}

int mq_zsrv_listen(const char *ep, const mq_zsrv_opts_t *o, mq_zsrv_t **out, mq_err_t *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (parse_ep(ep, &ss, &len))
		return mq_err_set(err, MQ_EINVAL, "cannot listen on %s: not an endpoint of the form tcp://HOST:PORT", ep);
	mq_zsrv_t *s;
	int rc = mq_zsrv_new(o, &s, err);
	if (rc)
		return rc;
	s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int e = errno;
	if (s->lfd >= 0) {
		/* as libzmq: a restart binds at once although old connections linger */
		setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
		if (ss.ss_family == AF_INET6) /* as libzmq: [::] takes IPv4 clients too */
			setsockopt(s->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){0}, sizeof(int));
		if (bind(s->lfd, (struct sockaddr *)&ss, len) == 0 && listen(s->lfd, SOMAXCONN) == 0)
			e = 0;
		else
			e = errno;
	}
	if (e) {
		mq_zsrv_close(s);
		return mq_err_set(err, e == EADDRINUSE ? MQ_EBUSY : MQ_EINVAL, "cannot listen on %s: %s%s", ep,
				  strerror(e), e == EADDRINUSE ? " (another mq-serve? choose another endpoint with -l)" : "");
	}
	len = sizeof ss;
	char addr[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (getsockname(s->lfd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof addr);
			port = ntohs(a->sin6_port);
		} else {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a->sin_addr, addr, sizeof addr);
			port = ntohs(a->sin_port);
		}
	}
	snprintf(s->endpoint, sizeof s->endpoint, ss.ss_family == AF_INET6 ? "tcp://[%s]:%u" : "tcp://%s:%u", addr,
		 port);
	*out = s;
	return 0;
}

const char *mq_zsrv_endpoint(const mq_zsrv_t *s)
{
	return s->endpoint;
}

/* ---- connections ---- */

static void conn_kill(mq_zsrv_t *s, conn_t *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	if (c->full) {
		c->full = 0;
		s->nfull--;
	}
}

static void conn_release(mq_zsrv_t *s, conn_t *c)
{
	close(c->fd);
	mq_buf_free(&c->in);
	for (int i = c->shead; i < c->nseg; i++)
		free(c->seg[i].own);
	free(c->seg);
	mq_buf_free(&c->small);
	memset(c, 0, sizeof *c);
	c->fd = -1;
	s->open--;
}

static conn_t *conn_of(mq_zsrv_t *s, uint64_t peer)
{
	uint32_t slot = (uint32_t)peer, gen = (uint32_t)(peer >> 32);
	if (slot >= (uint32_t)s->nc)
		return NULL;
	conn_t *c = &s->c[slot];
	return c->fd >= 0 && c->gen == gen && !c->dead ? c : NULL;
}

static seg_t *seg_add(conn_t *c)
{
	if (c->shead && c->shead == c->nseg)
		c->shead = c->nseg = 0;
	if (c->nseg == c->segcap) {
		if (c->shead > c->segcap / 2) {
			memmove(c->seg, c->seg + c->shead, (size_t)(c->nseg - c->shead) * sizeof *c->seg);
			c->nseg -= c->shead;
			c->shead = 0;
		} else {
			int cap = c->segcap ? 2 * c->segcap : 16;
			seg_t *n = realloc(c->seg, (size_t)cap * sizeof *n);
			if (!n)
				return NULL;
			c->seg = n;
			c->segcap = cap;
		}
	}
	return &c->seg[c->nseg++];
}

/* Queue bytes copied into c->small: 0 or -MQ_ENOMEM. */
static int queue_copy(conn_t *c, const void *p, size_t len)
{
	if (!len)
		return 0;
	seg_t *last = c->nseg > c->shead ? &c->seg[c->nseg - 1] : NULL;
	size_t off = c->small.len;
	if (mq_buf_append(&c->small, p, len))
		return -MQ_ENOMEM;
	c->queued += len;
	if (last && !last->own && last->off + last->len == off) {
		last->len += len;
		return 0;
	}
	seg_t *g = seg_add(c);
	if (!g)
		return -MQ_ENOMEM; /* the bytes in small are then never sent: the caller kills c */
	*g = (seg_t){NULL, off, len};
	return 0;
}

/* Write c's queue as far as the socket takes it now. */
static void conn_flush(mq_zsrv_t *s, conn_t *c)
{
	while (!c->dead && c->shead < c->nseg) {
		struct iovec iov[IOV_BATCH];
		int k = 0;
		for (int i = c->shead; i < c->nseg && k < IOV_BATCH; i++, k++) {
			seg_t *g = &c->seg[i];
			iov[k] = (struct iovec){(g->own ? g->own : c->small.p) + g->off, g->len};
		}
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)k};
		ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_kill(s, c); /* reset or broken: the peer is gone */
			return;
		}
		size_t done = (size_t)w;
		c->queued -= done;
		while (done && c->shead < c->nseg) {
			seg_t *g = &c->seg[c->shead];
			if (done < g->len) {
				g->off += done;
				g->len -= done;
				break;
			}
			done -= g->len;
			free(g->own);
			c->shead++;
		}
	}
	if (c->shead == c->nseg) {
		c->shead = c->nseg = 0;
		c->small.len = 0;
		return;
	}
	/* Bytes of small before the first segment still queued are written:
	 * give them back once they are the larger part. */
	size_t low = c->small.len;
	for (int i = c->shead; i < c->nseg; i++)
		if (!c->seg[i].own && c->seg[i].off < low)
			low = c->seg[i].off;
	if (low > 65536 && low > c->small.len / 2) {
		memmove(c->small.p, c->small.p + low, c->small.len - low);
		c->small.len -= low;
		for (int i = c->shead; i < c->nseg; i++)
			if (!c->seg[i].own)
				c->seg[i].off -= low;
	}
}

/* A command to c: name and its body. */
static int queue_cmd(conn_t *c, const char *name, const void *body, size_t len)
{
	uint8_t head[9], nm[32];
	size_t nl = strlen(name);
	nm[0] = (uint8_t)nl;
	memcpy(nm + 1, name, nl);
	size_t hl = mq_zmtp_frame_head(head, MQ_ZMTP_F_CMD, 1 + nl + len);
	if (queue_copy(c, head, hl) || queue_copy(c, nm, 1 + nl) || queue_copy(c, body, len))
		return -MQ_ENOMEM;
	return 0;
}

/* Refuse the peer: an ERROR command with the reason, written at once,
 * then the connection goes. */
static void refuse(mq_zsrv_t *s, conn_t *c, const char *why)
{
	uint8_t body[256];
	size_t n = strlen(why);
	if (n > 255)
		n = 255;
	body[0] = (uint8_t)n;
	memcpy(body + 1, why, n);
	if (queue_cmd(c, "ERROR", body, 1 + n) == 0)
		conn_flush(s, c);
	conn_kill(s, c);
}

int mq_zsrv_adopt(mq_zsrv_t *s, int fd, mq_err_t *err)
{
	int slot = -1;
	for (int i = 0; i < s->nc; i++)
		if (s->c[i].fd < 0) {
			slot = i;
			break;
		}
	if (slot < 0) {
		if (s->nc == s->capc) {
			int cap = s->capc ? 2 * s->capc : 16;
			conn_t *n = realloc(s->c, (size_t)cap * sizeof *n);
			if (!n) {
				close(fd);
				return mq_err_set(err, MQ_ENOMEM, "out of memory");
			}
			s->c = n;
			s->capc = cap;
		}
		slot = s->nc++;
	}
	conn_t *c = &s->c[slot];
	memset(c, 0, sizeof *c);
	c->fd = fd;
	if (++s->gen == 0)
		s->gen = 1;
	c->gen = s->gen;
	c->state = ST_GREETING;
	c->need = MQ_ZMTP_GREETING;
	c->hs_deadline = mq_mono_ms() + s->o.handshake_ms;
	s->open++;
	/* Our greeting and READY at once: the NULL mechanism needs nothing
	 * of the peer's first, and a peer probing for the mechanism (zmtp.h)
	 * gets it without sending more than its signature. */
	static const uint8_t g[MQ_ZMTP_GREETING] = {0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1, 'N', 'U', 'L', 'L',
						    [32] = 1 /* as-server */};
	static const uint8_t props[] = {11, 'S', 'o', 'c', 'k', 'e', 't', '-', 'T', 'y', 'p', 'e', 0, 0, 0, 6,
					'R', 'O', 'U', 'T', 'E', 'R'};
	if (queue_copy(c, g, sizeof g) || queue_cmd(c, "READY", props, sizeof props)) {
		conn_kill(s, c);
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	conn_flush(s, c);
	return 0;
}

static void accept_some(mq_zsrv_t *s)
{
	for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* The connection stays in the backlog; looking again at
				 * once would spin on it. */
				mq_err_t e;
				mq_err_sys(&e, "accepting a connection on %s", s->endpoint);
				if (s->o.fault)
					s->o.fault(s->o.ctx, &e);
				s->accept_after = mq_mono_ms() + ACCEPT_PAUSE_MS;
			}
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
		/* a peer whose machine vanished: found in about 20 s */
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &(int){1}, sizeof(int));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &(int){10}, sizeof(int));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &(int){2}, sizeof(int));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &(int){5}, sizeof(int));
		/* keepalive is not sent while replies are unacknowledged: this is */
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &(unsigned){20000}, sizeof(unsigned));
		mq_err_t e;
		if (mq_zsrv_adopt(s, fd, &e) && s->o.fault)
			s->o.fault(s->o.ctx, &e);
	}
}

/* ---- input ---- */

/* The peer's greeting at rpos: 0 taken, or it is refused. */
static int take_greeting(mq_zsrv_t *s, conn_t *c)
{
	const uint8_t *g = c->in.p + c->rpos;
	static const char null_mech[20] = "NULL";
	/* Not ZMTP 3 with the NULL mechanism (a CurveZMQ client, or no ZeroMQ
	 * peer at all): dropped unanswered, as libzmq does; the client then
	 * has our greeting to tell it why. */
	if (g[0] != 0xFF || g[9] != 0x7F || g[10] < 3 || memcmp(g + 12, null_mech, sizeof null_mech)) {
		conn_kill(s, c);
		return -1;
	}
	c->rpos += MQ_ZMTP_GREETING;
	c->state = ST_READY;
	return 0;
}

/* The peer's READY: 0 taken (the connection is open), or refused. */
static int take_ready(mq_zsrv_t *s, conn_t *c, int flags, const uint8_t *b, size_t len)
{
	const uint8_t *name, *rest, *v;
	size_t nl, rl, vl;
	if (!(flags & MQ_ZMTP_F_CMD) || mq_zmtp_cmd_split(b, len, &name, &nl, &rest, &rl) ||
	    !mq_zmtp_is_cmd(name, nl, "READY")) {
		conn_kill(s, c);
		return -1;
	}
	int has = mq_zmtp_prop(rest, rl, "Socket-Type", &v, &vl);
	if (has < 0) {
		refuse(s, c, "malformed READY");
		return -1;
	}
	if (!has || !((vl == 6 && (!memcmp(v, "DEALER", 6) || !memcmp(v, "ROUTER", 6))) ||
		      (vl == 3 && !memcmp(v, "REQ", 3)))) {
		refuse(s, c, "invalid socket type: mq-serve is a ROUTER, it talks to DEALER, REQ and ROUTER");
		return -1;
	}
	c->state = ST_OPEN;
	c->hs_deadline = 0;
	return 0;
}

/* A command between messages: PING answered, others dropped. */
static void on_cmd(mq_zsrv_t *s, conn_t *c, const uint8_t *b, size_t len)
{
	const uint8_t *name, *rest;
	size_t nl, rl;
	if (mq_zmtp_cmd_split(b, len, &name, &nl, &rest, &rl)) {
		conn_kill(s, c);
		return;
	}
	if (mq_zmtp_is_cmd(name, nl, "PING")) {
		if (rl < 2 || rl - 2 > 16 || queue_cmd(c, "PONG", rest + 2, rl - 2))
			conn_kill(s, c);
	} else if (mq_zmtp_is_cmd(name, nl, "ERROR")) {
		conn_kill(s, c);
	}
}

/* Look at what c has buffered: finish the handshake, handle commands,
 * and set full (with n frames into s->fr when take) or need.  With
 * take, the message found is consumed.  1 a message, 0 none yet, -1 c
 * is dead. */
static int advance(mq_zsrv_t *s, conn_t *c, int take, int *nfr)
{
	for (;;) {
		size_t have = c->in.len - c->rpos;
		if (c->dead)
			return -1;
		if (c->state == ST_GREETING) {
			if (have < MQ_ZMTP_GREETING) {
				c->need = MQ_ZMTP_GREETING;
				return 0;
			}
			if (take_greeting(s, c))
				return -1;
			continue;
		}
		size_t pos = c->rpos, total = 0;
		int k = 0;
		for (;;) {
			int flags = 0;
			const uint8_t *body = NULL;
			size_t len = 0, used = 0;
			/* before the handshake is done, only its small commands */
			size_t maxf = c->state == ST_OPEN ? s->o.max_frame : HANDSHAKE_FRAME_MAX;
			int rc = mq_zmtp_frame_parse(c->in.p + pos, c->in.len - pos, maxf, &flags, &body, &len, &used);
			if (rc < 0 || (rc == 0 && used && (pos - c->rpos) + used > s->max_msg)) {
				conn_kill(s, c); /* bad flags, a frame or message too large */
				return -1;
			}
			if (rc == 0) {
				c->need = used ? (pos - c->rpos) + used : (pos - c->rpos) + 9;
				return 0;
			}
			if (c->state == ST_READY) {
				c->rpos = pos + used;
				if (take_ready(s, c, flags, body, len))
					return -1;
				break;
			}
			if (flags & MQ_ZMTP_F_CMD) {
				if (k) { /* inside a message */
					conn_kill(s, c);
					return -1;
				}
				c->rpos = pos + used;
				on_cmd(s, c, body, len);
				break;
			}
			if (k == MQ_ZSRV_MAX_FRAMES || (total += len) > s->max_msg) {
				conn_kill(s, c);
				return -1;
			}
			s->fr[k++] = (mq_zmtp_frame_t){body, len};
			pos += used;
			if (!(flags & MQ_ZMTP_F_MORE)) {
				c->need = 0;
				if (take) {
					c->rpos = pos;
					*nfr = k;
				}
				return 1;
			}
		}
	}
}

/* Set c->full from what it has buffered. */
static void look(mq_zsrv_t *s, conn_t *c)
{
	int n, full = advance(s, c, 0, &n) == 1;
	if (full != c->full && !c->dead) {
		c->full = full;
		s->nfull += full ? 1 : -1;
	}
}

/* Read what the socket has (once), then look at it. */
static void conn_read(mq_zsrv_t *s, conn_t *c)
{
	if (c->rpos == c->in.len) {
		c->rpos = c->in.len = 0;
		if (c->in.cap > SHRINK_ABOVE)
			mq_buf_free(&c->in);
	} else if (c->rpos) {
		memmove(c->in.p, c->in.p + c->rpos, c->in.len - c->rpos);
		c->in.len -= c->rpos;
		c->rpos = 0;
	}
	/* Room for the message in progress, if its size is known, but at
	 * most doubling per read, so that a length announced is paid for
	 * only as its bytes come; else a small buffer first (an idle client
	 * costs little), doubled while reads fill it, up to READ_CHUNK. */
	size_t want = c->need > c->in.len ? c->need - c->in.len : 0;
	size_t step = c->in.cap > READ_CHUNK ? c->in.cap : READ_CHUNK;
	if (want > step)
		want = step;
	size_t chunk = !c->in.cap ? READ_MIN : c->filled && c->in.cap < READ_CHUNK ? c->in.cap : 1;
	if (want < chunk)
		want = chunk;
	if (want > c->in.cap - c->in.len && mq_buf_reserve(&c->in, want)) {
		conn_kill(s, c);
		return;
	}
	size_t room = c->in.cap - c->in.len;
	ssize_t r;
	do
		r = recv(c->fd, c->in.p + c->in.len, room, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (r <= 0) {
		/* The end, or a reset: what came whole before it is still
		 * served, as a ROUTER delivers what it received. */
		c->eof = 1;
		look(s, c);
		if (!c->full)
			conn_kill(s, c);
		return;
	}
	c->in.len += (size_t)r;
	c->filled = (size_t)r == room;
	look(s, c);
}

/* ---- the loop's side ---- */

int mq_zsrv_npoll(const mq_zsrv_t *s)
{
	return s->open + 1;
}

int mq_zsrv_poll(mq_zsrv_t *s, struct pollfd *p, int max, int64_t now)
{
	int n = 0;
	if (s->lfd >= 0 && n < max && (!s->accept_after || now >= s->accept_after)) {
		s->accept_after = 0;
		p[n++] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
	}
	for (int i = 0; i < s->nc; i++) {
		conn_t *c = &s->c[i];
		if (c->fd < 0)
			continue;
		if (!c->dead && c->hs_deadline && now >= c->hs_deadline)
			conn_kill(s, c);
		if (c->dead) {
			conn_release(s, c);
			continue;
		}
		short ev = (c->full || c->eof ? 0 : POLLIN) | (c->queued ? POLLOUT : 0);
		if (ev && n < max)
			p[n++] = (struct pollfd){.fd = c->fd, .events = ev};
	}
	while (s->nc && s->c[s->nc - 1].fd < 0)
		s->nc--;
	return n;
}

static conn_t *conn_by_fd(mq_zsrv_t *s, int fd, int *hint)
{
	for (int k = 0; k < s->nc; k++) {
		int i = (*hint + k) % s->nc;
		if (s->c[i].fd == fd) {
			*hint = i + 1;
			return &s->c[i];
		}
	}
	return NULL;
}

void mq_zsrv_handle(mq_zsrv_t *s, const struct pollfd *p, int n)
{
	int hint = 0;
	for (int i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		if (p[i].fd == s->lfd) {
			accept_some(s);
			continue;
		}
		/* p was made in slot order: the hint finds each at once */
		conn_t *c = conn_by_fd(s, p[i].fd, &hint);
		if (!c || c->dead)
			continue;
		if (p[i].revents & POLLOUT)
			conn_flush(s, c);
		/* a hang-up or an error: the read finds it */
		if (!c->dead && (p[i].revents & (POLLIN | POLLHUP | POLLERR)) && !c->full && !c->eof)
			conn_read(s, c);
	}
}

int mq_zsrv_ready(const mq_zsrv_t *s)
{
	return s->nfull > 0;
}

int mq_zsrv_recv(mq_zsrv_t *s, uint64_t *peer, const mq_zmtp_frame_t **f, int *n)
{
	for (int k = 0; s->nfull && k < s->nc; k++) {
		int i = (s->cursor + k) % s->nc;
		conn_t *c = &s->c[i];
		if (c->fd < 0 || !c->full)
			continue;
		c->full = 0;
		s->nfull--;
		if (advance(s, c, 1, n) != 1)
			continue; /* cannot be: it was looked at */
		*peer = (uint64_t)c->gen << 32 | (uint32_t)i;
		*f = s->fr;
		/* Whether another whole message follows (PINGs before it are
		 * answered now): look without touching s->fr, whose frames
		 * are being handed out. */
		mq_zmtp_frame_t keep[MQ_ZSRV_MAX_FRAMES];
		memcpy(keep, s->fr, (size_t)*n * sizeof *keep);
		look(s, c);
		memcpy(s->fr, keep, (size_t)*n * sizeof *keep);
		if (c->eof && !c->full)
			conn_kill(s, c);
		s->cursor = i + 1;
		return 1;
	}
	return 0;
}

int mq_zsrv_send(mq_zsrv_t *s, uint64_t peer, mq_buf_t *frames, int n)
{
	conn_t *c = conn_of(s, peer);
	int rc = 0;
	if (!c || c->state != ST_OPEN)
		rc = -MQ_ENOENT;
	else if (c->queued > s->o.max_queue)
		rc = -MQ_EAGAIN;
	for (int i = 0; i < n; i++) {
		if (rc == 0) {
			uint8_t head[9];
			size_t hl = mq_zmtp_frame_head(head, i + 1 < n ? MQ_ZMTP_F_MORE : 0, frames[i].len);
			if (queue_copy(c, head, hl))
				rc = -MQ_ENOMEM;
			else if (frames[i].len <= SMALL_COPY)
				rc = queue_copy(c, frames[i].p, frames[i].len);
			else {
				seg_t *g = seg_add(c);
				if (!g) {
					rc = -MQ_ENOMEM;
				} else {
					*g = (seg_t){frames[i].p, 0, frames[i].len};
					c->queued += frames[i].len;
					frames[i].p = NULL;
				}
			}
			if (rc)
				conn_kill(s, c); /* part of a message queued: the stream is broken */
		}
		mq_buf_free(&frames[i]);
	}
	return rc;
}

void mq_zsrv_flush(mq_zsrv_t *s)
{
	for (int i = 0; i < s->nc; i++)
		if (s->c[i].fd >= 0 && !s->c[i].dead && s->c[i].queued)
			conn_flush(s, &s->c[i]);
}

int64_t mq_zsrv_next_deadline(const mq_zsrv_t *s)
{
	int64_t t = s->accept_after ? s->accept_after : INT64_MAX;
	for (int i = 0; i < s->nc; i++)
		if (s->c[i].fd >= 0 && s->c[i].hs_deadline && s->c[i].hs_deadline < t)
			t = s->c[i].hs_deadline;
	return t;
}

int mq_zsrv_peers(const mq_zsrv_t *s)
{
	int n = 0;
	for (int i = 0; i < s->nc; i++)
		n += s->c[i].fd >= 0 && !s->c[i].dead;
	return n;
}

void mq_zsrv_close(mq_zsrv_t *s)
{
	if (!s)
		return;
	/* As ZMQ_LINGER: what is queued gets LINGER_MS to go out (waiting
	 * on the first 64 such peers; all are written to). */
	int64_t until = mq_mono_ms() + LINGER_MS;
	for (;;) {
		struct pollfd p[64];
		int n = 0;
		for (int i = 0; i < s->nc && n < 64; i++)
			if (s->c[i].fd >= 0 && !s->c[i].dead && s->c[i].queued)
				p[n++] = (struct pollfd){.fd = s->c[i].fd, .events = POLLOUT};
		int64_t left = until - mq_mono_ms();
		if (!n || left <= 0 || poll(p, (nfds_t)n, (int)left) < 0)
			break;
		mq_zsrv_flush(s);
	}
	for (int i = 0; i < s->nc; i++)
		if (s->c[i].fd >= 0)
			conn_release(s, &s->c[i]);
	free(s->c);
	if (s->lfd >= 0)
		close(s->lfd);
	free(s);
}
