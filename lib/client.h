/*
 * client.h -- the client side of the protocol in wire.h: a connection
 * to mq-serve, the request/reply calls, a pipelined producer and the
 * consumer-group member state.  Used by mq-pub and mq-sub (and later by
 * mq-lag and mq-admin).
 *
 * A client holds two ZeroMQ DEALER sockets to the same endpoint: a
 * control socket for one-at-a-time requests (HELLO, META, OFFSETS,
 * JOIN, HEARTBEAT, COMMIT, ...) and a data socket for the pipelined
 * PRODUCE window or the overlapped FETCH.  Keeping them apart means a
 * heartbeat never waits behind a parked long-poll fetch, and a reply on
 * the control socket is always the answer to the one request out.
 *
 * Every wait ends on the socket's own readiness or a deadline, never a
 * polling period, and is bounded (unless the timeout is
 * MQ_TIMEOUT_FOREVER): a request the broker does not answer is sent
 * again (same id for control requests; same producer id and sequence
 * for batches, so the broker drops repeats), and after the client's
 * timeout of silence the call fails with -MQ_ETIMEDOUT and a message
 * naming the broker.  Nothing here prints or exits.
 */
#ifndef MQ_CLIENT_H
#define MQ_CLIENT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "bucket.h"
#include "store.h"
#include "util.h"
#include "wire.h"

#define MQ_DEFAULT_BROKER "tcp://127.0.0.1:7733"
#define MQ_DEFAULT_TIMEOUT_MS 10000

typedef struct mq_client mq_client_t;

typedef struct mq_client_opts {
	const char *endpoint; /* NULL: $MQ_BROKER, else MQ_DEFAULT_BROKER */
	int64_t timeout_ms;   /* silence after which a call fails; <= 0: 10 s;
			       * MQ_TIMEOUT_FOREVER: never */
	const char *name;     /* sent in HELLO and JOIN, e.g. "mq-pub" */
	/* Optional: a control call interrupted by a signal gives up
	 * (-MQ_EAGAIN) when *interrupt became non-zero during the call. */
	volatile sig_atomic_t *interrupt;
	/* One direct ZMTP connection (zmtp.h) instead of ZeroMQ sockets and
	 * their I/O thread, where the endpoint is tcp://HOST:PORT or
	 * ipc://PATH: control calls, and one producer or fetches, over it.
	 * Checking transactions and waiting on several producers at once
	 * need a full client. */
	int lite;
	/* CurveZMQ: the broker's public key (the key, or a file holding
	 * it) and this client's secret key file (curve.h); NULL:
	 * $MQ_CURVE_SERVER, $MQ_CURVE_SECRET.  With a server key and no
	 * secret key the client makes a key pair for the connection (for a
	 * broker without --curve-allow).  A client with keys connects
	 * through libzmq (lite does not apply). */
	const char *curve_server;
	const char *curve_secret;
	/* -v: over Kafka, librdkafka's log lines go to stderr too */
	int verbose;
} mq_client_opts_t;

/* The endpoint a client would use for this -b value (NULL ok). */
const char *mq_client_default_endpoint(const char *endpoint);

/* An endpoint as people write it, in the form ZeroMQ takes: "HOST:PORT"
 * and "[V6ADDR]:PORT" become "tcp://HOST:PORT", ":PORT" becomes
 * "tcp://127.0.0.1:PORT" (kcat and redis-cli habits); anything with a
 * "SCHEME://" is copied as it is.  0, or -MQ_EINVAL naming the text and
 * the forms when it is none of these (an empty HOST, a PORT that is not
 * 1-65535, too long for out). */
int mq_endpoint_normalize(const char *in, char *out, size_t size, mq_err_t *err);

/* Wait forever: a client timeout (mq_client_opts_t.timeout_ms, -w 0). */
#define MQ_TIMEOUT_FOREVER INT64_MAX

