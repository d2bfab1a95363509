/*
 * wire.h -- the protocol between clients and mq-serve.  The only code
 * that knows its msgpack layout is wire.c and the callers of these
 * helpers in client.c and broker.c.
 *
 * Transport: ZeroMQ; the broker binds ROUTER sockets, clients connect
 * DEALER sockets.  A request is one or two frames:
 *
 *   frame 1: msgpack array [kind, id, args...]   (id: the client's
 *            correlation number, echoed in the reply)
 *   frame 2: payload, for PRODUCE only: one record batch (batch.h) as is
 *
 * A reply is [MQ_OK, id, results...] followed, for FETCH, by one payload
 * frame per partition that returned data (raw batches as stored), or
 * [MQ_ERR, id, code, message] where code is an MQ_E* value (util.h).
 * A reply with id 0 is never sent; ids wrap skipping 0.
 *
 * Requests (args; results):
 *
 *   HELLO      [client, version]
 *              ; [broker_version, max_message_bytes, default_partitions]
 *   META       [topic, create]                 create: bool, auto-create with the
 *              ; [partitions]                  broker's --partitions
 *   PRODUCE    [topic, partition, oldest] + batch
 *              ; [base_offset, count, duplicate, dup_ids]   duplicate: the
 *              batch is one of the producer's last MQ_PRODUCER_BATCHES
 *              batches stored in the partition (same first and last
 *              sequence); nothing new stored, base_offset is where it was
 *              stored.  dup_ids: records dropped because their id was
 *              stored in the topic within the dedup window (the rest, if
 *              any, stored from base_offset)
 *              A batch with a producer id must start at the sequence after
 *              the producer's previous batch in the partition.  Error
 *              MQ_ESEQ (retriable, nothing stored): it starts further on,
 *              so an earlier batch is missing: resend the unacknowledged
 *              batches in sequence order.  oldest (bool, optional, false
 *              when absent): every earlier batch of the producer to the
 *              partition was acknowledged or refused; the broker then takes
 *              a batch further on (or from a producer it does not know) as
 *              is.  A producer it does not know may also start at 0.  Error
 *              MQ_EINVAL: behind the expected sequence and not a remembered
 *              batch (not stored).  So a producer keeps at most
 *              MQ_PRODUCER_BATCHES batches per partition unacknowledged.
 *              A batch whose header's deliver_at is still ahead (mq-pub
 *              --delay, --at) goes to the broker's schedule (delay.h) and
 *              into the partition when due; its base_offset is then its
 *              place in the schedule, not an offset of the partition.
 *   FETCH      [[topic...], [[t, p, offset]...], max_bytes, max_wait_ms, group|nil, member|nil,
 *               epoch|nil]
 *              t: index into the topic list
 *              ; [[[t, p, start, end, next, nbytes, err, expired]...], epoch]
 *                + a frame per entry with nbytes > 0
 *              epoch: the topic-list epoch (see TOPICS).  A FETCH that
 *              names one is answered as soon as the broker's differs,
 *              data or not; one with no partitions at all waits only for
 *              that (or max_wait_ms): a consumer that follows the topic
 *              list learns of a new topic at once, and never polls for it.
 *              err: 0, MQ_ERANGE (offset outside [start, end]: start over from
 *              start or end), MQ_ENOENT (no such topic or partition), MQ_EBUSY
 *              (the member does not own the partition: heartbeat now),
 *              MQ_ECORRUPT (the stored data from the offset asked for up to
 *              `next` is damaged and is not sent; reading may go on at next
 *              only if the consumer chooses to skip it).  Every batch sent
 *              passed its CRC and starts where the one before it ended, the
 *              first one holding the offset asked for.
 *              expired: records skipped because their time to live
 *              (batch expire_at, mq-pub --ttl) had passed: the run of
 *              expired batches right after the ones sent, up to next (so
 *              the batches sent end at next - expired).  They are never
 *              sent; the broker counts them once per topic (STATS).
 *              The broker holds a fetch until some partition has data or
 *              max_wait_ms passed (long poll).
 *   OFFSETS    [topic, time|nil]
 *              ; [[[p, start, end, at_time]...]]   at_time: first offset with
 *              timestamp >= time (end if none); -1 when time is nil
 *   JOIN       [group, [topics...], member|"", session_ms, client]
 *              ; [member, generation, [[topic, p]...]]
 *   HEARTBEAT  [group, member, acked_generation]
 *              ; [generation, [[topic, p]...]]    the partitions the member
 *              owns now; a member acks a generation after it stopped using
 *              and committed the partitions that generation took away
 *              Error MQ_ENOENT: unknown member (expired): join again.
 *   LEAVE      [group, member] ; []
 *   COMMIT     [group, member, topic, [[p, offset]...]] ; []
 *              offset = the next offset to consume.  Only the owner may commit
 *              (MQ_EBUSY otherwise).
 *   COMMITTED  [group, topic] ; [[[p, offset]...]]   partitions with a commit
 *
 * Administration (20-29):
 *
 *   TOPICS     [] ; [[[topic, partitions]...], epoch]   every topic, sorted by name
 *              epoch: a number that changes whenever a topic is created,
 *              changed or deleted (and when the broker restarts)
 *   TOPIC_CREATE [topic, partitions (0: default), retention_ms|nil, retention_bytes|nil] ; []
 *   TOPIC_DESCRIBE [topic] ; [partitions, retention_ms, retention_bytes, created_ms, bytes, messages,
 *              default_retention_ms, default_retention_bytes]   retention <= 0: the
 *              broker's default (the last two; 0 there: keep everything)
 *   TOPIC_DELETE [topic, force] ; []   MQ_EBUSY: a group with live members reads it
 *   TOPIC_PARTITIONS [topic, n] ; []
 *   GROUPS     [group|nil, topic|nil]
 *              ; [interval_ms, [[group, generation,
 *                   [[member, client, idle_ms, nowned]...],
 *                   [[topic, p, committed|-1, start, end, owner|"", [[ms, committed, end]...],
 *                     since_ms|-1]...]]...]]
 *              since_ms: when the oldest message the group has not consumed
 *              became readable (mq_log_time_at); -1 when none is left or
 *              it cannot be read.  Readers take rows of 7 as since -1.
 *   GROUP_RESET [group, topic, kind, value, dry_run, create] ; [[[p, old|-1, new]...]]
 *              kind: an mq_offset_kind_t; MQ_EBUSY while the group has live members;
 *              MQ_ENOENT when the group does not exist (no members, no committed
 *              offsets) unless create (absent: false)
 *   GROUP_DELETE [group] ; []
 *   STATS      [] ; [[[name, value]...]]   then "expired" and "expired:TOPIC" (records
 *              skipped as expired since mq-serve started, each once)
 *
 * Shared token buckets (30-39):
 *
 *   BUCKET_TAKE [name, want, min, rate_tokens|nil, rate_per_ns|nil, burst]
 *              ; [granted, wait_ns]   with a rate, the bucket is created or
 *              its definition changed first (burst 0: one second's worth);
 *              granted is between min and want, or 0 when fewer than min
 *              tokens were there (wait_ns: until they will be).  MQ_ENOENT:
 *              no such bucket and no rate given.
 *
 * Half-message transactions (40-49; txn.h, mq-pub(1)).  txid: a u64 the
 * producer picks at random (never 0); every call may be sent again:
 *
 *   TXN_BEGIN  [txid, topic] ; []     the topic must exist (META first).
 *              MQ_EEXIST: the id is taken (pick another)
 *   TXN_ADD    [txid, index, partition] + batch ; [duplicate]   batch number
 *              index (0, 1, ...) of the transaction, stored invisibly.
 *              duplicate: that index was stored before.  MQ_ESEQ: an
 *              earlier index is missing (resend in order); MQ_ETOOBIG: the
 *              transaction passed MQ_TXN_MAX_PART_BYTES for the partition
 *   TXN_END    [txid, nbatches] ; [messages]   the prepare is complete (the
 *              transaction is prepared and its check clock starts).
 *              MQ_EINVAL when the broker holds another number of batches
 *              (lost in a crash): it is rolled back
 *   TXN_COMMIT [txid, topic|nil] ; [state_before]
 *   TXN_ROLLBACK [txid, topic|nil] ; [state_before]   state_before: an
 *              mq_txn_state (txn.h); deciding again the same way is
 *              answered as the first time; the other way is MQ_EINVAL with
 *              a message saying how it was decided; an unknown id MQ_ENOENT.
 *              Replies go out once the decision is on disk
 *   TXN_CHECK  [topic, max_wait_ms] ; [txid|nil] + batch frame when txid
 *              (the checker's long poll: the broker holds it until a
 *              prepared transaction of topic is due for a check, then
 *              answers with its id and its batches, back to back, and
 *              counts the check; nil when max_wait_ms passed).  A new
 *              TXN_CHECK from the same connection replaces a held one
 *   TXN_VERDICT [txid, topic, verdict] ; [state_before]   a checker's answer:
 *              verdict 0 commit, 1 roll back, 2 unknown (ask again at the
 *              next check)
 */
