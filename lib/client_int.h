/*
 * client_int.h -- what the parts of the client share (client.c: the
 * connection, the direct one and control calls; client_admin.c:
 * administration and transactions; client_group.c: group membership;
 * producer.c: the pipelined producer; fetch.c: the overlapped fetch and
 * offsets given by people).  Not installed: the programs see client.h.
 */
#ifndef MQ_CLIENT_INT_H
#define MQ_CLIENT_INT_H

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
#include "kafka.h"
#include "store.h"
#include "zmtp.h"

#define HB_IVL_MS 1000
/* mq-serve answers PINGs in its one thread (zsrv.h): a turn that takes
 * long (a slow sync) must not look like a broker gone.  One that is gone
 * shows as a request timing out (the client's timeout) or a reset. */
#define HB_TIMEOUT_MS 30000
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
	int watch_hit; /* the last wait ended with watch_fd ready: mq_client_watch_hit */
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
	/* a kafka:// endpoint: the cluster, and nothing above is used but
	 * the fetch's state (client_kafka.c) */
	mq_kafka_t *kafka;
	struct mq_kfetch *kf;
};

typedef struct mq_kfetch mq_kfetch_t;
/* client_kafka.c: fetch and offsets over a Kafka cluster. */
int mq_cl_kafka_offsets(mq_client_t *c, const char *topic, int64_t time, mq_part_offsets_t *out, uint32_t n,
			mq_err_t *err);
int mq_cl_kafka_topics(mq_client_t *c, mq_topic_list_t *out, mq_err_t *err);
int mq_cl_kafka_fetch_send(mq_client_t *c, const char *const *topics, uint32_t ntopics, const mq_fetch_pos_t *pos,
			   uint32_t n, uint32_t max_bytes, uint32_t max_wait_ms, mq_err_t *err);
int mq_cl_kafka_fetch_recv(mq_client_t *c, mq_fetch_reply_t *r, int wait_ms, mq_err_t *err);
void mq_cl_kafka_fetch_free(mq_client_t *c);
/* client_kafka_admin.c: topics, groups and lag over a Kafka cluster. */
int mq_cl_kafka_ages(mq_client_t *c, mq_group_info_t *g, uint32_t n, mq_err_t *err);
int mq_cl_kafka_groups(mq_client_t *c, const char *group, const char *topic, mq_group_info_t **out, uint32_t *n,
		       mq_err_t *err);
int mq_cl_kafka_topic_describe(mq_client_t *c, const char *topic, mq_topic_info_t *out, mq_err_t *err);
int mq_cl_kafka_group_reset(mq_client_t *c, const char *group, const char *topic, const mq_offset_spec_t *to,
			    unsigned flags, mq_reset_entry_t **out, uint32_t *n, mq_err_t *err);

/* A delivery report of the Kafka backend (producer.c). */
void mq_cl_kafka_delivered(void *opaque, int ok, const char *why);

/* A control request being packed. */
typedef struct req {
	mq_buf_t b;
	msgpack_packer pk;
	uint32_t id, kind;
} req_t;

/* A received reply: the frame stays alive while msg points into it. */
typedef struct reply {
	zmq_msg_t frame;
	uint8_t *own; /* lite: the frame's bytes, copied (then frame is unused) */
	mq_wire_msg_t msg;
	int live;
} reply_t;

/* Correlation ids: one counter per client, wrapping and skipping 0. */
uint32_t mq_cl_new_id(mq_client_t *c);
/* The error for a broker silent for the whole timeout (what: the request). */
int mq_cl_timed_out(mq_client_t *c, const char *what, mq_err_t *err);
/* Send one or two frames on s without waiting (b may be NULL). */
int mq_cl_send_frames(mq_client_t *c, void *s, const void *a, size_t an, const void *b, size_t bn,
		      mq_err_t *err);
/* Read and drop the rest of a multipart message. */
void mq_cl_drain_more(void *s);
/* t + ms, saturating. */
int64_t mq_cl_after(int64_t t, int64_t ms);
/* Take the connections' monitor events (client.c): 0 or -MQ_ECONNECT. */
int mq_cl_conn_events(mq_client_t *c, mq_err_t *err);
/* Wait up to ms for events on s (or the lite connection), taking the
 * connection's events meanwhile; with watch, ending early on the
 * watched descriptor: the events that came, 0 when ms ran out, < 0. */
int mq_cl_wait_sock(mq_client_t *c, void *s, short events, int watch, int64_t ms, mq_err_t *err);
void mq_cl_reply_free(reply_t *r);
/* lite: copy n frames into one allocation (*buf) with their table (*out). */
int mq_cl_lite_copy(const mq_zmtp_frame_t *f, int n, uint8_t **buf, mq_zmtp_frame_t **out);
/* lite: the next message of the connection, or the stashed FETCH reply. */
int mq_cl_lite_take(mq_client_t *c, const mq_zmtp_frame_t **f, int *n);
/* Receive one reply on s into r (drop_more: frames after the header dropped). */
int mq_cl_recv_reply(mq_client_t *c, void *s, reply_t *r, int drop_more);
/* The error for what a lite client cannot do. */
int mq_cl_lite_refuses(const char *what, mq_err_t *err);
/* A broker's ERR reply as an error. */
int mq_cl_reply_error(mq_client_t *c, const mq_wire_msg_t *m, mq_err_t *err);
/* One control request and its reply, resent until answered or the
 * timeout (call_pl: with a payload frame). */
int mq_cl_call(mq_client_t *c, const mq_buf_t *req, uint32_t id, const char *what, reply_t *r, mq_err_t *err);
int mq_cl_call_pl(mq_client_t *c, const mq_buf_t *req, const void *pl, size_t pl_len, uint32_t id,
		  const char *what, reply_t *r, mq_err_t *err);
/* A control request: begin packing it, then call it (an OK reply in r). */
msgpack_packer *mq_cl_req_begin(mq_client_t *c, req_t *q, uint32_t kind, uint32_t nargs);
int mq_cl_req_call(mq_client_t *c, req_t *q, reply_t *r, mq_err_t *err);
/* The error for a reply of the wrong shape. */
int mq_cl_bad_reply(mq_client_t *c, const char *what, mq_err_t *err);
void mq_cl_free_topics(char **v, uint32_t n);
/* *list (of *nlist names, freed) becomes a copy of topics[0..n). */
int mq_cl_set_topics(char ***list, uint32_t *nlist, const char *const *topics, uint32_t n, mq_err_t *err);
/* A request whose OK reply carries nothing. */
int mq_cl_call_empty(mq_client_t *c, req_t *q, mq_err_t *err);

#endif