/* Create the sockets and connect (ZeroMQ connects in the background).
 * Fails only for a malformed endpoint or resource exhaustion.  The
 * endpoint goes through mq_endpoint_normalize.
 *
 * Until the broker was reached once, a connection that fails (refused,
 * a host that does not resolve, no such ipc socket) fails the call that
 * waits for it at once with -MQ_ECONNECT ("cannot connect to ENDPOINT:
 * connection refused (is mq-serve running? ...)"); after that, a broker
 * that went away is waited for up to the timeout, as for a restart.
 *
 * CurveZMQ: a key that cannot be read or is no key fails here
 * (-MQ_EINVAL, naming the setting and the file).  A handshake the
 * broker refuses (an unlisted key; keys for a broker without CurveZMQ
 * or none for one with it) fails the call that waits for it at once
 * (-MQ_ECONNECT, saying which); a wrong server key shows only as a
 * broker that closes the connection during the handshake, which fails
 * at once before the broker was ever reached, and after that is
 * waited for (a restart) and named when the timeout is over. */
int mq_client_open(const mq_client_opts_t *o, mq_client_t **out, mq_err_t *err);
void mq_client_close(mq_client_t *c); /* NULL ok; never blocks */
const char *mq_client_endpoint(const mq_client_t *c);
/* Records the broker skipped as expired (mq-pub --ttl) in the fetch
 * replies this client received: never delivered, counted here. */
uint64_t mq_client_expired(const mq_client_t *c);
int64_t mq_client_timeout(const mq_client_t *c);

/* ---- control requests (one at a time) ---- */

typedef struct mq_hello {
	char broker_version[32];
	uint64_t max_message_bytes;
	uint32_t default_partitions;
} mq_hello_t;

int mq_client_hello(mq_client_t *c, mq_hello_t *h, mq_err_t *err);
/* Partition count of topic; create: auto-create it (-MQ_ENOENT when it
 * does not exist and create is 0). */
int mq_client_meta(mq_client_t *c, const char *topic, int create, uint32_t *partitions, mq_err_t *err);

typedef struct mq_part_offsets {
	uint32_t partition;
	uint64_t start, end;
	int64_t at_time; /* first offset with timestamp >= time; -1 without time */
} mq_part_offsets_t;

/* OFFSETS: fills out[0..n) for partitions 0..n-1 of topic (entries the
 * broker did not name keep start = end = 0).  time < 0: no time lookup. */
int mq_client_offsets(mq_client_t *c, const char *topic, int64_t time, mq_part_offsets_t *out, uint32_t n,
		      mq_err_t *err);

/* Committed offsets of group on topic: off[p] = offset, or -1 where the
 * group has no commit, for p < n. */
int mq_client_committed(mq_client_t *c, const char *group, const char *topic, int64_t *off, uint32_t n,
			mq_err_t *err);
/* COMMIT next offsets for n (partition, offset) pairs. */
int mq_client_commit(mq_client_t *c, const char *group, const char *member, const char *topic,
		     const uint32_t *parts, const uint64_t *offsets, uint32_t n, mq_err_t *err);

/* Every topic the broker has, sorted by name: names[i] (owned by the
 * list) with parts[i] partitions. */
typedef struct mq_topic_list {
	char **names;
	uint32_t *parts;
	uint32_t n;
	uint64_t epoch; /* changes whenever a topic is created, changed or deleted */
	int has_epoch;  /* the broker said it */
} mq_topic_list_t;

int mq_client_topics(mq_client_t *c, mq_topic_list_t *out, mq_err_t *err);
void mq_topic_list_free(mq_topic_list_t *l);

/* Shared bucket NAME: take between min and want tokens.  rate (may be
 * NULL) and burst (0: one second's worth) create the bucket or change
 * its definition first.  0 with *granted (0 when fewer than min were
 * there; then *wait_ns says how long until they will be); -MQ_ENOENT
 * "no shared bucket 'NAME' ..." when it does not exist and rate is NULL. */
int mq_client_bucket_take(mq_client_t *c, const char *name, uint64_t want, uint64_t min, const mq_rate_t *rate,
			  uint64_t burst, uint64_t *granted, uint64_t *wait_ns, mq_err_t *err);