#ifndef MQ_WIRE_H
#define MQ_WIRE_H

#include <msgpack.h>
#include <stdint.h>

#include "util.h"

#define MQ_PROTOCOL_VERSION 1

enum mq_reply_kind { MQ_REP_OK = 0, MQ_REP_ERR = 1 };

/* Batches per producer and partition the broker remembers for retries,
 * and so the most a producer has unacknowledged there.  Kafka keeps 5;
 * here each costs 16 bytes, while a window of 5 small batches cut
 * mq-pub --batch 100 to a fifth of its rate under --fsync always (an
 * fsync per turn covers the batches in flight, no more). */
#define MQ_PRODUCER_BATCHES 32

enum mq_req_kind {
	MQ_REQ_HELLO = 1,
	MQ_REQ_META = 2,
	MQ_REQ_PRODUCE = 3,
	MQ_REQ_FETCH = 4,
	MQ_REQ_OFFSETS = 5,
	MQ_REQ_JOIN = 6,
	MQ_REQ_HEARTBEAT = 7,
	MQ_REQ_LEAVE = 8,
	MQ_REQ_COMMIT = 9,
	MQ_REQ_COMMITTED = 10,
	/* 20-29 administration */
	MQ_REQ_TOPICS = 20,
	MQ_REQ_TOPIC_CREATE = 21,
	MQ_REQ_TOPIC_DESCRIBE = 22,
	MQ_REQ_TOPIC_DELETE = 23,
	MQ_REQ_TOPIC_PARTITIONS = 24,
	MQ_REQ_GROUPS = 25,
	MQ_REQ_GROUP_RESET = 26,
	MQ_REQ_GROUP_DELETE = 27,
	MQ_REQ_STATS = 28,
	/* 30-39 shared buckets */
	MQ_REQ_BUCKET_TAKE = 30,
	/* 40-49 transactions */
	MQ_REQ_TXN_BEGIN = 40,
	MQ_REQ_TXN_ADD = 41,
	MQ_REQ_TXN_END = 42,
	MQ_REQ_TXN_COMMIT = 43,
	MQ_REQ_TXN_ROLLBACK = 44,
	MQ_REQ_TXN_CHECK = 45,
	MQ_REQ_TXN_VERDICT = 46,
	/* 50-59 delayed and expiring messages: none yet; they travel in the
	 * batch header (deliver_at, expire_at) and the FETCH reply (expired) */
};