/* ---- half-message transactions (wire.h TXN_*, txn.h) ---- */

/* txid: a random non-zero id the producer picks.  Every call may be
 * repeated (the broker answers a retry as the first time). */
int mq_client_txn_begin(mq_client_t *c, uint64_t txid, const char *topic, mq_err_t *err);
/* Batch number index (0, 1, ...) of the transaction for partition; *dup:
 * the broker had it already. */
int mq_client_txn_add(mq_client_t *c, uint64_t txid, uint32_t index, uint32_t partition, const void *batch,
		      size_t len, int *dup, mq_err_t *err);
/* The prepare is complete: nbatches were added.  *messages: how many the
 * broker holds. */
int mq_client_txn_end(mq_client_t *c, uint64_t txid, uint32_t nbatches, uint64_t *messages, mq_err_t *err);
/* Commit or roll back (verdict: enum mq_txn_verdict; from_checker sends a
 * checker's TXN_VERDICT, which may also be MQ_VERDICT_UNKNOWN).  topic
 * (NULL: not checked) must be the transaction's.  *was (may be NULL):
 * its state before (txn.h enum mq_txn_state). */
int mq_client_txn_decide(mq_client_t *c, uint64_t txid, const char *topic, int verdict, int from_checker,
			 int *was, mq_err_t *err);
/* A checker's long poll: 1 with *txid and the transaction's batches
 * appended to msgs, 0 when none came due within wait_ms, < 0 error
 * (-MQ_ETIMEDOUT when the broker stayed silent past wait + timeout). */
int mq_client_txn_check(mq_client_t *c, const char *topic, uint32_t wait_ms, uint64_t *txid, mq_buf_t *msgs,
			mq_err_t *err);

/* ---- administration (mq-admin, mq-lag) ---- */

#define MQ_MEMBER_ID_MAX 200 /* member ids as the client keeps them */
typedef struct mq_offset_spec mq_offset_spec_t;

/* PING: HELLO with the round trip time (of a second HELLO, once the
 * connection is up). */
int mq_client_ping(mq_client_t *c, mq_hello_t *h, int64_t *rtt_us, mq_err_t *err);

typedef struct mq_topic_info {
	char name[MQ_NAME_MAX + 1];
	uint32_t partitions;
	int64_t retention_ms;    /* <= 0: the broker's default */
	int64_t retention_bytes; /* <= 0: the broker's default */
	int64_t created_ms;
	/* The broker's --retention-time and --retention-bytes, which apply
	 * where the topic's own are <= 0: 0 keep everything, -1 not told
	 * (an older mq-serve). */
	int64_t default_retention_ms, default_retention_bytes;
	uint64_t bytes;    /* on disk, all partitions */
	int no_bytes;      /* the broker does not say (a Kafka cluster) */
	uint64_t messages; /* retained: sum of end - start */
} mq_topic_info_t;

/* TOPIC_CREATE: partitions 0 = the broker's --partitions; retention < 0
 * = the broker's default.  -MQ_EEXIST when it exists. */
int mq_client_topic_create(mq_client_t *c, const char *topic, uint32_t partitions, int64_t retention_ms,
			   int64_t retention_bytes, mq_err_t *err);
/* TOPIC_DESCRIBE: -MQ_ENOENT when it does not exist.  Partition offsets:
 * mq_client_offsets. */
int mq_client_topic_describe(mq_client_t *c, const char *topic, mq_topic_info_t *out, mq_err_t *err);
/* TOPIC_DELETE: -MQ_EBUSY (message names the groups) while a group with
 * live members reads it, unless force. */
int mq_client_topic_delete(mq_client_t *c, const char *topic, int force, mq_err_t *err);
/* TOPIC_PARTITIONS: grow to n (never shrink: -MQ_EINVAL). */
int mq_client_topic_partitions(mq_client_t *c, const char *topic, uint32_t n, mq_err_t *err);

/* Lag history: what the broker sampled every --lag-interval. */
#define MQ_LAG_HISTORY 30
typedef struct mq_lag_sample {
	int64_t ms;        /* wall clock */
	int64_t committed; /* -1: none yet */
	uint64_t end;      /* log end offset */
} mq_lag_sample_t;

/* One (group, topic, partition). */
typedef struct mq_group_row {
	char topic[MQ_NAME_MAX + 1];
	uint32_t partition;
	int64_t committed; /* -1: none */
	uint64_t start, end;
	char owner[MQ_MEMBER_ID_MAX + 1]; /* member reading it, "" none */
	uint32_t nhist;
	mq_lag_sample_t hist[MQ_LAG_HISTORY]; /* oldest first */
	int64_t since_ms; /* the oldest unconsumed message readable since (wall
			   * clock ms); -1: none left, or unknown */
} mq_group_row_t;

typedef struct mq_group_member_info {
	char id[MQ_MEMBER_ID_MAX + 1];
	char client[64];   /* program name sent in JOIN */
	int64_t idle_ms;   /* since its last heartbeat */
	uint32_t nowned;
} mq_group_member_info_t;

typedef struct mq_group_info {
	char name[MQ_NAME_MAX + 1];
	uint64_t generation;
	mq_group_member_info_t *members;
	uint32_t nmembers;
	mq_group_row_t *rows; /* sorted by topic, partition */
	uint32_t nrows;
	int64_t interval_ms; /* the broker's sampling interval */
	int no_members;      /* the broker would not say who reads (a Kafka cluster that
			      * does not describe groups): owners are "?" */
} mq_group_info_t;

/* GROUP_DESCRIBE: every group the broker knows (group NULL) or one
 * (-MQ_ENOENT when unknown), rows only for topic when not NULL (-MQ_ENOENT
 * when the topic does not exist).  *out: n groups sorted by name; free
 * with mq_group_info_free. */
int mq_client_groups(mq_client_t *c, const char *group, const char *topic, mq_group_info_t **out, uint32_t *n,
		     mq_err_t *err);
void mq_group_info_free(mq_group_info_t *g, uint32_t n);
/* Fills since_ms of the rows with lag where the broker did not: over
 * Kafka, which keeps no such time, from the timestamp of the record at
 * each such partition's next unconsumed offset (one read, no group);
 * with mq-serve, which sends it, nothing to do. */
int mq_client_group_ages(mq_client_t *c, mq_group_info_t *g, uint32_t n, mq_err_t *err);

/* GROUP_RESET of group's offsets on topic to a spec (beginning, end, N,
 * -N, @TIME): -MQ_EBUSY while the group has live members, -MQ_ENOENT when
 * the group does not exist (no members, no committed offsets) unless
 * flags has MQ_RESET_CREATE.  With MQ_RESET_DRY_RUN nothing changes.
 * Fills n entries (partition, old offset or -1, new offset); free *out
 * with free(). */
enum { MQ_RESET_DRY_RUN = 1, MQ_RESET_CREATE = 2 };
typedef struct mq_reset_entry {
	uint32_t partition;
	int64_t old;
	uint64_t new_offset;
} mq_reset_entry_t;
int mq_client_group_reset(mq_client_t *c, const char *group, const char *topic, const mq_offset_spec_t *to,
			  unsigned flags, mq_reset_entry_t **out, uint32_t *n, mq_err_t *err);
/* GROUP_DELETE: forget the group's offsets; -MQ_EBUSY with live members,
 * -MQ_ENOENT when unknown. */
int mq_client_group_delete(mq_client_t *c, const char *group, mq_err_t *err);

/* STATS: name/value pairs (uptime_ms, topics, partitions, bytes,
 * messages_in, batches_in, bytes_in, messages_out, bytes_out, requests,
 * clients_parked, groups, members, buckets, dedup_ids, dedup_dropped,
 * transactions_pending, checkers_waiting,
 * rss_bytes, ...), in the broker's order. */
typedef struct mq_stat {
	char name[48];
	int64_t value;
} mq_stat_t;
int mq_client_stats(mq_client_t *c, mq_stat_t **out, uint32_t *n, mq_err_t *err);

/* ---- group membership ---- */