/* A checker's verdict (TXN_VERDICT). */
enum mq_txn_verdict { MQ_VERDICT_COMMIT = 0, MQ_VERDICT_ROLLBACK = 1, MQ_VERDICT_UNKNOWN = 2 };

/* Offsets given by people (-o, --to), also in GROUP_RESET. */
typedef enum mq_offset_kind {
	MQ_OFF_BEGINNING,
	MQ_OFF_END,
	MQ_OFF_ABS,      /* v */
	MQ_OFF_FROM_END, /* v messages before the end */
	MQ_OFF_TIME,     /* v = ms since the epoch */
} mq_offset_kind_t;

/* Name of a request kind for messages ("PRODUCE"), "?" if unknown. */
const char *mq_wire_kind_name(uint32_t kind);

/* Packing into an mq_buf_t with msgpack-c's packer:
 *   mq_buf_t b = {0}; msgpack_packer pk; mq_wire_packer(&pk, &b);
 *   msgpack_pack_array(&pk, 3); ...                                  */
void mq_wire_packer(msgpack_packer *pk, mq_buf_t *buf);
/* Pack a string / a byte string (as msgpack str). */
void mq_wire_pack_str(msgpack_packer *pk, const char *s);
void mq_wire_pack_strn(msgpack_packer *pk, const void *s, size_t n);
/* true or false. */
void mq_wire_pack_bool(msgpack_packer *pk, int v);
/* Start a message: array of 2 + nargs, then kind and id. */
void mq_wire_begin(msgpack_packer *pk, uint32_t kind, uint32_t id, uint32_t nargs);
/* A complete error reply. */
void mq_wire_pack_err(msgpack_packer *pk, uint32_t id, int code, const char *msg);