/* A partition a member owns: topic is an index into the member's topics. */
typedef struct mq_owned {
	uint32_t topic, partition;
} mq_owned_t;

typedef struct mq_member {
	char group[MQ_MEMBER_ID_MAX + 1];
	char member[MQ_MEMBER_ID_MAX + 1]; /* "" before JOIN */
	char **topics;       /* subscribed topics (mq_member_set_topics) */
	uint32_t ntopics;
	int64_t session_ms;
	uint64_t generation; /* of the assignment in owned[] */
	uint64_t acked;      /* generation acknowledged to the broker */
	mq_owned_t *owned;   /* what this member owns, sorted */
	uint32_t nowned;
	uint32_t cap;
} mq_member_t;

/* Subscribe to topics (copied; indexes in owned[] refer to this list).
 * Call mq_client_join again afterwards to tell the broker. */
int mq_member_set_topics(mq_member_t *m, const char *const *topics, uint32_t n, mq_err_t *err);

/* JOIN (member->member "" for a new member; a member that joined before
 * joins again to change its topics, keeping what it owns where the new
 * assignment allows); fills member, generation and owned.  The caller
 * sets group, topics and session_ms first. */
int mq_client_join(mq_client_t *c, mq_member_t *m, mq_err_t *err);
/* HEARTBEAT acking m->acked; fills generation and owned.  -MQ_ENOENT
 * when the broker forgot the member (session expired): join again. */
int mq_client_heartbeat(mq_client_t *c, mq_member_t *m, mq_err_t *err);
int mq_client_leave(mq_client_t *c, mq_member_t *m, mq_err_t *err);
void mq_member_free(mq_member_t *m);
int mq_member_owns(const mq_member_t *m, uint32_t topic, uint32_t p);

/* ---- pipelined produce ---- */

typedef struct mq_producer mq_producer_t;

typedef struct mq_producer_stats {
	uint64_t sent;         /* records handed to mq_producer_send */
	uint64_t acked;        /* records the broker stored or had stored */
	uint64_t duplicates;   /* of acked, records in batches answered "duplicate" */
	uint64_t failed;       /* records in batches the broker refused */
	uint64_t resent;       /* batches sent again after a timeout */
} mq_producer_stats_t;

/* window: batches in flight (1-1024), at most MQ_PRODUCER_BATCHES of
 * them to one partition.  The producer id is random. */
int mq_producer_new(mq_client_t *c, const char *topic, uint32_t partitions, uint32_t window,
		    mq_producer_t **out, mq_err_t *err);
/* This producer's id: random, one per producer (each mq-pub run). */
uint64_t mq_producer_id(const mq_producer_t *p);
void mq_producer_free(mq_producer_t *p); /* NULL ok */

/* Start a batch for partition in buf (mq_batch_begin), with this
 * producer's id and the partition's next sequence in b->hdr, and its
 * due and expiry times (mq_producer_set_times). */
void mq_producer_begin(mq_producer_t *p, uint32_t partition, mq_batch_builder_t *b, mq_buf_t *buf);

/* When messages become visible and how long they live (mq-pub --at,
 * --delay, --ttl); 0 fields: not set.  at_ms wins over delay_ms. */
typedef struct mq_times {
	int64_t at_ms;    /* due at this wall-clock time, ms since the epoch */
	int64_t delay_ms; /* due this long after the batch is started */
	int64_t ttl_ms;   /* never delivered later than this after it is due
			   * (or after it is sent, when due already) */
} mq_times_t;
void mq_producer_set_times(mq_producer_t *p, const mq_times_t *t);
/* Over Kafka: pinned (mq-pub -p), every record goes to the partition its
 * batch was made for; else the cluster's partitioner places it (murmur2
 * of the key, as Kafka's own clients, so that keys land where other
 * producers put them).  No effect with mq-serve. */
void mq_producer_pin(mq_producer_t *p, int pinned);
/* A batch header's deliver_at and expire_at for a batch started at
 * now_ms: deliver_at 0 when the due time is not in the future (stored
 * and delivered at once); expire_at 0 without a ttl. */
void mq_times_apply(const mq_times_t *t, int64_t now_ms, int64_t *deliver_at, int64_t *expire_at);
/* Seal and send the batch b was building.  The producer takes buf's
 * bytes (buf comes back empty, maybe with another allocation) and keeps
 * them until acknowledged.  Waits while the window is full.  Returns 0,
 * or < 0 when the broker stayed silent past the timeout (the batch is
 * then counted as not acknowledged).  A batch the broker refuses does
 * not fail the call: see mq_producer_error. */
int mq_producer_send(mq_producer_t *p, mq_batch_builder_t *b, uint32_t partition, mq_err_t *err);
/* Process replies that arrived, resend what timed out; wait up to
 * wait_ms (< 0: no limit of its own) for a reply, the connection taking
 * what waits unsent, a resend time or the watched descriptor
 * (mq_client_watch, also while nothing is in flight).  0, or < 0 after
 * the timeout of silence. */
int mq_producer_poll(mq_producer_t *p, int wait_ms, mq_err_t *err);
/* The same for n producers (of their own clients, at most
 * MQ_PRODUCERS_POLL_MAX) in one wait, and for watch_fd becoming ready
 * for watch_events (-1: none): so a program writing to several topics
 * wakes on whichever socket answers, never on a period.  0 (also when
 * a signal or watch_fd ended the wait), or < 0 after the timeout of
 * silence of one of them (err names its broker). */
#define MQ_PRODUCERS_POLL_MAX 64
int mq_producers_poll(mq_producer_t *const *ps, uint32_t n, int wait_ms, int watch_fd, short watch_events,
		      mq_err_t *err);
/* Wait until every batch is acknowledged or refused. */
int mq_producer_flush(mq_producer_t *p, mq_err_t *err);
/* Batches waiting for their acknowledgement. */
uint32_t mq_producer_inflight(const mq_producer_t *p);
/* The ZeroMQ socket to poll for replies (for zmq_poll with stdin). */
void *mq_producer_socket(mq_producer_t *p);
void mq_producer_stats(const mq_producer_t *p, mq_producer_stats_t *s);
/* The first refusal ("partition 9: no such partition"), or NULL.  Each
 * new refusal is reported once by mq_producer_take_error. */
const char *mq_producer_take_error(mq_producer_t *p);

/* ---- fetch ---- */

typedef struct mq_fetch_entry {
	uint32_t topic; /* index into the topics of the request */
	uint32_t partition;
	uint64_t start, end, next;
	int err;             /* 0, MQ_ERANGE, MQ_ENOENT, MQ_EBUSY, MQ_ECORRUPT (positive);
			      * MQ_ECORRUPT: offsets from the one asked for up to
			      * next are damaged on the broker (wire.h) */
	const uint8_t *data; /* raw batches (nbytes), or NULL (see mq_fetch_entry_check) */
	size_t nbytes;
	uint64_t expired; /* records after data, up to next, skipped by the broker as expired (--ttl) */
	int sparse;       /* offsets may skip between batches (a Kafka cluster's: compaction, markers) */
} mq_fetch_entry_t;

typedef struct mq_fetch_reply {
	mq_fetch_entry_t *e;
	uint32_t n, cap;
	uint64_t epoch; /* the broker's topic-list epoch (mq_topic_list_t) */
	int has_epoch;
	void *frames; /* zmq_msg_t[] (a lite client's: mq_zmtp_frame_t[] into own), owned */
	uint32_t nframes, frames_cap;
	void *own;    /* a lite client's reply bytes, owned */
	int lite;     /* which kind frames holds */
} mq_fetch_reply_t;

typedef struct mq_fetch_pos {
	uint32_t topic; /* index into the topics passed with it */
	uint32_t partition;
	uint64_t offset;
} mq_fetch_pos_t;

/* Send a FETCH on the data socket (at most one outstanding) for the
 * positions pos[0..n) in topics[0..ntopics).  group and member may be
 * NULL.  epoch (NULL: none): the topic-list epoch the caller knows; the
 * broker answers as soon as its own differs.  With no topics and no
 * positions, the FETCH only waits for that (or max_wait_ms). */