/* A parsed header frame.  Objects point into the frame's bytes and into
 * the msgpack zone owned here: valid until mq_wire_msg_free. */
typedef struct mq_wire_msg {
	msgpack_unpacked u;
	const msgpack_object *arg; /* arguments after kind and id */
	uint32_t nargs;
	uint32_t kind;
	uint32_t id;
} mq_wire_msg_t;

/* 1 if p[0..len) starts with one whole msgpack object every declared
 * size of which (str/bin/ext bytes, array/map elements, each at least a
 * byte) fits in the bytes there, else 0.  msgpack-c allocates by the
 * declared counts, so nothing from the network or a file is unpacked
 * before this says yes.  Allocates nothing. */
int mq_msgpack_fits(const void *p, size_t len);

/* Parse a header frame: an array whose first two items are unsigned
 * integers.  -MQ_EPROTO with a message otherwise. */
int mq_wire_parse(const void *data, size_t len, mq_wire_msg_t *m, mq_err_t *err);
void mq_wire_msg_free(mq_wire_msg_t *m);

/* Typed access to argument i (or to any object); -MQ_EPROTO with a
 * message naming the argument when the type is wrong or i is past the
 * end.  Strings are not NUL-terminated: use the length. */
int mq_wire_u64(const msgpack_object *o, uint64_t *v, const char *what, mq_err_t *err);
int mq_wire_i64(const msgpack_object *o, int64_t *v, const char *what, mq_err_t *err);
int mq_wire_bool(const msgpack_object *o, int *v, const char *what, mq_err_t *err);
int mq_wire_strv(const msgpack_object *o, const char **s, size_t *n, const char *what, mq_err_t *err);
int mq_wire_array(const msgpack_object *o, const msgpack_object_array **a, const char *what, mq_err_t *err);
/* Copy a name (topic, group, member) into buf (size MQ_NAME_MAX + 1),
 * NUL-terminated, after checking it with mq_name_check (store.h).
 * nil is allowed when optional (buf gets ""). */
int mq_wire_name(const msgpack_object *o, char *buf, const char *what, int optional, mq_err_t *err);
/* A partition number: -MQ_ENOENT ("partition N does not exist", N as
 * sent) when it cannot be one (above MQ_PARTITIONS_MAX). */
int mq_wire_partition(const msgpack_object *o, uint32_t *p, mq_err_t *err);
/* Argument i of m, or NULL (callers then fail with mq_wire_missing). */
const msgpack_object *mq_wire_arg(const mq_wire_msg_t *m, uint32_t i);
int mq_wire_missing(const mq_wire_msg_t *m, uint32_t i, mq_err_t *err);

/* Socket options, set in order; the first that ZeroMQ refuses fails the
 * lot with -MQ_EIO naming it (a broker without ROUTER_MANDATORY would
 * drop replies silently: nothing here is optional).  wide: an int64_t
 * option (ZMQ_MAXMSGSIZE), else an int. */
typedef struct mq_sockopt {
	int opt;
	const char *name;
	int64_t v;
	int wide;
} mq_sockopt_t;
int mq_wire_sockopts(void *sock, const mq_sockopt_t *o, size_t n, mq_err_t *err);
/* Whether an endpoint names an IPv6 address ("tcp://[::1]:7733",
 * "tcp://[::]:7733"): its socket needs ZMQ_IPV6, which ZeroMQ leaves off. */
int mq_endpoint_is_ipv6(const char *endpoint);

/* The partition of a key: FNV-1a 64-bit hash of the key bytes, modulo
 * the partition count.  Documented in mq-pub(1); never change it. */
uint32_t mq_key_partition(const void *key, size_t len, uint32_t partitions);

#endif