#define MQ_FETCH_MAX_TOPICS 1024
int mq_client_fetch_send(mq_client_t *c, const char *const *topics, uint32_t ntopics, const mq_fetch_pos_t *pos,
			 uint32_t n,
			 uint32_t max_bytes, uint32_t max_wait_ms, const char *group, const char *member,
			 const uint64_t *epoch, mq_err_t *err);
/* Wait for the outstanding FETCH's reply, resending it when the broker
 * is silent past max_wait_ms, and giving up (-MQ_ETIMEDOUT) when the
 * connection has been down for the timeout, or a broker still connected
 * has not answered for the timeout past max_wait_ms.  A new FETCH sent
 * meanwhile takes the place of this one, at the broker too.  Fills r (its previous
 * contents are released).  wait_ms bounds this call: -MQ_EAGAIN when it
 * ran out and the fetch is still outstanding (so callers can heartbeat). */
int mq_client_fetch_recv(mq_client_t *c, mq_fetch_reply_t *r, int wait_ms, mq_err_t *err);
/* From now on mq_client_fetch_recv also returns -MQ_EAGAIN as soon as fd
 * (e.g. 1, when it is a pipe) reports an error or a hang-up, so that a
 * consumer whose reader went away notices it while no message comes.
 * -1: none (the default). */
void mq_client_watch_fd(mq_client_t *c, int fd);
/* The same for any of events (POLLIN...) on fd as well; mq_producer_poll
 * ends early for it too. */
void mq_client_watch(mq_client_t *c, int fd, short events);
/* 1 when the last wait of c (mq_producer_poll; mq_producers_poll: the
 * first producer's client) ended because the watched descriptor was
 * ready: a caller that must know whether it is need not ask it again. */
int mq_client_watch_hit(const mq_client_t *c);
/* Every wait of c also ends (-MQ_EAGAIN, "interrupted", or a return
 * of mq_producers_poll) when fd is readable, after reading it empty:
 * mq_cli_signal_fd(), so that a signal landing just before a long wait
 * (a parked fetch waits up to 30 s) is not slept through.  -1: none. */
void mq_client_wake_on(mq_client_t *c, int fd);
int mq_client_wake_fd(const mq_client_t *c);

/* The broker checks every batch it sends; checking an entry's data again
 * before use costs a CRC and means damage on the way (or a broker that
 * did not check) is never written out.  Call it after the next FETCH went
 * out, so it overlaps the broker's work.  0, or -MQ_ECORRUPT when a batch
 * fails its CRC, batches do not follow each other, or they end elsewhere
 * than the entry's next: none of the entry may be used.  topic names the
 * entry's topic in the message. */
int mq_fetch_entry_check(const mq_fetch_entry_t *e, const char *topic, mq_err_t *err);
/* Is a FETCH outstanding? */
int mq_client_fetch_pending(const mq_client_t *c);
/* Forget the outstanding FETCH (its reply will be ignored). */
void mq_client_fetch_cancel(mq_client_t *c);
void mq_fetch_reply_free(mq_fetch_reply_t *r);

/* ---- offsets given by people: -o beginning|end|N|-N|@TIME ---- */


struct mq_offset_spec {
	mq_offset_kind_t kind;
	int64_t v;
};

/* mq_time_parse (a point in time given by people) is in util.h. */

/* Parse "beginning", "end", "N", "-N", "@MS", "@2026-11-24T10:00:00Z",
 * "@-1h" (now_ms gives the present for the relative form). */
int mq_offset_spec_parse(const char *s, int64_t now_ms, mq_offset_spec_t *o, mq_err_t *err);
/* Resolve a spec for partitions 0..n-1 into off[] using OFFSETS.  An
 * absolute offset is clamped into [start, end]. */
int mq_client_resolve(mq_client_t *c, const char *topic, const mq_offset_spec_t *o, uint64_t *off,
		      uint32_t n, mq_err_t *err);

#endif
