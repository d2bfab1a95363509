/*
 * broker.c -- the loop of mq-serve (see broker.h and wire.h).
 *
 * One thread.  Each turn: wait on the endpoints (plain TCP ones served
 * by the broker's own ZMTP listener, zsrv.h, the rest by libzmq's ROUTER
 * sockets; bounded by the nearest parked-fetch deadline and the group
 * session check), drain the requests that arrived, then apply the fsync
 * policy to everything appended in the turn (one fdatasync per partition
 * however many batches came: group commit), and only then send the
 * turn's replies.  Fetches
 * with nothing to return are parked and answered when data arrives, the
 * group's generation moves, or their wait runs out.
 *
 * A produce is acknowledged only if its batch is still in its log after
 * the turn's commit: a sync that fails under --fsync always cuts the
 * turn's appends off again (log.c), and then their producers are refused,
 * no fetch answer built in that turn is sent (it may carry the cut bytes;
 * the consumer asks again), and the producer sequences are forgotten, to
 * be rebuilt from what the log really holds.  A full disk and a lack of
 * descriptors are each told once per episode on the broker's log.
 *
 * Sends never block: ROUTER_MANDATORY makes a reply to a vanished peer
 * fail with EHOSTUNREACH, and a full pipe fails with EAGAIN (zsrv.h keeps
 * the same rules); either way the reply is dropped and the client's
 * timeout and retry take over.
 * Producer idempotence (as Kafka's ProducerStateEntry): per partition,
 * the last MQ_PRODUCER_BATCHES batches of each recent producer id (first
 * and last sequence, base offset).  A batch starting at the next expected
 * sequence is stored.  One ahead of it is refused with MQ_ESEQ and not
 * stored, so a batch lost with an old connection is resent before
 * anything after it is taken; unless the producer says nothing earlier of
 * its own is unacknowledged (the broker's memory is then what is behind:
 * lost with a restart or an eviction, or a batch whose records were all
 * dropped as duplicate ids left no trace in the log).  One behind it is a
 * duplicate only when it is one of the remembered batches, and the answer
 * carries the offset it was stored at; anything else behind is refused.
 * So a duplicate answer never covers a batch that is not in the log.  A
 * producer the broker does not know (new, evicted from the table, or
 * beyond the tail a restart scans) is taken from sequence 0 or from its
 * oldest unacknowledged batch; in the last two cases a retry of a batch
 * stored before may be stored again: never a loss, at worst a copy.
 * After a restart the table is rebuilt lazily from the tail of the
 * partition (PRODUCER_SCAN_BYTES of its newest segment).
 *
 * Half-message transactions live in txn.c; here are only their requests,
 * the checkers' held long polls (answered when a transaction of their
 * topic comes due, like parked fetches), the transaction log's group
 * commit in flush_turn and its time-driven work once a turn.
 */
#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "batch.h"
#include "delay.h"
#include "expiry.h"
#include "group.h"
#include "sbucket.h"
#include "seen.h"
#include "store.h"
#include "txn.h"
#include "curve.h"
#include "wire.h"
#include "zap.h"
#include "zsrv.h"

#define TURN_MAX_MSGS 2048
#define TURN_MAX_BYTES (128u << 20)
#define PRODUCERS_PER_PARTITION 64
#define PRODUCER_SCAN_BYTES (64u << 20)
#define FETCH_MAX_BYTES (16u << 20)
#define FETCH_MAX_WAIT_MS 60000
#define FETCH_MAX_PARTS 4096
#define FETCH_MAX_TOPICS 1024
#define PARKED_MAX 4096
#define HISTORY_SAVE_EVERY 6 /* samples between saves of the lag history */
#define DELAY_MOVES_PER_TURN 1024
#define ZSRV_MAX_QUEUE (64u << 20) /* replies waiting for a peer that does not read, beyond: dropped */
#define EPISODE_QUIET_MS 30000 /* a full disk or fd shortage is over after this long without one */

typedef struct ident {
	uint8_t b[256];
	size_t n;
} ident_t;

static int same_peer(int sa, const ident_t *a, int sb, const ident_t *b)
{
	return sa == sb && a->n == b->n && !memcmp(a->b, b->b, a->n);
}

/* A reply waiting for the end of the turn. */
typedef struct outmsg {
	int sock;
	ident_t to;
	mq_buf_t hdr;
	mq_buf_t *pl;
	int npl;
	int durable; /* promises data on disk: becomes an error if the sync fails */
	uint32_t id;
	/* a produce that appended: acknowledged only if its log still reaches end */
	int stored;
	uint32_t part;
	uint64_t end;
	char topic[MQ_NAME_MAX + 1];
	int go; /* flush_turn: to be sent */
} outmsg_t;

typedef char topic_name_t[MQ_NAME_MAX + 1];

/* A checker's TXN_CHECK, held until a transaction is due or its wait ran out. */
typedef struct chkpoll {
	int sock;
	ident_t from;
	uint32_t id;
	char topic[MQ_NAME_MAX + 1];
	int64_t deadline; /* mono ms */
} chkpoll_t;

typedef struct parked {
	int sock;
	ident_t from;
	uint32_t id;
	topic_name_t *topics;
	uint32_t *nparts; /* partition counts of topics[], refreshed at each look */
	uint32_t ntopics;
	char group[MQ_NAME_MAX + 1];
	char member[MQ_MEMBER_MAX + 1];
	uint64_t gen;
	uint32_t n;
	uint32_t *tix; /* entry i: topics[tix[i]], partition parts[i], offset offs[i] */
	uint32_t *parts;
	uint64_t *offs;
	size_t max_bytes;
	int64_t deadline;
	uint64_t epoch; /* the topic list the consumer knows, when has_epoch */
	int has_epoch;
} parked_t;

/* A batch a producer had stored.  Sequences are 32-bit and wrap. */
typedef struct pbatch {
	uint32_t first, last;
	uint64_t base; /* offset it was stored at */
} pbatch_t;

typedef struct producer {
	uint64_t pid;
	uint64_t used; /* pstate_t.clock at its last batch, for eviction */
	pbatch_t batch[MQ_PRODUCER_BATCHES]; /* ring of the newest, oldest at head */
	uint8_t head, n;
	/* Bit i: batch i was rebuilt from the log after id deduplication may
	 * have dropped some of its records, so its last sequence is a lower
	 * bound (the stored header counts the records kept, not the ones sent). */
	uint32_t open;
} producer_t;
_Static_assert(MQ_PRODUCER_BATCHES <= 32, "producer_t.open has a bit per remembered batch");

typedef struct pstate {
	char *key; /* "topic/partition" */
	producer_t *prod; /* up to PRODUCERS_PER_PARTITION */
	int nprod, capprod;
	/* Counts the batches noted, in log order also while the tail is
	 * scanned after a restart, so that eviction forgets the producers
	 * heard from longest ago and never the newest. */
	uint64_t clock;
	int loaded;
} pstate_t;

struct mq_broker {
	mq_broker_opts_t o;
	uint64_t epoch_base; /* the topic-list epoch at start (its wall clock) */
	mq_store_t *store;
	mq_groups_t *groups;
	void *zctx;
	void *sock[MQ_LISTEN_MAX];   /* libzmq's ROUTER, or NULL where srv serves */
	mq_zsrv_t *srv[MQ_LISTEN_MAX]; /* plain TCP endpoints served in this thread (zsrv.h) */
	zmq_pollitem_t *items;        /* the loop's waits, remade each turn */
	struct pollfd *pfd;
	int capitems;
	char endpoint[MQ_LISTEN_MAX][256];
	int nsock;
	int wake_fd; /* < 0: none (mq_broker_wake_on) */
	mq_zap_t *zap; /* CurveZMQ key checks; NULL without --curve-secret */
	volatile sig_atomic_t *reload; /* NULL: none (mq_broker_reload_on) */
	outmsg_t *out;
	int nout, capout;
	parked_t *parked;
	int nparked, capparked;
	pstate_t *pst; /* open-addressed hash table */
	size_t pst_cap, pst_n;
	uint64_t turn;
	int appended; /* something was appended this turn */
	mq_sbuckets_t *buckets; /* shared token buckets */
	mq_txns_t *txns;        /* half-message transactions (txn.h) */
	chkpoll_t *chk;         /* checkers waiting for a check */
	int nchk, capchk;
	mq_seen_t *ids; /* broker-side dedup window: hashes of topic + id */
	mq_expiry_t *expiry; /* records skipped as expired (--ttl), per topic */
	mq_delay_t *delay;   /* delayed batches (--delay, --at) until due */
	int history_failing; /* saves of the lag history failed since it was said */
	uint64_t ids_added; /* ids added this turn, to journal at its end */
	char ids_path[MQ_DATA_DIR_MAX + 32];
	int ids_clean; /* the journal holds every id in the log: say so at close (ids_recover) */
	mq_buf_t scratch;
	mq_hash128_t *batch_ids; /* ids of the batch being produced */
	size_t batch_ids_cap;
	int64_t next_retention;
	int64_t next_sample, started;
	int64_t last_work; /* mono ms of the last turn that may have written (fsync interval) */
	uint64_t samples;
	struct {
		uint64_t requests, msgs_in, batches_in, bytes_in, dup_batches, dup_ids, msgs_out, bytes_out;
	} st;
#ifdef MQ_FAULT_INJECT
	uint64_t fault_kill_after; /* MQ_FAULT_KILL_AFTER_SYNC: synced turns that appended, 0 = off */
#endif
	struct episode {
		int on;
		int64_t last;    /* monotonic ms of the latest occurrence */
		uint64_t count;  /* requests refused in this episode */
	} episodes[3];       /* EP_NOSPACE, EP_NOFILES, EP_DISK */
};

enum { EP_NOSPACE, EP_NOFILES, EP_DISK };

/* ---- faults worth a line on the broker's log ---- */

static void say(mq_broker_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(mq_broker_t *b, const char *fmt, ...)
{
	char line[4608]; /* a path of up to MQ_DATA_DIR_MAX and what it means */
	va_list ap;
	if (!b->o.report)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	b->o.report(b->o.report_ctx, line);
}

/* A full disk or a lack of descriptors: one line when an episode starts
 * (what, where, what to do), one when it has been over for a while. */
static void note_fault(mq_broker_t *b, const mq_err_t *err)
{
	int kind;
	if (err->code == MQ_ENOSPC)
		kind = EP_NOSPACE;
	else if (err->sys == EMFILE || err->sys == ENFILE)
		kind = EP_NOFILES;
	else if (err->sys == EIO || err->sys == EROFS)
		kind = EP_DISK;
	else
		return;
	struct episode *e = &b->episodes[kind];
	e->last = mq_mono_ms();
	e->count++;
	if (e->on)
		return;
	e->on = 1;
	e->count = 1;
	if (kind == EP_NOSPACE)
		say(b, "the disk of data directory %s is full (%s): publishes are refused and nothing of them is "
		    "stored until space is freed; delete topics or data, shorten retention, or move the data "
		    "directory to a larger disk; reads go on", b->o.data_dir, err->msg);
	else if (kind == EP_NOFILES)
		say(b, "out of file descriptors (%s): requests that open files are refused; raise the limit "
		    "(ulimit -n, or LimitNOFILE= for a service), or use fewer connections", err->msg);
	else
		say(b, "the disk of data directory %s failed (%s): publishes are refused and nothing of them is "
		    "stored; check the disk and the kernel log (dmesg), then restart mq-serve; reads go on",
		    b->o.data_dir, err->msg);
}

static void episodes_tick(mq_broker_t *b, int64_t now)
{
	static const char *const what[] = {"the disk of the data directory takes writes again",
					   "file descriptors are available again",
					   "no more disk errors in the data directory"};
	for (int k = 0; k < 3; k++) {
		struct episode *e = &b->episodes[k];
		if (e->on && now - e->last >= EPISODE_QUIET_MS) {
			say(b, "%s (%" PRIu64 " requests were refused)", what[k], e->count);
			e->on = 0;
		}
	}
}

/* ---- outbox ---- */

static outmsg_t *out_new(mq_broker_t *b, int sock, const ident_t *to, uint32_t id)
{
	if (b->nout == b->capout) {
		int cap = b->capout ? b->capout * 2 : 64;
		outmsg_t *p = realloc(b->out, (size_t)cap * sizeof(*p));
		if (!p)
			return NULL;
		b->out = p;
		b->capout = cap;
	}
	outmsg_t *m = &b->out[b->nout++];
	memset(m, 0, sizeof(*m));
	m->sock = sock;
	m->to = *to;
	m->id = id;
	return m;
}

static void reply_err(mq_broker_t *b, int sock, const ident_t *to, uint32_t id, const mq_err_t *err)
{
	note_fault(b, err);
	outmsg_t *m = out_new(b, sock, to, id);
	if (!m)
		return;
	msgpack_packer pk;
	mq_wire_packer(&pk, &m->hdr);
	mq_wire_pack_err(&pk, id, err->code ? err->code : MQ_EINVAL, err->msg);
}

#define MQ_OUT_FRAMES_MAX 32 /* payload frames out_send passes without an allocation */

static void free_payload(void *data, void *hint)
{
	(void)hint;
	free(data);
}

static void out_send(mq_broker_t *b, outmsg_t *m)
{
	if (b->srv[m->sock]) {
		/* frames: the header and the payloads, handed over whole */
		mq_buf_t fr[1 + MQ_OUT_FRAMES_MAX], *f = fr;
		if (m->npl >= MQ_OUT_FRAMES_MAX && !(f = malloc((size_t)(m->npl + 1) * sizeof *f)))
			goto drop;
		uint64_t peer;
		memcpy(&peer, m->to.b, sizeof peer);
		f[0] = m->hdr;
		memset(&m->hdr, 0, sizeof m->hdr);
		for (int i = 0; i < m->npl; i++) {
			f[1 + i] = m->pl[i];
			memset(&m->pl[i], 0, sizeof m->pl[i]);
		}
		(void)mq_zsrv_send(b->srv[m->sock], peer, f, m->npl + 1); /* a peer gone or full: dropped */
		if (f != fr)
			free(f);
		goto drop;
	}
	void *s = b->sock[m->sock];
	int more = ZMQ_SNDMORE | ZMQ_DONTWAIT;
	if (zmq_send(s, m->to.b, m->to.n, more) < 0)
		goto drop; /* peer gone (EHOSTUNREACH) or its pipe is full (EAGAIN) */
	if (zmq_send(s, m->hdr.p, m->hdr.len, m->npl ? more : ZMQ_DONTWAIT) < 0)
		goto drop;
	for (int i = 0; i < m->npl; i++) {
		zmq_msg_t msg;
		if (zmq_msg_init_data(&msg, m->pl[i].p, m->pl[i].len, free_payload, NULL) < 0)
			goto drop;
		m->pl[i].p = NULL; /* owned by the message now */
		if (zmq_msg_send(&msg, s, i + 1 < m->npl ? more : ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&msg);
			goto drop;
		}
	}
drop:
	mq_buf_free(&m->hdr);
	for (int i = 0; i < m->npl; i++)
		mq_buf_free(&m->pl[i]);
	free(m->pl);
}

static void pst_forget_all(mq_broker_t *b);

/* A produce reply for a batch now at [.., end) of topic/partition. */
static void reply_stored(outmsg_t *m, const char *topic, uint32_t partition, uint64_t end)
{
	m->stored = 1;
	snprintf(m->topic, sizeof(m->topic), "%s", topic);
	m->part = partition;
	m->end = end;
}

/* 1 if the batch of a produce reply was cut off by a failed sync. */
static int reply_cut(mq_broker_t *b, const outmsg_t *m)
{
	mq_log_t *log = m->stored ? mq_store_log_peek(b->store, m->topic, m->part) : NULL;
	return log && mq_log_end(log) < m->end;
}

/* Replace a reply with an error. */
static void reply_refuse(outmsg_t *m, const mq_err_t *err)
{
	m->hdr.len = 0;
	msgpack_packer pk;
	mq_wire_packer(&pk, &m->hdr);
	mq_wire_pack_err(&pk, m->id, err->code ? err->code : MQ_EIO, err->msg);
}

#ifdef MQ_FAULT_INJECT
/* Test builds only (make FAULT=1): MQ_FAULT_KILL_AFTER_SYNC=N kills
 * mq-serve with SIGKILL right after the sync of the Nth turn that
 * appended, before any of that turn's replies (and before the dedup
 * journal is written): the acknowledgements are lost for real while the
 * data is on disk, as when the broker dies between its fsync and its
 * send. */
static void fault_init(mq_broker_t *b)
{
	const char *v = getenv("MQ_FAULT_KILL_AFTER_SYNC");
	b->fault_kill_after = v ? strtoull(v, NULL, 10) : 0;
}

static void fault_after_sync(mq_broker_t *b, int synced)
{
	if (!b->fault_kill_after || !b->appended || !synced || --b->fault_kill_after)
		return;
	say(b, "fault injection: MQ_FAULT_KILL_AFTER_SYNC reached; killed after the sync, before the replies");
	raise(SIGKILL);
}
#else
#define fault_init(b) ((void)0)
#define fault_after_sync(b, synced) ((void)0)
#endif

/* End of turn: sync what was appended, then send every reply. */
static void flush_turn(mq_broker_t *b)
{
	mq_err_t err, serr;
	int64_t now = mq_mono_ms();
	int src = mq_store_commit(b->store, now, &serr);
	fault_after_sync(b, src == 0);
	int cut = 0;
	for (int i = 0; i < b->nout && !cut; i++)
		cut = reply_cut(b, &b->out[i]);
	if (cut) {
		/* The turn's ids may name batches that are gone: a retry must be
		 * stored, not taken for a duplicate.  (Ids of batches that did stay
		 * go too: a retry of those is stored twice, never lost.) */
		pst_forget_all(b);
		mq_seen_unadd(b->ids, b->ids_added);
		b->ids_added = 0;
	}
	mq_err_t derr;
	int drc = mq_delay_commit(b->delay, mq_now_ms(), now, &derr);
	int rc = mq_groups_commit_log(b->groups, now, &err);
	if (rc == 0 && drc) {
		rc = drc;
		err = derr;
	}
	if (rc == 0)
		rc = mq_txns_sync(b->txns, now, &err);
	if (rc == 0 && b->ids_added)
		rc = mq_seen_sync(b->ids, &err);
	b->ids_added = 0;
	if (src)
		note_fault(b, &serr);
	if (rc)
		note_fault(b, &err);
	for (int i = 0; i < b->nout; i++) {
		outmsg_t *m = &b->out[i];
		if (m->stored) {
			/* Only the batch's own log decides: it is stored, or it was cut off. */
			if (reply_cut(b, m)) {
				mq_err_t why;
				if (src)
					why = serr;
				else
					mq_err_set(&why, MQ_EIO, "partition %u of topic '%s': the data could not be synced "
						   "to disk and was not stored (see mq-serve's log); publish again", m->part,
						   m->topic);
				reply_refuse(m, &why);
			}
		} else if ((rc || cut) && m->durable) {
			/* The data may not be on disk (a duplicate's first copy may be
			 * what was cut): say so instead of acknowledging. */
			reply_refuse(m, rc ? &err : &serr);
		} else if (cut && m->npl) {
			/* A fetch answer of this turn may carry bytes that were cut off:
			 * not sent; the consumer asks again. */
			mq_buf_free(&m->hdr);
			for (int k = 0; k < m->npl; k++)
				mq_buf_free(&m->pl[k]);
			free(m->pl);
			continue;
		}
		m->go = 1;
	}
	/* Records first: a consumer waiting for them is who the turn's
	 * latency is for (the acknowledgements go out right after).  A
	 * client matches replies by id, so the order between requests does
	 * not matter to it. */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < b->nout; i++)
			if (b->out[i].go && (b->out[i].npl > 0) == (pass == 0))
				out_send(b, &b->out[i]);
		/* Own listeners queue what they are given: written here, the
		 * records' connections before the acknowledgements'. */
		for (int i = 0; i < b->nsock; i++)
			if (b->srv[i])
				mq_zsrv_flush(b->srv[i]);
	}
	b->nout = 0;
	b->appended = 0;
	episodes_tick(b, now);
}

/* ---- producer state ---- */

static uint64_t str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	while (*s)
		h = (h ^ (uint8_t)*s++) * 0x100000001b3ull;
	return h;
}

static pstate_t *pst_get(mq_broker_t *b, const char *topic, uint32_t p)
{
	char key[MQ_NAME_MAX + 16];
	snprintf(key, sizeof(key), "%s/%u", topic, p);
	if (b->pst_n * 2 >= b->pst_cap) {
		size_t cap = b->pst_cap ? b->pst_cap * 2 : 64;
		pstate_t *t = calloc(cap, sizeof(*t));
		if (!t)
			return NULL;
		for (size_t i = 0; i < b->pst_cap; i++) {
			if (!b->pst[i].key)
				continue;
			size_t j = str_hash(b->pst[i].key) & (cap - 1);
			while (t[j].key)
				j = (j + 1) & (cap - 1);
			t[j] = b->pst[i];
		}
		free(b->pst);
		b->pst = t;
		b->pst_cap = cap;
	}
	size_t j = str_hash(key) & (b->pst_cap - 1);
	while (b->pst[j].key) {
		if (!strcmp(b->pst[j].key, key))
			return &b->pst[j];
		j = (j + 1) & (b->pst_cap - 1);
	}
	if (!(b->pst[j].key = strdup(key)))
		return NULL;
	b->pst_n++;
	return &b->pst[j];
}

/* After a failed sync cut appends off: what the producers sent is not
 * what the logs hold, so every partition rebuilds its producers from its
 * log on next use. */
static void pst_forget_all(mq_broker_t *b)
{
	for (size_t i = 0; i < b->pst_cap; i++) {
		b->pst[i].loaded = 0;
		b->pst[i].nprod = 0;
	}
}

static producer_t *prod_find(pstate_t *ps, uint64_t pid)
{
	for (int i = 0; i < ps->nprod; i++)
		if (ps->prod[i].pid == pid)
			return &ps->prod[i];
	return NULL;
}

static const pbatch_t *prod_newest(const producer_t *pr)
{
	return &pr->batch[(pr->head + pr->n - 1) % MQ_PRODUCER_BATCHES];
}

/* The remembered batch that [first, last] is a retry of, or NULL. */
static const pbatch_t *prod_match(const producer_t *pr, uint32_t first, uint32_t last)
{
	for (int i = 0; i < pr->n; i++) {
		int k = (pr->head + i) % MQ_PRODUCER_BATCHES;
		const pbatch_t *pb = &pr->batch[k];
		if (pb->first == first &&
		    (pb->last == last || ((pr->open >> k & 1) && (int32_t)(last - pb->last) > 0)))
			return pb;
	}
	return NULL;
}

/* Remember a stored batch; -MQ_ENOMEM when a new producer finds no room. */
static int prod_note(pstate_t *ps, uint64_t pid, uint32_t first, uint32_t last, uint64_t base, int open)
{
	producer_t *pr = prod_find(ps, pid);
	if (!pr) {
		if (ps->nprod == ps->capprod && ps->capprod < PRODUCERS_PER_PARTITION) {
			int cap = ps->capprod ? ps->capprod * 4 : 4;
			if (cap > PRODUCERS_PER_PARTITION)
				cap = PRODUCERS_PER_PARTITION;
			producer_t *v = realloc(ps->prod, (size_t)cap * sizeof(*v));
			if (!v)
				return -MQ_ENOMEM;
			ps->prod = v;
			ps->capprod = cap;
		}
		if (ps->nprod < ps->capprod) {
			pr = &ps->prod[ps->nprod++];
		} else { /* forget the producer heard from longest ago */
			pr = &ps->prod[0];
			for (int i = 1; i < ps->nprod; i++)
				if (ps->prod[i].used < pr->used)
					pr = &ps->prod[i];
		}
		memset(pr, 0, sizeof(*pr));
		pr->pid = pid;
	}
	int k;
	if (pr->n < MQ_PRODUCER_BATCHES) {
		k = (pr->head + pr->n++) % MQ_PRODUCER_BATCHES;
	} else {
		k = pr->head;
		pr->head = (uint8_t)((pr->head + 1) % MQ_PRODUCER_BATCHES);
	}
	pr->batch[k] = (pbatch_t){first, last, base};
	pr->open = (pr->open & ~(1u << k)) | (open ? 1u << k : 0);
	pr->used = ++ps->clock;
	return 0;
}

typedef struct tail_ctx {
	pstate_t *ps;
	int rc;
} tail_ctx_t;

static void tail_batch(void *ctx, const mq_batch_hdr_t *h, const uint8_t *batch)
{
	(void)batch;
	tail_ctx_t *t = ctx;
	if (h->producer_id && !t->rc)
		t->rc = prod_note(t->ps, h->producer_id, h->base_seq, h->base_seq + h->count - 1, h->base_offset,
				  (h->flags & MQ_BF_IDS) != 0);
}

/* Whether a batch of producer pid with sequences [first, last] is taken
 * (0), a retry of a stored batch (0 with *dup set and *base its offset),
 * or refused (< 0, nothing stored).  oldest: the producer says nothing
 * earlier of its own in this partition is unacknowledged. */
static int prod_check(pstate_t *ps, const char *topic, uint32_t p, uint64_t pid, uint32_t first,
		      uint32_t last, int oldest, int *dup, uint64_t *base, mq_err_t *err)
{
	const producer_t *pr = prod_find(ps, pid);
	if (!pr || !pr->n) {
		if (first == 0 || oldest)
			return 0;
		return mq_err_set(err, MQ_ESEQ, "producer %016" PRIx64 ": batch %u-%u to topic '%s' partition %u came out "
				  "of order (the broker knows no earlier batch of it): not stored; resend from the oldest "
				  "unacknowledged batch", pid, first, last, topic, p);
	}
	uint32_t next = prod_newest(pr)->last + 1;
	int32_t d = (int32_t)(first - next);
	if (d == 0 || (d > 0 && oldest))
		return 0;
	if (d > 0)
		return mq_err_set(err, MQ_ESEQ, "producer %016" PRIx64 ": batch %u-%u to topic '%s' partition %u came out "
				  "of order (expected %u next): not stored; resend the earlier batches first",
				  pid, first, last, topic, p, next);
	const pbatch_t *pb = prod_match(pr, first, last);
	if (!pb)
		return mq_err_set(err, MQ_EINVAL, "producer %016" PRIx64 ": batch %u-%u to topic '%s' partition %u is behind "
				  "the next expected sequence (%u) and not one of its last %d batches: not stored (a stale "
				  "retry, or one producer id used twice); publish these messages again",
				  pid, first, last, topic, p, next, MQ_PRODUCER_BATCHES);
	*dup = 1;
	*base = pb->base;
	return 0;
}

/* ---- requests ---- */

typedef struct req {
	int sock;
	ident_t from;
	mq_wire_msg_t m;
	uint8_t *payload; /* NULL if none: else payload[0..npayload) (writable) */
	size_t npayload;
	int admin;          /* the sender may make admin requests (zap.h) */
} req_t;

static outmsg_t *reply_ok(mq_broker_t *b, req_t *r, uint32_t nresults, msgpack_packer *pk)
{
	outmsg_t *m = out_new(b, r->sock, &r->from, r->m.id);
	if (!m)
		return NULL;
	mq_wire_packer(pk, &m->hdr);
	mq_wire_begin(pk, MQ_REP_OK, r->m.id, nresults);
	return m;
}

/* An empty OK that goes out only after the turn's data is on disk. */
static int reply_durable(mq_broker_t *b, req_t *r)
{
	msgpack_packer pk;
	outmsg_t *m = reply_ok(b, r, 0, &pk);
	if (!m)
		return -MQ_ENOMEM;
	m->durable = 1;
	return 0;
}

static int topic_partitions(mq_broker_t *b, const char *topic, uint32_t *n, mq_err_t *err)
{
	mq_topic_meta_t meta;
	int rc = mq_store_topic_meta(b->store, topic, &meta, err);
	if (rc == -MQ_ENOENT)
		return mq_err_set(err, MQ_ENOENT, "topic '%s' does not exist", topic);
	*n = rc ? 0 : meta.partitions;
	return rc;
}

static int do_hello(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	(void)err;
	msgpack_packer pk;
	if (!reply_ok(b, r, 3, &pk))
		return -MQ_ENOMEM;
	mq_wire_pack_str(&pk, MQ_VERSION);
	msgpack_pack_uint64(&pk, b->o.log.max_record_bytes);
	msgpack_pack_uint32(&pk, b->o.partitions);
	return 0;
}

static int do_meta(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char topic[MQ_NAME_MAX + 1];
	int create = 0, rc;
	uint32_t n = 0;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), topic, "topic", 0, err)) ||
	    (rc = mq_wire_bool(mq_wire_arg(&r->m, 1), &create, "create", err)))
		return rc;
	rc = topic_partitions(b, topic, &n, err);
	if (rc == -MQ_ENOENT && create) {
		mq_topic_meta_t meta = {.partitions = b->o.partitions};
		rc = mq_store_topic_create(b->store, topic, &meta, err);
		if (rc == 0 || rc == -MQ_EEXIST)
			rc = topic_partitions(b, topic, &n, err);
		if (rc == 0)
			mq_groups_topic_changed(b->groups, topic);
	}
	if (rc)
		return rc;
	msgpack_packer pk;
	if (!reply_ok(b, r, 1, &pk))
		return -MQ_ENOMEM;
	msgpack_pack_uint32(&pk, n);
	return 0;
}

/* The dedup key of a record id: topic, NUL, the topic's creation time
 * (so a topic deleted and made again starts with no ids), id.  The
 * caller reserved room in b->scratch (id_room). */
static mq_hash128_t id_hash(mq_broker_t *b, const char *topic, int64_t created, const mq_record_t *rec)
{
	size_t tl = strlen(topic) + 1;
	memcpy(b->scratch.p, topic, tl);
	mq_put_u64(b->scratch.p + tl, (uint64_t)created);
	memcpy(b->scratch.p + tl + 8, rec->id, rec->id_len);
	return mq_seen_hash(b->ids, b->scratch.p, tl + 8 + rec->id_len);
}

/* Is h among the first n hashes of this batch (a small open-addressed
 * set of 2^k slots, all zero = empty)?  Adds it if not. */
static int batch_seen(mq_hash128_t *set, size_t mask, mq_hash128_t h)
{
	if (!h.lo && !h.hi)
		h.lo = 1;
	for (size_t i = (size_t)h.lo & mask;; i = (i + 1) & mask) {
		if (!set[i].lo && !set[i].hi) {
			set[i] = h;
			return 0;
		}
		if (set[i].lo == h.lo && set[i].hi == h.hi)
			return 1;
	}
}

/* Broker-side deduplication of a checked batch whose records carry ids:
 * records whose id the topic stored within the window, or that repeat
 * an id earlier in the batch, are left out.  *out is the batch to store
 * (the original, or a copy without them in b->scratch's place: out_buf),
 * *dups how many were left out.  Their hashes stay in b->batch_ids for
 * ids_commit once the append succeeded. */
static int ids_filter(mq_broker_t *b, const char *topic, const uint8_t *batch, size_t len, mq_buf_t *out_buf,
		      uint32_t *dups, size_t *nids, mq_err_t *err)
{
	mq_batch_iter_t it;
	mq_record_t rec;
	mq_topic_meta_t meta;
	int rc = mq_batch_iter_init(&it, batch, len, err);
	if (rc || (rc = mq_store_topic_meta(b->store, topic, &meta, err)))
		return rc;
	int64_t created = meta.created_ms;
	b->scratch.len = 0; /* room for the longest key: no id is longer than the batch */
	if (mq_buf_reserve(&b->scratch, strlen(topic) + 9 + len))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	size_t slots = 16;
	while (slots < 2 * (size_t)it.hdr.count)
		slots *= 2;
	if (slots > b->batch_ids_cap) {
		mq_hash128_t *v = realloc(b->batch_ids, slots * sizeof(*v));
		if (!v)
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
		b->batch_ids = v;
		b->batch_ids_cap = slots;
	}
	memset(b->batch_ids, 0, slots * sizeof(*b->batch_ids));
	int64_t now = mq_now_ms();
	/* Pass 1: count what goes. */
	*dups = 0;
	while (mq_batch_iter_next(&it, &rec) > 0)
		if (rec.id) {
			mq_hash128_t h = id_hash(b, topic, created, &rec);
			if (mq_seen_contains(b->ids, h, now) || batch_seen(b->batch_ids, slots - 1, h))
				(*dups)++;
		}
	*nids = slots;
	if (*dups == 0 || *dups == it.hdr.count)
		return 0; /* stored as it came (the log checks it), or not at all */
	/* Pass 2: a copy without the duplicates (same producer id and
	 * sequence), made only of a batch that passes the log's own check:
	 * a new CRC must never bless damaged bytes. */
	if ((rc = mq_batch_check(batch, len, b->o.log.max_record_bytes, err)))
		return rc;
	memset(b->batch_ids, 0, slots * sizeof(*b->batch_ids));
	mq_batch_iter_init(&it, batch, len, NULL);
	mq_batch_builder_t bb;
	mq_batch_begin(&bb, out_buf);
	bb.hdr = it.hdr;
	bb.hdr.flags &= (uint16_t)~MQ_BF_IDS;
	mq_header_t *hv = NULL;
	uint32_t hcap = 0;
	while (mq_batch_iter_next(&it, &rec) > 0) {
		if (rec.id) {
			mq_hash128_t h = id_hash(b, topic, created, &rec);
			if (mq_seen_contains(b->ids, h, now) || batch_seen(b->batch_ids, slots - 1, h))
				continue;
		}
		if (rec.header_count > hcap) {
			mq_header_t *v = realloc(hv, rec.header_count * sizeof(*v));
			if (!v) {
				free(hv);
				return mq_err_set(err, MQ_ENOMEM, "out of memory");
			}
			hv = v;
			hcap = rec.header_count;
		}
		const uint8_t *hp = rec.headers;
		uint32_t nh = 0;
		while (nh < rec.header_count && mq_header_next(&hp, rec.headers_end, &hv[nh]))
			nh++;
		if (mq_batch_add(&bb, rec.timestamp, rec.key, rec.key_len, rec.value, rec.value_len, rec.id, rec.id_len,
				 hv, nh)) {
			free(hv);
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
		}
	}
	free(hv);
	mq_batch_finish(&bb);
	return 0;
}

/* After the append: remember the stored ids (those in b->batch_ids). */
static int ids_commit(mq_broker_t *b, size_t slots, mq_err_t *err)
{
	int64_t now = mq_now_ms();
	for (size_t i = 0; i < slots; i++) {
		mq_hash128_t h = b->batch_ids[i];
		if (!h.lo && !h.hi)
			continue;
		int rc = mq_seen_add(b->ids, h, now, err);
		if (rc < 0)
			return rc;
		b->ids_added += rc == 0;
	}
	return 0;
}

/* Append a produced batch to its partition's log, or, when it is not
 * due yet, to the schedule of delayed batches (delay.h).  *delayed: the
 * latter (base is then its place in the schedule). */
static int store_append(mq_broker_t *b, const char *topic, uint32_t p, mq_log_t *log, const mq_batch_hdr_t *h,
			uint8_t *data, size_t n, uint64_t *base, int *delayed, mq_err_t *err)
{
	*delayed = h->deliver_at > mq_now_ms();
	if (*delayed)
		return mq_delay_add(b->delay, topic, p, data, n, h->deliver_at, base, err);
	return mq_log_append(log, data, n, base, err);
}

static int do_produce(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char topic[MQ_NAME_MAX + 1];
	uint64_t p;
	uint32_t n = 0;
	int rc;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), topic, "topic", 0, err)) ||
	    (rc = mq_wire_u64(mq_wire_arg(&r->m, 1), &p, "partition", err)))
		return rc;
	if (!r->payload)
		return mq_err_set(err, MQ_EPROTO, "PRODUCE without a batch frame");
	if ((rc = topic_partitions(b, topic, &n, err)))
		return rc;
	if (p >= n)
		return mq_err_set(err, MQ_ENOENT, "topic '%s' has %u partition%s (0-%u); partition %" PRIu64
				  " does not exist", topic, n, n == 1 ? "" : "s", n - 1, p);
	uint8_t *batch = r->payload;
	size_t len = r->npayload;
	mq_batch_hdr_t h;
	if ((rc = mq_batch_hdr_decode(batch, len, &h, err)))
		return rc;
	mq_log_t *log;
	if ((rc = mq_store_log(b->store, topic, (uint32_t)p, &log, err)))
		return rc;
	pstate_t *ps = NULL;
	int dup = 0, oldest = 0, delayed = 0;
	uint64_t base = 0;
	uint32_t last = h.base_seq + h.count - 1;
	if (mq_wire_arg(&r->m, 2) && (rc = mq_wire_bool(mq_wire_arg(&r->m, 2), &oldest, "oldest", err)))
		return rc;
	if (h.deliver_at > mq_now_ms() && mq_delay_find(b->delay, topic, (uint32_t)p, batch, len, &base)) {
		dup = 1; /* a retry of a delayed batch still pending, also after a restart */
	} else if (h.producer_id) {
		if (!(ps = pst_get(b, topic, (uint32_t)p)))
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
		if (!ps->loaded) {
			tail_ctx_t t = {ps, 0};
			if ((rc = mq_log_scan_tail(log, PRODUCER_SCAN_BYTES, tail_batch, &t, err)))
				return rc;
			if (t.rc)
				return mq_err_set(err, MQ_ENOMEM, "out of memory");
			ps->loaded = 1;
		}
		if ((rc = prod_check(ps, topic, (uint32_t)p, h.producer_id, h.base_seq, last, oldest, &dup, &base, err)))
			return rc;
	}
	uint32_t dup_ids = 0;
	if (!dup && (h.flags & MQ_BF_IDS)) {
		mq_buf_t copy = {0};
		size_t slots = 0;
		if ((rc = ids_filter(b, topic, batch, len, &copy, &dup_ids, &slots, err))) {
			mq_buf_free(&copy);
			return rc;
		}
		base = mq_log_end(log);
		if (dup_ids < h.count)
			rc = store_append(b, topic, (uint32_t)p, log, &h, dup_ids ? copy.p : batch, dup_ids ? copy.len : len,
					  &base, &delayed, err);
		mq_buf_free(&copy);
		if (rc)
			return rc;
		if (dup_ids < h.count)
			b->appended = 1;
		/* Stored: remembering the ids or the sequences may fail (out of
		 * memory, journal); then a later copy is stored again, which is
		 * no loss. */
		if (ps)
			prod_note(ps, h.producer_id, h.base_seq, last, base, 0);
		mq_err_t ignored;
		ids_commit(b, slots, &ignored);
	} else if (!dup) {
		if ((rc = store_append(b, topic, (uint32_t)p, log, &h, batch, len, &base, &delayed, err)))
			return rc;
		b->appended = 1;
		if (ps)
			prod_note(ps, h.producer_id, h.base_seq, last, base, 0);
	}
	b->st.batches_in++;
	b->st.bytes_in += len;
	b->st.dup_batches += (uint64_t)dup;
	b->st.dup_ids += dup_ids;
	b->st.msgs_in += dup ? 0 : h.count - dup_ids;
	msgpack_packer pk;
	outmsg_t *m = reply_ok(b, r, 4, &pk);
	if (!m)
		return -MQ_ENOMEM;
	m->durable = 1;
	if (!dup && dup_ids < h.count && !delayed)
		reply_stored(m, topic, (uint32_t)p, base + h.count - dup_ids);
	msgpack_pack_uint64(&pk, base);
	msgpack_pack_uint32(&pk, h.count - dup_ids);
	mq_wire_pack_bool(&pk, dup);
	msgpack_pack_uint32(&pk, dup_ids);
	return 0;
}

static void damage_notice(mq_broker_t *b, const char *topic, uint32_t p, const mq_err_t *err)
{
	char msg[sizeof(err->msg) + 2 * MQ_NAME_MAX + 512];
	snprintf(msg, sizeof(msg), "topic '%s' partition %" PRIu32 ": %s; consumers get an error for these offsets "
		 "(mq-sub --skip-damaged reads past them): run 'mq-admin verify %s/topics/%s' and restore "
		 "the partition from a copy if you have one", topic, p, err->msg, b->o.data_dir, topic);
	say(b, "%s", msg);
}

/* Time to live (expiry.h): cut a fetch's batches pl at the first expired
 * one.  Returns the records of the expired run after the batches kept
 * (counted once per topic), *skip_to the offset after that run. */
static uint64_t expire_cut(mq_broker_t *b, const char *topic, uint32_t p, mq_log_t *log, mq_buf_t *pl,
			   uint64_t *skip_to)
{
	mq_expiry_cut_t c;
	mq_expiry_cut(pl->p, pl->len, mq_now_ms(), &c);
	if (!c.expired)
		return 0;
	pl->len = c.keep;
	*skip_to = c.next;
	mq_expiry_note(b->expiry, topic, p, c.from, c.next, mq_log_end(log)); /* out of memory: not counted */
	return c.expired;
}

/* Answer a fetch if any partition has data, or if force.  1: answered. */
/* The topic-list epoch: it changes whenever a topic is created, changed
 * or deleted, so that a consumer that follows the list (patterns, topics
 * not there yet, partitions added) looks at it again only then. */
static uint64_t topics_epoch(const mq_broker_t *b)
{
	return b->epoch_base + mq_store_changes(b->store);
}

static int fetch_answer(mq_broker_t *b, parked_t *f, int force)
{
	mq_err_t err;
	uint32_t *nparts = f->nparts; /* 0 for a topic that is gone */
	for (uint32_t t = 0; t < f->ntopics; t++)
		if (topic_partitions(b, f->topics[t], &nparts[t], &err))
			nparts[t] = 0;
	int any = 0;
	for (uint32_t i = 0; i < f->n && !any; i++) {
		mq_log_t *log;
		const char *topic = f->topics[f->tix[i]];
		if (f->parts[i] >= nparts[f->tix[i]] || !mq_groups_owns(b->groups, f->group, f->member, topic, f->parts[i]))
			any = 1; /* an error to report now */
		else if (mq_store_log(b->store, topic, f->parts[i], &log, &err) == 0 &&
			 (f->offs[i] != mq_log_end(log) || f->offs[i] < mq_log_start(log)))
			any = 1;
	}
	if (!any && !force && f->gen == mq_groups_generation(b->groups, f->group) &&
	    !(f->has_epoch && f->epoch != topics_epoch(b)))
		return 0;
	outmsg_t *m = out_new(b, f->sock, &f->from, f->id);
	if (!m || !(m->pl = calloc(f->n ? f->n : 1, sizeof(mq_buf_t))))
		return 1;
	msgpack_packer pk;
	mq_wire_packer(&pk, &m->hdr);
	mq_wire_begin(&pk, MQ_REP_OK, f->id, 2);
	msgpack_pack_array(&pk, f->n);
	size_t budget = f->max_bytes;
	for (uint32_t k = 0; k < f->n; k++) {
		uint32_t i = (uint32_t)((k + f->id) % f->n); /* rotate so no partition starves */
		uint32_t p = f->parts[i], t = f->tix[i];
		uint64_t off = f->offs[i], start = 0, end = 0, next = off, expired = 0, skip_to = 0;
		int code = 0;
		mq_log_t *log = NULL;
		mq_buf_t *pl = &m->pl[m->npl];
		if (p >= nparts[t])
			code = MQ_ENOENT;
		else if (!mq_groups_owns(b->groups, f->group, f->member, f->topics[t], p))
			code = MQ_EBUSY;
		else if (mq_store_log(b->store, f->topics[t], p, &log, &err))
			code = err.code;
		if (log) {
			start = mq_log_start(log);
			end = mq_log_end(log);
			if (off < start || off > end)
				code = MQ_ERANGE;
			else if (off < end && budget > 0) {
				mq_log_damage_t dmg;
				long long got = mq_log_read_checked(log, off, budget, pl, &dmg, &err);
				if (got == -MQ_ECORRUPT) {
					code = MQ_ECORRUPT;
					next = dmg.to;
					if (dmg.fresh)
						damage_notice(b, f->topics[t], p, &err);
				} else if (got < 0) {
					code = err.code;
				} else if (got > 0) {
					expired = expire_cut(b, f->topics[t], p, log, pl, &skip_to);
					/* next: the end of the last batch returned */
					size_t pos = 0;
					mq_batch_hdr_t h;
					while (pos < pl->len && mq_batch_hdr_decode(pl->p + pos, pl->len - pos, &h, NULL) == 0) {
						next = h.base_offset + h.count;
						pos += h.length;
						b->st.msgs_out += h.count;
					}
					if (expired)
						next = skip_to;
					b->st.bytes_out += pl->len;
					budget = (size_t)got >= budget ? 0 : budget - (size_t)got;
				}
			}
		}
		msgpack_pack_array(&pk, 8);
		msgpack_pack_uint32(&pk, t);
		msgpack_pack_uint32(&pk, p);
		msgpack_pack_uint64(&pk, start);
		msgpack_pack_uint64(&pk, end);
		msgpack_pack_uint64(&pk, next);
		msgpack_pack_uint64(&pk, pl->len);
		msgpack_pack_int(&pk, code);
		msgpack_pack_uint64(&pk, expired);
		if (pl->len)
			m->npl++;
		else
			mq_buf_free(pl); /* a failed read may have reserved room */
	}
	msgpack_pack_uint64(&pk, topics_epoch(b));
	return 1;
}

static void parked_free(parked_t *f)
{
	free(f->topics);
	free(f->nparts);
	free(f->tix);
	free(f->parts);
	free(f->offs);
}

static int fetch_parse(parked_t *f, req_t *r, uint64_t *max_bytes, uint64_t *wait, mq_err_t *err)
{
	const msgpack_object_array *ta, *a;
	int rc;
	if ((rc = mq_wire_array(mq_wire_arg(&r->m, 0), &ta, "topics", err)) ||
	    (rc = mq_wire_array(mq_wire_arg(&r->m, 1), &a, "partitions", err)) ||
	    (rc = mq_wire_u64(mq_wire_arg(&r->m, 2), max_bytes, "max_bytes", err)) ||
	    (rc = mq_wire_u64(mq_wire_arg(&r->m, 3), wait, "max_wait_ms", err)) ||
	    (rc = mq_wire_name(mq_wire_arg(&r->m, 4), f->group, "group", 1, err)))
		return rc;
	const msgpack_object *mo = mq_wire_arg(&r->m, 5);
	if (mo && mo->type != MSGPACK_OBJECT_NIL) {
		const char *s;
		size_t n;
		if ((rc = mq_wire_strv(mo, &s, &n, "member", err)))
			return rc;
		if (n > MQ_MEMBER_MAX)
			return mq_err_set(err, MQ_EPROTO, "member id too long");
		memcpy(f->member, s, n);
		f->member[n] = 0;
	}
	const msgpack_object *eo = mq_wire_arg(&r->m, 6);
	if (eo && eo->type != MSGPACK_OBJECT_NIL) {
		if ((rc = mq_wire_u64(eo, &f->epoch, "topics epoch", err)))
			return rc;
		f->has_epoch = 1;
	}
	/* No partition at all: a wait for the topic list to change. */
	if (ta->size > FETCH_MAX_TOPICS)
		return mq_err_set(err, MQ_EPROTO, "FETCH names %u topics (at most %d)", ta->size, FETCH_MAX_TOPICS);
	if (a->size > FETCH_MAX_PARTS)
		return mq_err_set(err, MQ_EPROTO, "FETCH names %u partitions (at most %d)", a->size, FETCH_MAX_PARTS);
	f->ntopics = ta->size;
	f->n = a->size;
	/* (at least one of each: a FETCH that only waits names none) */
	size_t nt = f->ntopics ? f->ntopics : 1, np = f->n ? f->n : 1;
	f->topics = malloc(nt * sizeof(*f->topics));
	f->nparts = malloc(nt * sizeof(*f->nparts));
	f->tix = malloc(np * sizeof(*f->tix));
	f->parts = malloc(np * sizeof(*f->parts));
	f->offs = malloc(np * sizeof(*f->offs));
	if (!f->topics || !f->nparts || !f->tix || !f->parts || !f->offs)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	for (uint32_t t = 0; t < f->ntopics; t++)
		if ((rc = mq_wire_name(&ta->ptr[t], f->topics[t], "topic", 0, err)))
			return rc;
	for (uint32_t i = 0; i < f->n; i++) {
		const msgpack_object_array *e;
		uint64_t t;
		if ((rc = mq_wire_array(&a->ptr[i], &e, "partition entry", err)) ||
		    (e->size < 3 && (rc = mq_err_set(err, MQ_EPROTO, "partition entry: expected [t, p, offset]"))) ||
		    (rc = mq_wire_u64(&e->ptr[0], &t, "topic index", err)) ||
		    (rc = mq_wire_partition(&e->ptr[1], &f->parts[i], err)) ||
		    (rc = mq_wire_u64(&e->ptr[2], &f->offs[i], "offset", err)))
			return rc;
		if (t >= f->ntopics)
			return mq_err_set(err, MQ_EPROTO, "partition entry %u: topic index %" PRIu64 " of %u topics", i,
					  t, f->ntopics);
		f->tix[i] = (uint32_t)t;
	}
	return 0;
}

static int do_fetch(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	parked_t f;
	memset(&f, 0, sizeof(f));
	uint64_t max_bytes, wait;
	int rc = fetch_parse(&f, r, &max_bytes, &wait, err);
	if (rc) {
		parked_free(&f);
		return rc;
	}
	f.sock = r->sock;
	f.from = r->from;
	f.id = r->m.id;
	f.max_bytes = max_bytes == 0 || max_bytes > FETCH_MAX_BYTES ? FETCH_MAX_BYTES : (size_t)max_bytes;
	f.deadline = mq_mono_ms() + (int64_t)(wait > FETCH_MAX_WAIT_MS ? FETCH_MAX_WAIT_MS : wait);
	f.gen = mq_groups_generation(b->groups, f.group);
	/* One fetch per connection: a new one (sent again, or for other
	 * partitions: a consumer whose sink let go of one) takes the place of
	 * the one parked, which its client no longer waits for. */
	for (int i = 0; i < b->nparked; i++)
		if (same_peer(b->parked[i].sock, &b->parked[i].from, f.sock, &f.from)) {
			parked_free(&b->parked[i]);
			b->parked[i] = b->parked[--b->nparked];
			break;
		}
	if (fetch_answer(b, &f, wait == 0 || b->nparked >= PARKED_MAX)) {
		parked_free(&f);
		return 0;
	}
	if (b->nparked == b->capparked) {
		int cap = b->capparked ? b->capparked * 2 : 16;
		parked_t *p = realloc(b->parked, (size_t)cap * sizeof(*p));
		if (!p) {
			parked_free(&f);
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
		}
		b->parked = p;
		b->capparked = cap;
	}
	b->parked[b->nparked++] = f;
	return 0;
}

/* Answer parked fetches that have data, whose group moved, or whose time
 * is up (all of them when force). */
static void serve_parked(mq_broker_t *b, int force)
{
	int64_t now = mq_mono_ms();
	for (int i = 0; i < b->nparked;) {
		parked_t *f = &b->parked[i];
		if (fetch_answer(b, f, force || now >= f->deadline)) {
			parked_free(f);
			b->parked[i] = b->parked[--b->nparked];
		} else {
			i++;
		}
	}
}

static int do_offsets(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char topic[MQ_NAME_MAX + 1];
	uint32_t n = 0;
	int64_t ts = 0;
	int rc, by_time = 0;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), topic, "topic", 0, err)))
		return rc;
	const msgpack_object *t = mq_wire_arg(&r->m, 1);
	if (t && t->type != MSGPACK_OBJECT_NIL) {
		if ((rc = mq_wire_i64(t, &ts, "time", err)))
			return rc;
		by_time = 1;
	}
	if ((rc = topic_partitions(b, topic, &n, err)))
		return rc;
	msgpack_packer pk;
	outmsg_t *m = reply_ok(b, r, 1, &pk);
	if (!m)
		return -MQ_ENOMEM;
	msgpack_pack_array(&pk, n);
	for (uint32_t p = 0; p < n; p++) {
		mq_log_t *log;
		uint64_t at = 0;
		int64_t at_out = -1;
		if ((rc = mq_store_log(b->store, topic, p, &log, err)))
			goto fail;
		if (by_time) {
			if ((rc = mq_log_find_time(log, ts, &at, err)))
				goto fail;
			at_out = (int64_t)at;
		}
		msgpack_pack_array(&pk, 4);
		msgpack_pack_uint32(&pk, p);
		msgpack_pack_uint64(&pk, mq_log_start(log));
		msgpack_pack_uint64(&pk, mq_log_end(log));
		msgpack_pack_int64(&pk, at_out);
	}
	return 0;
fail:
	/* Replace the half-built reply with the error. */
	mq_buf_free(&m->hdr);
	b->nout--;
	return rc;
}

static int pack_assignment(mq_broker_t *b, req_t *r, const char *member, const mq_assignment_t *a)
{
	msgpack_packer pk;
	if (!reply_ok(b, r, member ? 3 : 2, &pk))
		return -MQ_ENOMEM;
	if (member)
		mq_wire_pack_str(&pk, member);
	msgpack_pack_uint64(&pk, a->generation);
	msgpack_pack_array(&pk, a->n);
	for (uint32_t i = 0; i < a->n; i++) {
		msgpack_pack_array(&pk, 2);
		mq_wire_pack_str(&pk, a->tp[i].topic);
		msgpack_pack_uint32(&pk, a->tp[i].partition);
	}
	return 0;
}

static int member_arg(const msgpack_object *o, char *buf, int allow_empty, mq_err_t *err)
{
	const char *s;
	size_t n;
	int rc = mq_wire_strv(o, &s, &n, "member", err);
	if (rc)
		return rc;
	if (n > MQ_MEMBER_MAX || (!allow_empty && n == 0) || memchr(s, 0, n))
		return mq_err_set(err, MQ_EPROTO, "member: invalid id");
	memcpy(buf, s, n);
	buf[n] = 0;
	return 0;
}

static int do_join(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char group[MQ_NAME_MAX + 1], member[MQ_MEMBER_MAX + 1], out_member[MQ_MEMBER_MAX + 1];
	const msgpack_object_array *a;
	uint64_t session;
	int rc;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), group, "group", 0, err)) ||
	    (rc = mq_wire_array(mq_wire_arg(&r->m, 1), &a, "topics", err)) ||
	    (rc = member_arg(mq_wire_arg(&r->m, 2), member, 1, err)) ||
	    (rc = mq_wire_u64(mq_wire_arg(&r->m, 3), &session, "session_ms", err)))
		return rc;
	if (a->size > FETCH_MAX_TOPICS)
		return mq_err_set(err, MQ_EPROTO, "JOIN names %u topics (at most %d)", a->size, FETCH_MAX_TOPICS);
	topic_name_t *names = malloc((a->size ? a->size : 1) * sizeof(*names));
	const char **topics = malloc((a->size ? a->size : 1) * sizeof(*topics));
	if (!names || !topics)
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	for (uint32_t i = 0; !rc && i < a->size; i++) {
		rc = mq_wire_name(&a->ptr[i], names[i], "topic", 0, err);
		topics[i] = names[i];
	}
	mq_assignment_t as = {0};
	if (!rc)
		rc = mq_groups_join(b->groups, group, topics, a->size, member, (int64_t)session, mq_mono_ms(),
				    out_member, &as, err);
	free(names);
	free(topics);
	const msgpack_object *co = mq_wire_arg(&r->m, 4);
	const char *cs;
	size_t cn;
	if (rc == 0 && co && mq_wire_strv(co, &cs, &cn, "client", NULL) == 0) {
		char client[64];
		snprintf(client, sizeof(client), "%.*s", (int)(cn < 63 ? cn : 63), cs);
		mq_groups_set_client(b->groups, group, out_member, client);
	}
	if (rc == 0)
		rc = pack_assignment(b, r, out_member, &as);
	mq_assignment_free(&as);
	return rc;
}

static int do_heartbeat(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char group[MQ_NAME_MAX + 1], member[MQ_MEMBER_MAX + 1];
	uint64_t acked;
	int rc;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), group, "group", 0, err)) ||
	    (rc = member_arg(mq_wire_arg(&r->m, 1), member, 0, err)) ||
	    (rc = mq_wire_u64(mq_wire_arg(&r->m, 2), &acked, "acked_generation", err)))
		return rc;
	mq_assignment_t as = {0};
	rc = mq_groups_heartbeat(b->groups, group, member, acked, mq_mono_ms(), &as, err);
	if (rc == 0)
		rc = pack_assignment(b, r, NULL, &as);
	mq_assignment_free(&as);
	return rc;
}

static int do_leave(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char group[MQ_NAME_MAX + 1], member[MQ_MEMBER_MAX + 1];
	int rc;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), group, "group", 0, err)) ||
	    (rc = member_arg(mq_wire_arg(&r->m, 1), member, 0, err)) ||
	    (rc = mq_groups_leave(b->groups, group, member, err)))
		return rc;
	msgpack_packer pk;
	return reply_ok(b, r, 0, &pk) ? 0 : -MQ_ENOMEM;
}

static int do_commit(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char group[MQ_NAME_MAX + 1], member[MQ_MEMBER_MAX + 1], topic[MQ_NAME_MAX + 1];
	const msgpack_object_array *a;
	int rc;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), group, "group", 0, err)) ||
	    (rc = member_arg(mq_wire_arg(&r->m, 1), member, 0, err)) ||
	    (rc = mq_wire_name(mq_wire_arg(&r->m, 2), topic, "topic", 0, err)) ||
	    (rc = mq_wire_array(mq_wire_arg(&r->m, 3), &a, "offsets", err)))
		return rc;
	if (a->size > FETCH_MAX_PARTS)
		return mq_err_set(err, MQ_EPROTO, "COMMIT of %u partitions (at most %d)", a->size, FETCH_MAX_PARTS);
	uint32_t parts[FETCH_MAX_PARTS];
	uint64_t offs[FETCH_MAX_PARTS];
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object_array *e;
		if ((rc = mq_wire_array(&a->ptr[i], &e, "offset entry", err)) ||
		    (e->size < 2 && (rc = mq_err_set(err, MQ_EPROTO, "offset entry: expected [p, offset]"))) ||
		    (rc = mq_wire_partition(&e->ptr[0], &parts[i], err)) ||
		    (rc = mq_wire_u64(&e->ptr[1], &offs[i], "offset", err)))
			return rc;
	}
	uint32_t n = 0;
	if ((rc = topic_partitions(b, topic, &n, err)))
		return rc;
	for (uint32_t i = 0; i < a->size; i++) {
		mq_log_t *log;
		if (parts[i] < n && (rc = mq_store_log(b->store, topic, parts[i], &log, err)) == 0 &&
		    offs[i] > mq_log_end(log))
			return mq_err_set(err, MQ_ERANGE, "topic '%s' partition %u ends at %" PRIu64 "; offset %" PRIu64
					  " cannot be committed (was the topic made again?)", topic, parts[i],
					  mq_log_end(log), offs[i]);
		if (rc)
			return rc;
	}
	if ((rc = mq_groups_commit(b->groups, group, member, topic, parts, offs, a->size, err)))
		return rc;
	return reply_durable(b, r);
}

static int do_committed(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char group[MQ_NAME_MAX + 1], topic[MQ_NAME_MAX + 1];
	uint32_t n = 0;
	int rc;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), group, "group", 0, err)) ||
	    (rc = mq_wire_name(mq_wire_arg(&r->m, 1), topic, "topic", 0, err)))
		return rc;
	if (topic_partitions(b, topic, &n, err))
		n = 0;
	uint32_t count = 0;
	uint64_t off;
	for (uint32_t p = 0; p < n; p++)
		count += (uint32_t)mq_groups_committed(b->groups, group, topic, p, &off);
	msgpack_packer pk;
	if (!reply_ok(b, r, 1, &pk))
		return -MQ_ENOMEM;
	msgpack_pack_array(&pk, count);
	for (uint32_t p = 0; p < n; p++) {
		if (!mq_groups_committed(b->groups, group, topic, p, &off))
			continue;
		msgpack_pack_array(&pk, 2);
		msgpack_pack_uint32(&pk, p);
		msgpack_pack_uint64(&pk, off);
	}
	return 0;
}

static int do_topics(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char **names = NULL;
	int count = 0, rc;
	if ((rc = mq_store_topic_list(b->store, &names, &count, err)))
		return rc;
	uint32_t *np = calloc((size_t)count + 1, sizeof(*np));
	uint32_t shown = 0;
	for (int i = 0; np && i < count; i++) {
		uint32_t n = 0;
		if (strncmp(names[i], "__", 2) == 0 || topic_partitions(b, names[i], &n, err))
			continue; /* internal, or deleted meanwhile */
		np[i] = n;
		shown += n > 0;
	}
	msgpack_packer pk;
	if (!np || !reply_ok(b, r, 2, &pk)) {
		free(np);
		free(names);
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	msgpack_pack_array(&pk, shown);
	for (int i = 0; i < count; i++) {
		if (!np[i])
			continue;
		msgpack_pack_array(&pk, 2);
		mq_wire_pack_str(&pk, names[i]);
		msgpack_pack_uint32(&pk, np[i]);
	}
	msgpack_pack_uint64(&pk, topics_epoch(b));
	free(np);
	free(names);
	return 0;
}

/* ---- administration ---- */

static int do_topic_create(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char topic[MQ_NAME_MAX + 1];
	uint64_t parts;
	int rc;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), topic, "topic", 0, err)) ||
	    (rc = mq_wire_u64(mq_wire_arg(&r->m, 1), &parts, "partitions", err)))
		return rc;
	if (parts > MQ_PARTITIONS_MAX)
		return mq_err_set(err, MQ_EINVAL, "topic '%s': partitions must be 1-%d (got %" PRIu64 ")", topic,
				  MQ_PARTITIONS_MAX, parts);
	mq_topic_meta_t meta = {.partitions = parts ? (uint32_t)parts : b->o.partitions};
	const msgpack_object *rt = mq_wire_arg(&r->m, 2), *rb = mq_wire_arg(&r->m, 3);
	if (rt && rt->type != MSGPACK_OBJECT_NIL && (rc = mq_wire_i64(rt, &meta.retention_ms, "retention_ms", err)))
		return rc;
	if (rb && rb->type != MSGPACK_OBJECT_NIL &&
	    (rc = mq_wire_i64(rb, &meta.retention_bytes, "retention_bytes", err)))
		return rc;
	if ((rc = mq_store_topic_create(b->store, topic, &meta, err)))
		return rc;
	mq_groups_topic_changed(b->groups, topic);
	return reply_durable(b, r);
}

static int do_topic_describe(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char topic[MQ_NAME_MAX + 1];
	mq_topic_meta_t meta;
	int rc;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), topic, "topic", 0, err)))
		return rc;
	if ((rc = mq_store_topic_meta(b->store, topic, &meta, err)))
		return rc == -MQ_ENOENT ? mq_err_set(err, MQ_ENOENT, "topic '%s' does not exist", topic) : rc;
	uint64_t bytes = 0, msgs = 0;
	for (uint32_t p = 0; p < meta.partitions; p++) {
		mq_log_t *log;
		if ((rc = mq_store_log(b->store, topic, p, &log, err)))
			return rc;
		bytes += mq_log_bytes(log);
		msgs += mq_log_end(log) - mq_log_start(log);
	}
	msgpack_packer pk;
	if (!reply_ok(b, r, 8, &pk))
		return -MQ_ENOMEM;
	msgpack_pack_uint32(&pk, meta.partitions);
	msgpack_pack_int64(&pk, meta.retention_ms);
	msgpack_pack_int64(&pk, meta.retention_bytes);
	msgpack_pack_int64(&pk, meta.created_ms);
	msgpack_pack_uint64(&pk, bytes);
	msgpack_pack_uint64(&pk, msgs);
	/* what applies where the topic has no retention of its own */
	msgpack_pack_int64(&pk, b->o.log.retention_ms > 0 ? b->o.log.retention_ms : 0);
	msgpack_pack_int64(&pk, b->o.log.retention_bytes > 0 ? b->o.log.retention_bytes : 0);
	return 0;
}

static int do_topic_delete(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char topic[MQ_NAME_MAX + 1], readers[512];
	int force = 0, rc;
	uint32_t n = 0;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), topic, "topic", 0, err)) ||
	    (rc = mq_wire_bool(mq_wire_arg(&r->m, 1), &force, "force", err)) ||
	    (rc = topic_partitions(b, topic, &n, err)))
		return rc;
	uint32_t nr = mq_groups_topic_readers(b->groups, topic, readers, sizeof(readers));
	if (nr && !force)
		return mq_err_set(err, MQ_EBUSY, "topic '%s' is being read by group%s %s: stop them, or use --force",
				  topic, nr == 1 ? "" : "s", readers);
	if ((rc = mq_store_topic_delete(b->store, topic, err)) || (rc = mq_groups_topic_deleted(b->groups, topic, err)))
		return rc;
	for (size_t i = 0; i < b->pst_cap; i++) { /* producer state of its partitions */
		pstate_t *ps = &b->pst[i];
		size_t tl = strlen(topic);
		if (ps->key && !strncmp(ps->key, topic, tl) && ps->key[tl] == '/')
			ps->nprod = 0, ps->loaded = 0;
	}
	return reply_durable(b, r);
}

static int do_topic_partitions(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char topic[MQ_NAME_MAX + 1];
	uint64_t n;
	mq_topic_meta_t meta;
	int rc;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), topic, "topic", 0, err)) ||
	    (rc = mq_wire_u64(mq_wire_arg(&r->m, 1), &n, "partitions", err)))
		return rc;
	if ((rc = mq_store_topic_meta(b->store, topic, &meta, err)))
		return rc == -MQ_ENOENT ? mq_err_set(err, MQ_ENOENT, "topic '%s' does not exist", topic) : rc;
	if (n < 1 || n > MQ_PARTITIONS_MAX)
		return mq_err_set(err, MQ_EINVAL, "topic '%s': partitions must be 1-%d (got %" PRIu64 ")", topic,
				  MQ_PARTITIONS_MAX, n);
	meta.partitions = (uint32_t)n;
	if ((rc = mq_store_topic_update(b->store, topic, &meta, err)))
		return rc;
	mq_groups_topic_changed(b->groups, topic);
	return reply_durable(b, r);
}

/* When the oldest message at or after offset (the group's next; below
 * the start means what retention left) became readable: -1 when none is
 * left, or when it cannot be read (mq-lag then shows the age unknown). */
static int64_t oldest_since(mq_log_t *log, uint64_t offset)
{
	mq_err_t e;
	int64_t ms;
	if (!log)
		return -1;
	if (offset < mq_log_start(log))
		offset = mq_log_start(log);
	return offset < mq_log_end(log) && mq_log_time_at(log, offset, &ms, &e) == 0 ? ms : -1;
}

static int group_rows(mq_broker_t *b, msgpack_packer *pk, const char *group, const char *only, mq_err_t *err)
{
	const char **topics = NULL;
	uint32_t nt = 0, nrows = 0;
	int rc = mq_groups_topics(b->groups, group, &topics, &nt);
	if (rc)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	uint32_t *np = calloc(nt ? nt : 1, sizeof(*np));
	if (!np) {
		free(topics);
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	for (uint32_t k = 0; k < nt; k++) {
		mq_err_t e;
		if ((only && strcmp(only, topics[k])) || topic_partitions(b, topics[k], &np[k], &e))
			np[k] = 0;
		nrows += np[k];
	}
	msgpack_pack_array(pk, nrows);
	mq_lag_point_t hist[MQ_GROUP_HISTORY];
	for (uint32_t k = 0; k < nt; k++)
		for (uint32_t p = 0; p < np[k]; p++) {
			mq_log_t *log = NULL;
			mq_err_t e;
			uint64_t off;
			mq_store_log(b->store, topics[k], p, &log, &e);
			const char *owner = mq_groups_owner(b->groups, group, topics[k], p);
			int committed = mq_groups_committed(b->groups, group, topics[k], p, &off);
			msgpack_pack_array(pk, 8);
			mq_wire_pack_str(pk, topics[k]);
			msgpack_pack_uint32(pk, p);
			msgpack_pack_int64(pk, committed ? (int64_t)off : -1);
			msgpack_pack_uint64(pk, log ? mq_log_start(log) : 0);
			msgpack_pack_uint64(pk, log ? mq_log_end(log) : 0);
			mq_wire_pack_str(pk, owner ? owner : "");
			uint32_t nh = mq_groups_history(b->groups, group, topics[k], p, hist);
			msgpack_pack_array(pk, nh);
			for (uint32_t i = 0; i < nh; i++) {
				msgpack_pack_array(pk, 3);
				msgpack_pack_int64(pk, hist[i].ms);
				msgpack_pack_int64(pk, hist[i].committed);
				msgpack_pack_uint64(pk, hist[i].end);
			}
			msgpack_pack_int64(pk, oldest_since(log, committed ? off : 0));
		}
	free(np);
	free(topics);
	return 0;
}

static int do_groups(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char group[MQ_NAME_MAX + 1], topic[MQ_NAME_MAX + 1];
	uint32_t n, np = 0;
	int rc;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), group, "group", 1, err)) ||
	    (rc = mq_wire_name(mq_wire_arg(&r->m, 1), topic, "topic", 1, err)))
		return rc;
	if (topic[0] && (rc = topic_partitions(b, topic, &np, err)))
		return rc;
	const char **names;
	if (mq_groups_names(b->groups, &names, &n))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	uint32_t shown = 0;
	for (uint32_t i = 0; i < n; i++)
		if (!group[0] || !strcmp(group, names[i]))
			names[shown++] = names[i];
	if (group[0] && !shown) {
		free(names);
		return mq_err_set(err, MQ_ENOENT, "no group '%s' (it has no members and no committed offsets)", group);
	}
	msgpack_packer pk;
	outmsg_t *m = reply_ok(b, r, 2, &pk);
	if (!m) {
		free(names);
		return -MQ_ENOMEM;
	}
	msgpack_pack_int64(&pk, b->o.lag_interval_ms);
	msgpack_pack_array(&pk, shown);
	int64_t now = mq_mono_ms();
	for (uint32_t i = 0; i < shown && rc == 0; i++) {
		mq_member_view_t *mv;
		uint32_t nm;
		if (mq_groups_members(b->groups, names[i], now, &mv, &nm)) {
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
			break;
		}
		msgpack_pack_array(&pk, 4);
		mq_wire_pack_str(&pk, names[i]);
		msgpack_pack_uint64(&pk, mq_groups_generation(b->groups, names[i]));
		msgpack_pack_array(&pk, nm);
		for (uint32_t k = 0; k < nm; k++) {
			msgpack_pack_array(&pk, 4);
			mq_wire_pack_str(&pk, mv[k].id);
			mq_wire_pack_str(&pk, mv[k].client);
			msgpack_pack_int64(&pk, mv[k].idle_ms);
			msgpack_pack_uint32(&pk, mv[k].nowned);
		}
		free(mv);
		rc = group_rows(b, &pk, names[i], topic[0] ? topic : NULL, err);
	}
	free(names);
	if (rc) {
		mq_buf_free(&m->hdr);
		b->nout--;
	}
	return rc;
}

/* Where spec (kind, v) puts partition p of log. */
static int reset_target(mq_log_t *log, uint64_t kind, int64_t v, uint64_t *to, mq_err_t *err)
{
	uint64_t start = mq_log_start(log), end = mq_log_end(log);
	switch (kind) {
	case MQ_OFF_BEGINNING: *to = start; return 0;
	case MQ_OFF_END: *to = end; return 0;
	case MQ_OFF_ABS: *to = v < 0 || (uint64_t)v < start ? start : (uint64_t)v > end ? end : (uint64_t)v; return 0;
	case MQ_OFF_FROM_END: *to = v < 0 || (uint64_t)v > end - start ? start : end - (uint64_t)v; return 0;
	case MQ_OFF_TIME: return mq_log_find_time(log, v, to, err);
	default: return mq_err_set(err, MQ_EPROTO, "GROUP_RESET: unknown kind %" PRIu64, kind);
	}
}

static int do_group_reset(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char group[MQ_NAME_MAX + 1], topic[MQ_NAME_MAX + 1];
	uint64_t kind;
	int64_t v;
	int dry = 0, create = 0, rc;
	uint32_t n = 0;
	const msgpack_object *cr = mq_wire_arg(&r->m, 5);
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), group, "group", 0, err)) ||
	    (rc = mq_wire_name(mq_wire_arg(&r->m, 1), topic, "topic", 0, err)) ||
	    (rc = mq_wire_u64(mq_wire_arg(&r->m, 2), &kind, "kind", err)) ||
	    (rc = mq_wire_i64(mq_wire_arg(&r->m, 3), &v, "value", err)) ||
	    (rc = mq_wire_bool(mq_wire_arg(&r->m, 4), &dry, "dry_run", err)) ||
	    (cr && (rc = mq_wire_bool(cr, &create, "create", err))) ||
	    (rc = topic_partitions(b, topic, &n, err)))
		return rc;
	/* Checked here, in the same turn of the loop that sets the offsets,
	 * so no JOIN, COMMIT or GROUP_DELETE can come in between: a mistyped
	 * group name never becomes a group. */
	if (!create && !mq_groups_exists(b->groups, group))
		return mq_err_set(err, MQ_ENOENT, "no group '%s' (it has no members and no committed offsets): check "
				  "the name with 'mq-admin group list', or add --create to make it with these offsets",
				  group);
	uint32_t live = mq_groups_live(b->groups, group);
	if (live)
		return mq_err_set(err, MQ_EBUSY, "group '%s' has %u live member%s: stop them first (offsets move only "
				  "while nobody reads)", group, live, live == 1 ? "" : "s");
	uint32_t *parts = malloc(n * sizeof(*parts));
	uint64_t *to = malloc(n * sizeof(*to));
	int64_t *old = malloc(n * sizeof(*old));
	if (!parts || !to || !old)
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	for (uint32_t p = 0; rc == 0 && p < n; p++) {
		mq_log_t *log;
		uint64_t off;
		parts[p] = p;
		old[p] = mq_groups_committed(b->groups, group, topic, p, &off) ? (int64_t)off : -1;
		if ((rc = mq_store_log(b->store, topic, p, &log, err)) == 0)
			rc = reset_target(log, kind, v, &to[p], err);
	}
	if (rc == 0 && !dry)
		rc = mq_groups_set_offsets(b->groups, group, topic, parts, to, n, err);
	msgpack_packer pk;
	outmsg_t *m = rc ? NULL : reply_ok(b, r, 1, &pk);
	if (m) {
		m->durable = 1;
		msgpack_pack_array(&pk, n);
		for (uint32_t p = 0; p < n; p++) {
			msgpack_pack_array(&pk, 3);
			msgpack_pack_uint32(&pk, p);
			msgpack_pack_int64(&pk, old[p]);
			msgpack_pack_uint64(&pk, to[p]);
		}
	} else if (!rc) {
		rc = -MQ_ENOMEM;
	}
	free(parts);
	free(to);
	free(old);
	return rc;
}

static int do_group_delete(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char group[MQ_NAME_MAX + 1];
	int rc;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), group, "group", 0, err)) ||
	    (rc = mq_groups_delete(b->groups, group, err)))
		return rc;
	return reply_durable(b, r);
}

static int64_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long long size = 0, res = 0;
	if (!f)
		return -1;
	int ok = fscanf(f, "%lld %lld", &size, &res) == 2;
	fclose(f);
	return ok ? res * 4096 : -1;
}

static void pack_stat(msgpack_packer *pk, const char *name, const char *topic, int64_t v)
{
	char full[64 + MQ_NAME_MAX];
	snprintf(full, sizeof(full), "%s%s%s", name, *topic ? ":" : "", topic);
	msgpack_pack_array(pk, 2);
	mq_wire_pack_str(pk, full);
	msgpack_pack_int64(pk, v);
}

/* Rows of later features: records skipped as expired ("expired", then
 * "expired:TOPIC" per topic) and delayed messages not yet due. */
static uint32_t stats_more(mq_broker_t *b)
{
	return 2 + mq_expiry_topics(b->expiry);
}

static void pack_stats_more(mq_broker_t *b, msgpack_packer *pk)
{
	pack_stat(pk, "delayed", "", (int64_t)mq_delay_pending(b->delay));
	pack_stat(pk, "expired", "", (int64_t)mq_expiry_total(b->expiry));
	for (uint32_t i = 0; i < mq_expiry_topics(b->expiry); i++) {
		uint64_t n;
		const char *topic = mq_expiry_topic(b->expiry, i, &n);
		pack_stat(pk, "expired", topic, (int64_t)n);
	}
}

static int do_stats(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char **names = NULL;
	int count = 0, rc;
	if ((rc = mq_store_topic_list(b->store, &names, &count, err)))
		return rc;
	uint64_t parts = 0, bytes = 0, msgs = 0;
	for (int i = 0; i < count; i++) {
		uint32_t n = 0;
		mq_err_t e;
		if (topic_partitions(b, names[i], &n, &e))
			continue;
		parts += n;
		for (uint32_t p = 0; p < n; p++) {
			mq_log_t *log;
			if (mq_store_log(b->store, names[i], p, &log, &e) == 0) {
				bytes += mq_log_bytes(log);
				msgs += mq_log_end(log) - mq_log_start(log);
			}
		}
	}
	free(names);
	const char **gn;
	uint32_t ng = 0, members = 0;
	if (mq_groups_names(b->groups, &gn, &ng) == 0) {
		for (uint32_t i = 0; i < ng; i++)
			members += mq_groups_live(b->groups, gn[i]);
		free(gn);
	}
	const struct {
		const char *name;
		int64_t v;
	} st[] = {
		{"uptime_ms", mq_mono_ms() - b->started},
		{"topics", count},
		{"partitions", (int64_t)parts},
		{"messages", (int64_t)msgs},
		{"bytes", (int64_t)bytes},
		{"requests", (int64_t)b->st.requests},
		{"messages_in", (int64_t)b->st.msgs_in},
		{"batches_in", (int64_t)b->st.batches_in},
		{"bytes_in", (int64_t)b->st.bytes_in},
		{"duplicate_batches", (int64_t)b->st.dup_batches},
		{"partition_syncs", (int64_t)mq_store_syncs(b->store)},
		{"duplicate_ids", (int64_t)b->st.dup_ids},
		{"messages_out", (int64_t)b->st.msgs_out},
		{"bytes_out", (int64_t)b->st.bytes_out},
		{"fetches_parked", b->nparked},
		{"groups", ng},
		{"members", members},
		{"buckets", mq_sbuckets_count(b->buckets)},
		{"dedup_ids", (int64_t)mq_seen_count(b->ids)},
		{"transactions_pending", mq_txns_pending(b->txns)},
		{"checkers_waiting", b->nchk},
		{"rss_bytes", rss_bytes()},
	};
	msgpack_packer pk;
	if (!reply_ok(b, r, 1, &pk))
		return -MQ_ENOMEM;
	uint32_t nst = (uint32_t)(sizeof(st) / sizeof(st[0]));
	msgpack_pack_array(&pk, nst + stats_more(b));
	for (uint32_t i = 0; i < nst; i++)
		pack_stat(&pk, st[i].name, "", st[i].v);
	pack_stats_more(b, &pk);
	return 0;
}

static int64_t sample_end(void *ctx, const char *topic, uint32_t p)
{
	mq_broker_t *b = ctx;
	mq_log_t *log;
	mq_err_t e;
	uint32_t n = 0;
	if (topic_partitions(b, topic, &n, &e) || p >= n || mq_store_log(b->store, topic, p, &log, &e))
		return -1;
	return (int64_t)mq_log_end(log);
}

static int do_bucket_take(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char name[MQ_NAME_MAX + 1];
	uint64_t want, min, burst;
	int rc;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), name, "bucket", 0, err)) ||
	    (rc = mq_wire_u64(mq_wire_arg(&r->m, 1), &want, "want", err)) ||
	    (rc = mq_wire_u64(mq_wire_arg(&r->m, 2), &min, "min", err)) ||
	    (rc = mq_wire_u64(mq_wire_arg(&r->m, 5), &burst, "burst", err)))
		return rc;
	const msgpack_object *rt = mq_wire_arg(&r->m, 3), *rp = mq_wire_arg(&r->m, 4);
	uint64_t now = mq_mono_ns();
	if (rt && rp && rt->type != MSGPACK_OBJECT_NIL) {
		mq_rate_t rate;
		if ((rc = mq_wire_u64(rt, &rate.tokens, "rate_tokens", err)) ||
		    (rc = mq_wire_u64(rp, &rate.per_ns, "rate_per_ns", err)))
			return rc;
		if (!rate.tokens || !rate.per_ns || burst > MQ_BUCKET_MAX_BURST)
			return mq_err_set(err, MQ_EINVAL, "bucket '%s': the rate must be above 0 and the burst at most 2^62",
					  name);
		if (!r->admin && !mq_sbuckets_defined_as(b->buckets, name, &rate, burst))
			return mq_err_set(err, MQ_EPERM, "shared bucket '%s': defining or changing a shared bucket needs an "
					  "admin key (one in mq-serve's --curve-allow-admin directory); others may "
					  "take from it with its own rate", name);
		if ((rc = mq_sbuckets_define(b->buckets, name, &rate, burst, now, err)))
			return rc;
	}
	uint64_t granted = 0, wait = 0;
	if ((rc = mq_sbuckets_take(b->buckets, name, want, min, now, &granted, &wait, err)))
		return rc;
	msgpack_packer pk;
	if (!reply_ok(b, r, 2, &pk))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	msgpack_pack_uint64(&pk, granted);
	msgpack_pack_uint64(&pk, wait);
	return 0;
}

/* ---- half-message transactions (txn.h; requests in wire.h) ---- */

static int txid_arg(const mq_wire_msg_t *m, uint32_t i, uint64_t *txid, mq_err_t *err)
{
	int rc = mq_wire_u64(mq_wire_arg(m, i), txid, "transaction id", err);
	if (rc == 0 && *txid == 0)
		return mq_err_set(err, MQ_EINVAL, "transaction id 0 is not valid");
	return rc;
}

/* A reply [value] that goes out once the turn's data is on disk. */
static int reply_txn(mq_broker_t *b, req_t *r, uint64_t v)
{
	msgpack_packer pk;
	outmsg_t *m = reply_ok(b, r, 1, &pk);
	if (!m)
		return -MQ_ENOMEM;
	m->durable = 1;
	msgpack_pack_uint64(&pk, v);
	return 0;
}

/* Answer a held check: a due transaction, or nil when force. 1: answered. */
static int check_answer(mq_broker_t *b, chkpoll_t *c, int force)
{
	mq_err_t err;
	uint64_t txid = 0;
	mq_buf_t msgs = {0};
	int got = force ? 0 : mq_txns_check_next(b->txns, c->topic, mq_now_ms(), &txid, &msgs, &err);
	if (got < 0) {
		mq_buf_free(&msgs);
		say(b, "transaction check for topic '%s': %s", c->topic, err.msg);
		got = 0;
	}
	if (!got && !force && mq_mono_ms() < c->deadline)
		return 0;
	outmsg_t *m = out_new(b, c->sock, &c->from, c->id);
	if (m && got && !(m->pl = calloc(1, sizeof(mq_buf_t))))
		got = 0; /* out of memory: answered "nothing due"; the check counts, it is asked again later */
	if (!m || !got)
		mq_buf_free(&msgs);
	if (!m)
		return 1; /* the checker's poll runs out and it asks again */
	msgpack_packer pk;
	mq_wire_packer(&pk, &m->hdr);
	mq_wire_begin(&pk, MQ_REP_OK, c->id, 1);
	if (got) {
		msgpack_pack_uint64(&pk, txid);
		m->pl[0] = msgs;
		m->npl = 1;
		m->durable = 1; /* the check is counted on disk first */
	} else {
		msgpack_pack_nil(&pk);
	}
	return 1;
}

static int txn_check(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	chkpoll_t c = {.sock = r->sock, .from = r->from, .id = r->m.id};
	uint64_t wait;
	int rc;
	if ((rc = mq_wire_name(mq_wire_arg(&r->m, 0), c.topic, "topic", 0, err)) ||
	    (rc = mq_wire_u64(mq_wire_arg(&r->m, 1), &wait, "max_wait_ms", err)))
		return rc;
	c.deadline = mq_mono_ms() + (int64_t)(wait > FETCH_MAX_WAIT_MS ? FETCH_MAX_WAIT_MS : wait);
	for (int i = 0; i < b->nchk; i++) /* one held check per connection */
		if (same_peer(b->chk[i].sock, &b->chk[i].from, c.sock, &c.from)) {
			b->chk[i] = b->chk[--b->nchk];
			break;
		}
	if (check_answer(b, &c, wait == 0 || b->nchk >= PARKED_MAX))
		return 0;
	if (b->nchk == b->capchk) {
		int cap = b->capchk ? b->capchk * 2 : 8;
		chkpoll_t *v = realloc(b->chk, (size_t)cap * sizeof(*v));
		if (!v)
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
		b->chk = v;
		b->capchk = cap;
	}
	b->chk[b->nchk++] = c;
	return 0;
}

static int do_txn(mq_broker_t *b, req_t *r, mq_err_t *err)
{
	char topic[MQ_NAME_MAX + 1] = "";
	uint64_t txid, n, v = 0, index, part;
	int rc, was = 0, dup = 0;
	uint32_t kind = r->m.kind;
	if (kind == MQ_REQ_TXN_CHECK)
		return txn_check(b, r, err);
	if ((rc = txid_arg(&r->m, 0, &txid, err)))
		return rc;
	switch (kind) {
	case MQ_REQ_TXN_BEGIN:
		if ((rc = mq_wire_name(mq_wire_arg(&r->m, 1), topic, "topic", 0, err)) ||
		    (rc = mq_txns_begin(b->txns, txid, topic, mq_now_ms(), err)))
			return rc;
		return reply_durable(b, r);
	case MQ_REQ_TXN_ADD:
		if ((rc = mq_wire_u64(mq_wire_arg(&r->m, 1), &index, "index", err)) ||
		    (rc = mq_wire_u64(mq_wire_arg(&r->m, 2), &part, "partition", err)))
			return rc;
		if (!r->payload)
			return mq_err_set(err, MQ_EPROTO, "TXN_ADD without a batch frame");
		if (index > UINT32_MAX || part >= MQ_PARTITIONS_MAX)
			return mq_err_set(err, MQ_EINVAL, "TXN_ADD: index or partition out of range");
		if ((rc = mq_txns_add(b->txns, txid, (uint32_t)index, (uint32_t)part, r->payload, r->npayload,
				      b->o.log.max_record_bytes, &dup, err)))
			return rc;
		return reply_txn(b, r, (uint64_t)dup);
	case MQ_REQ_TXN_END:
		if ((rc = mq_wire_u64(mq_wire_arg(&r->m, 1), &n, "nbatches", err)))
			return rc;
		if (n > UINT32_MAX)
			return mq_err_set(err, MQ_EINVAL, "TXN_END: %" PRIu64 " batches", n);
		if ((rc = mq_txns_end(b->txns, txid, (uint32_t)n, mq_now_ms(), &v, err)))
			return rc;
		return reply_txn(b, r, v);
	case MQ_REQ_TXN_COMMIT:
	case MQ_REQ_TXN_ROLLBACK:
	case MQ_REQ_TXN_VERDICT:
		if ((rc = mq_wire_name(mq_wire_arg(&r->m, 1), topic, "topic", 1, err)))
			return rc;
		v = kind == MQ_REQ_TXN_ROLLBACK ? MQ_VERDICT_ROLLBACK : MQ_VERDICT_COMMIT;
		if (kind == MQ_REQ_TXN_VERDICT && (rc = mq_wire_u64(mq_wire_arg(&r->m, 2), &v, "verdict", err)))
			return rc;
		int why = kind == MQ_REQ_TXN_VERDICT ? MQ_TXN_BY_CHECKER : MQ_TXN_BY_CLIENT;
		if (v == MQ_VERDICT_COMMIT) {
			rc = mq_txns_commit(b->txns, txid, topic, why, UINT32_MAX, &was, err);
			b->appended = 1; /* parked fetches look again */
		} else if (v == MQ_VERDICT_ROLLBACK) {
			rc = mq_txns_rollback(b->txns, txid, topic, why, &was, err);
		} else if (mq_txns_state(b->txns, txid, &was, &dup)) {
			rc = mq_err_set(err, MQ_ENOENT, "no transaction %016" PRIx64, txid);
		}
		return rc ? rc : reply_txn(b, r, (uint64_t)was);
	default:
		return mq_err_set(err, MQ_EPROTO, "unknown transaction request %u", kind);
	}
}

/* The loop's wait ends for a held check's deadline or a transaction's
 * due time (wall clock, so a jump of the clock at most delays it). */
static void txn_wait(mq_broker_t *b, int64_t now, int64_t *timeout)
{
	int64_t wall = mq_now_ms(), due = mq_txns_next_due(b->txns);
	for (int i = 0; i < b->nchk; i++) {
		int64_t at = mq_txns_next_check(b->txns, b->chk[i].topic);
		if (b->chk[i].deadline - now < *timeout)
			*timeout = b->chk[i].deadline - now;
		if (at < due)
			due = at;
	}
	if (due != INT64_MAX && due - wall < *timeout)
		*timeout = due - wall;
}

/* Each turn: time-driven decisions, then held checks (all answered when
 * stopping). */
static void txn_turn(mq_broker_t *b, int stopping)
{
	mq_err_t err;
	if (mq_txns_tick(b->txns, mq_now_ms(), &err)) {
		note_fault(b, &err);
		say(b, "transactions: %s", err.msg);
	}
	for (int i = 0; i < b->nchk;) {
		if (check_answer(b, &b->chk[i], stopping))
			b->chk[i] = b->chk[--b->nchk];
		else
			i++;
	}
}

/* What a request only an admin key may make does, in words (zap.h,
 * mq-serve --curve-allow-admin); NULL for the others.  Defining a
 * shared bucket is checked in do_bucket_take (taking from one is not). */
static const char *admin_only(uint32_t kind)
{
	switch (kind) {
	case MQ_REQ_TOPIC_DELETE: return "deleting a topic";
	case MQ_REQ_TOPIC_PARTITIONS: return "adding partitions";
	case MQ_REQ_GROUP_RESET: return "resetting a group";
	case MQ_REQ_GROUP_DELETE: return "deleting a group";
	default: return NULL;
	}
}

static void dispatch(mq_broker_t *b, req_t *r)
{
	mq_err_t err = {0};
	int rc;
	b->st.requests++;
	const char *what = r->admin ? NULL : admin_only(r->m.kind);
	if (what) {
		mq_err_set(&err, MQ_EPERM, "%s needs an admin key (one in mq-serve's --curve-allow-admin directory); "
			   "this client's key is in --curve-allow only", what);
		reply_err(b, r->sock, &r->from, r->m.id, &err);
		return;
	}
	switch (r->m.kind) {
	case MQ_REQ_HELLO: rc = do_hello(b, r, &err); break;
	case MQ_REQ_META: rc = do_meta(b, r, &err); break;
	case MQ_REQ_PRODUCE: rc = do_produce(b, r, &err); break;
	case MQ_REQ_FETCH: rc = do_fetch(b, r, &err); break;
	case MQ_REQ_OFFSETS: rc = do_offsets(b, r, &err); break;
	case MQ_REQ_JOIN: rc = do_join(b, r, &err); break;
	case MQ_REQ_HEARTBEAT: rc = do_heartbeat(b, r, &err); break;
	case MQ_REQ_LEAVE: rc = do_leave(b, r, &err); break;
	case MQ_REQ_COMMIT: rc = do_commit(b, r, &err); break;
	case MQ_REQ_COMMITTED: rc = do_committed(b, r, &err); break;
	case MQ_REQ_TOPICS: rc = do_topics(b, r, &err); break;
	case MQ_REQ_BUCKET_TAKE: rc = do_bucket_take(b, r, &err); break;
	case MQ_REQ_TOPIC_CREATE: rc = do_topic_create(b, r, &err); break;
	case MQ_REQ_TOPIC_DESCRIBE: rc = do_topic_describe(b, r, &err); break;
	case MQ_REQ_TOPIC_DELETE: rc = do_topic_delete(b, r, &err); break;
	case MQ_REQ_TOPIC_PARTITIONS: rc = do_topic_partitions(b, r, &err); break;
	case MQ_REQ_GROUPS: rc = do_groups(b, r, &err); break;
	case MQ_REQ_GROUP_RESET: rc = do_group_reset(b, r, &err); break;
	case MQ_REQ_GROUP_DELETE: rc = do_group_delete(b, r, &err); break;
	case MQ_REQ_STATS: rc = do_stats(b, r, &err); break;
	case MQ_REQ_TXN_BEGIN:
	case MQ_REQ_TXN_ADD:
	case MQ_REQ_TXN_END:
	case MQ_REQ_TXN_COMMIT:
	case MQ_REQ_TXN_ROLLBACK:
	case MQ_REQ_TXN_CHECK:
	case MQ_REQ_TXN_VERDICT: rc = do_txn(b, r, &err); break;
	default:
		rc = mq_err_set(&err, MQ_EPROTO, "unknown request kind %u (client newer than this mq-serve?)",
				r->m.kind);
	}
	if (rc) {
		if (!err.msg[0])
			mq_err_set(&err, rc < 0 ? -rc : rc, "%s failed", mq_wire_kind_name(r->m.kind));
		reply_err(b, r->sock, &r->from, r->m.id, &err);
	}
}

/* A request of nframes frames after the peer's identity: the header
 * hdr[0..hlen) and r->payload already set.  A request with more frames
 * is refused whole (no frame silently wins); a header that does not
 * parse, or has id 0, cannot be answered (wire.h: no reply carries id 0)
 * and is dropped.  meta: the header's libzmq message, for the role
 * CurveZMQ gave the connection (NULL: a plain endpoint, every right). */
static void take_request(mq_broker_t *b, req_t *r, const void *hdr, size_t hlen, int nframes, zmq_msg_t *meta)
{
	mq_err_t err;
	if (mq_wire_parse(hdr, hlen, &r->m, &err) == 0 && r->m.id) {
		r->admin = 1;
		if (meta && b->o.curve_allow_admin && (admin_only(r->m.kind) || r->m.kind == MQ_REQ_BUCKET_TAKE)) {
			/* the role the key check gave the connection (zap.h) */
			const char *role = zmq_msg_gets(meta, MQ_ZAP_ROLE);
			r->admin = role && !strcmp(role, "admin");
		}
		if (nframes > 2) {
			mq_err_set(&err, MQ_EPROTO, "%s request of %d frames: at most one payload frame",
				   mq_wire_kind_name(r->m.kind), nframes);
			reply_err(b, r->sock, &r->from, r->m.id, &err);
		} else {
			dispatch(b, r);
		}
	}
	mq_wire_msg_free(&r->m);
}

/* Receive one request from libzmq's socket i: 1 handled, 0 nothing
 * waiting.  Frames: the peer's identity, the header, the payload. */
static int recv_zmq(mq_broker_t *b, int i, size_t *bytes)
{
	void *s = b->sock[i];
	zmq_msg_t frames[3];
	int n = 0, more = 1;
	for (int k = 0; k < 3; k++)
		zmq_msg_init(&frames[k]);
	while (more) {
		zmq_msg_t *f = n < 3 ? &frames[n] : &frames[2];
		if (n >= 3) { /* counted, not kept: the request is refused below */
			zmq_msg_close(f);
			zmq_msg_init(f);
		}
		if (zmq_msg_recv(f, s, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
			for (int k = 0; k < 3; k++)
				zmq_msg_close(&frames[k]);
			return 0;
		}
		more = zmq_msg_more(f);
		*bytes += zmq_msg_size(f);
		n++;
	}
	if (n >= 2 && zmq_msg_size(&frames[0]) <= sizeof(((ident_t *)0)->b)) {
		req_t r;
		memset(&r, 0, sizeof(r));
		r.sock = i;
		r.from.n = zmq_msg_size(&frames[0]);
		memcpy(r.from.b, zmq_msg_data(&frames[0]), r.from.n);
		if (n == 3) {
			r.payload = zmq_msg_data(&frames[2]);
			r.npayload = zmq_msg_size(&frames[2]);
		}
		take_request(b, &r, zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1]), n - 1, &frames[1]);
	}
	for (int k = 0; k < 3; k++)
		zmq_msg_close(&frames[k]);
	return 1;
}

/* Receive one request from the broker's own listener i (zsrv.h). */
static int recv_zsrv(mq_broker_t *b, int i, size_t *bytes)
{
	uint64_t peer;
	const mq_zmtp_frame_t *f;
	int n;
	if (!mq_zsrv_recv(b->srv[i], &peer, &f, &n))
		return 0;
	req_t r;
	memset(&r, 0, sizeof(r));
	r.sock = i;
	r.from.n = sizeof peer;
	memcpy(r.from.b, &peer, sizeof peer);
	for (int k = 0; k < n; k++)
		*bytes += f[k].len;
	if (n >= 2) {
		/* the listener's own buffer, writable, until the next poll */
		r.payload = (uint8_t *)(uintptr_t)f[1].p;
		r.npayload = f[1].len;
	}
	take_request(b, &r, f[0].p, f[0].len, n, NULL);
	return 1;
}

static int recv_one(mq_broker_t *b, int i, size_t *bytes)
{
	return b->srv[i] ? recv_zsrv(b, i, bytes) : recv_zmq(b, i, bytes);
}

/* ---- open / run / close ---- */

static void listener_fault(void *ctx, const mq_err_t *err)
{
	note_fault(ctx, err);
}

/* A state file recovered up to its last good record: one line on the
 * broker's report, with what the loss means for this file. */
static void say_lost(mq_broker_t *b, const char *msg, const char *means)
{
	say(b, "%s%s", msg, means);
}

static void state_lost(void *ctx, const char *msg)
{
	say_lost(ctx, msg, "");
}

static void dedup_lost(void *ctx, const char *msg)
{
	say_lost(ctx, msg, " (the dedup window: a message sent again with a dropped id is stored again)");
}

static void delay_said(void *ctx, const char *msg)
{
	say(ctx, "%s", msg);
}

static void buckets_lost(void *ctx, const char *msg)
{
	say_lost(ctx, msg, " (shared buckets: define the dropped ones again with 'mq-bucket --take NAME -r RATE')");
}

/* Monitoring data: a failed save costs only history, and is said once
 * until a save works again, not at every attempt. */
static void history_save(mq_broker_t *b)
{
	mq_err_t e;
	char line[sizeof(e.msg) + 64];
	if (mq_groups_history_save(b->groups, &e) == 0) {
		b->history_failing = 0;
	} else if (!b->history_failing++) {
		snprintf(line, sizeof(line), "cannot save the lag history: %s", e.msg);
		say_lost(b, line, " (mq-lag loses the samples taken since the last save if mq-serve restarts; "
				  "tried again every six samples)");
	}
}

/* ---- dedup ids after a crash ----
 *
 * A turn appends its batches, syncs them, then journals their ids: a
 * crash in between leaves records in the log whose ids the journal
 * lacks, and a producer that sends them again (a re-run with the same
 * --id) would have them stored twice.  So at start, every partition
 * written since the journal last was (segment newer than it; a clean
 * stop touches the journal last) has the ids of its tail taken back into
 * the window: what one turn can append, the most a crash can leave
 * unjournaled, and only records still inside the window. */
#define IDS_SCAN_BYTES ((uint64_t)TURN_MAX_BYTES + MQ_BATCH_MAX_BYTES)

typedef struct ids_scan {
	mq_broker_t *b;
	const char *topic;
	int64_t created, oldest, now;
	uint64_t added;
	int rc;
	mq_err_t *err;
} ids_scan_t;

static void ids_scan_batch(void *ctx, const mq_batch_hdr_t *h, const uint8_t *batch)
{
	ids_scan_t *t = ctx;
	mq_batch_iter_t it;
	mq_record_t rec;
	if (t->rc || !(h->flags & MQ_BF_IDS) || h->max_ts < t->oldest ||
	    mq_batch_iter_init(&it, batch, h->length, NULL))
		return;
	t->b->scratch.len = 0;
	if (mq_buf_reserve(&t->b->scratch, strlen(t->topic) + 9 + h->length)) {
		t->rc = mq_err_set(t->err, MQ_ENOMEM, "out of memory");
		return;
	}
	while (mq_batch_iter_next(&it, &rec) > 0) {
		if (!rec.id || rec.timestamp < t->oldest)
			continue;
		int rc = mq_seen_add(t->b->ids, id_hash(t->b, t->topic, t->created, &rec), t->now, t->err);
		if (rc < 0) {
			t->rc = rc;
			return;
		}
		t->added += rc == 0;
	}
}

static int ids_recover(mq_broker_t *b, int64_t journal_ns, mq_err_t *err)
{
	char **names = NULL;
	int count = 0, rc;
	if ((rc = mq_store_topic_list(b->store, &names, &count, err)))
		return rc;
	ids_scan_t t = {.b = b, .now = mq_now_ms()};
	t.oldest = t.now - b->o.dedup_window_ms;
	uint64_t partitions = 0;
	int missed = 0; /* partitions that could not be scanned: scan again next start */
	for (int i = 0; i < count && !rc; i++) {
		mq_topic_meta_t meta;
		mq_err_t e;
		if (mq_store_topic_meta(b->store, names[i], &meta, &e)) {
			missed++;
			say(b, "dedup window: %s; ids of its newest records may be missing (a message sent again with "
			       "one of them may be stored twice)", e.msg);
			continue;
		}
		t.topic = names[i];
		t.created = meta.created_ms;
		for (uint32_t p = 0; p < meta.partitions && !rc; p++) {
			mq_log_t *log;
			int64_t ns;
			int bad = 0;
			t.err = &e;
			t.rc = 0;
			if (mq_store_log(b->store, names[i], p, &log, &e) || mq_log_mtime(log, &ns, &e))
				bad = 1;
			else if (ns >= journal_ns && mq_log_end(log) > mq_log_start(log)) {
				partitions++;
				bad = mq_log_scan_tail(log, IDS_SCAN_BYTES, ids_scan_batch, &t, &e) || t.rc;
			}
			if (!bad)
				continue;
			if (e.code == MQ_ENOMEM)
				rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
			missed++;
			say(b, "dedup window: topic '%s' partition %u: %s; ids of its newest records may be missing "
			       "(a message sent again with one of them may be stored twice)", names[i], p, e.msg);
		}
	}
	free(names);
	if (rc == 0 && t.added && (rc = mq_seen_sync(b->ids, err)) == 0)
		say(b, "dedup window: %" PRIu64 " id%s of records stored just before mq-serve stopped were missing "
		       "from %s and were taken back from the log (%" PRIu64 " partition%s scanned); nothing to do",
		    t.added, t.added == 1 ? "" : "s", b->ids_path, partitions, partitions == 1 ? "" : "s");
	b->ids_clean = rc == 0 && !missed;
	return rc;
}

int mq_broker_open(const mq_broker_opts_t *o, mq_broker_t **out, mq_err_t *err)
{
	mq_broker_t *b = calloc(1, sizeof(*b));
	if (!b)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	b->o = *o;
	b->wake_fd = -1;
	if (!b->o.partitions)
		b->o.partitions = 1;
	if (b->o.retention_check_ms <= 0)
		b->o.retention_check_ms = 60000;
	if (b->o.lag_interval_ms <= 0)
		b->o.lag_interval_ms = 10000;
	if (b->o.dedup_window_ms <= 0)
		b->o.dedup_window_ms = 120000;
	if (!b->o.dedup_max_ids)
		b->o.dedup_max_ids = 1000000;
	fault_init(b);
	b->o.log.report = b->o.report; /* torn writes cut at open */
	b->o.log.report_ctx = b->o.report_ctx;
	int rc = mq_store_open(o->data_dir, &b->o.log, &b->store, err);
	if (rc)
		goto fail;
	char state[MQ_DATA_DIR_MAX + 16], ids[MQ_DATA_DIR_MAX + 32];
	if ((size_t)snprintf(state, sizeof(state), "%s/state", o->data_dir) >= sizeof(state)) {
		rc = mq_err_set(err, MQ_EINVAL, "data directory '%s': path too long", o->data_dir);
		goto fail;
	}
	if ((rc = mq_groups_open(state, &b->o.log, b->store, state_lost, b, &b->groups, err)))
		goto fail;
	if ((rc = mq_sbuckets_open(state, buckets_lost, b, &b->buckets, err)) ||
	    (rc = mq_expiry_new(&b->expiry, err)) ||
	    (rc = mq_delay_open(state, &b->o.log, b->store, delay_said, b, &b->delay, err)))
		goto fail;
	mq_txn_opts_t to = {.timeout_ms = o->txn_timeout_ms, .check_interval_ms = o->txn_check_interval_ms,
			    .max_checks = o->txn_max_checks, .log = b->o.log, .report = o->report,
			    .report_ctx = o->report_ctx};
	if ((rc = mq_txns_open(state, b->store, &to, &b->txns, err)))
		goto fail;
	snprintf(ids, sizeof(ids), "%s/dedup", state); /* fits: state is shorter by more than 6 */
	snprintf(b->ids_path, sizeof(b->ids_path), "%s", ids);
	struct stat jst;
	int64_t journal_ns = stat(ids, &jst) == 0 ? (int64_t)jst.st_mtim.tv_sec * 1000000000 + jst.st_mtim.tv_nsec
						  : INT64_MIN;
	mq_seen_opts_t so = {.max_count = b->o.dedup_max_ids, .max_age_ms = b->o.dedup_window_ms, .state = ids,
			     .report = dedup_lost, .report_ctx = b};
	if ((rc = mq_seen_open(&so, mq_now_ms(), &b->ids, err)) || (rc = ids_recover(b, journal_ns, err)))
		goto fail;
	if (!(b->zctx = zmq_ctx_new())) {
		rc = mq_err_set(err, MQ_EIO, "cannot start ZeroMQ: %s", zmq_strerror(errno));
		goto fail;
	}
	if (o->curve_secret) {
		mq_zap_opts_t zo = {.allow_dir = o->curve_allow, .admin_dir = o->curve_allow_admin, .report = o->report,
				    .report_ctx = o->report_ctx};
		if ((rc = mq_zap_open(b->zctx, &zo, &b->zap, err)))
			goto fail;
	}
	for (int i = 0; i < o->nlisten; i++) {
		if (!o->curve_secret && mq_zsrv_supports(o->listen[i])) {
			mq_zsrv_opts_t zo = {.max_frame = (size_t)MQ_BATCH_MAX_BYTES + 65536,
					     .max_queue = ZSRV_MAX_QUEUE, .fault = listener_fault, .ctx = b};
			if ((rc = mq_zsrv_listen(o->listen[i], &zo, &b->srv[i], err)))
				goto fail;
			b->nsock++;
			snprintf(b->endpoint[i], sizeof(b->endpoint[i]), "%s", mq_zsrv_endpoint(b->srv[i]));
			continue;
		}
		void *s = zmq_socket(b->zctx, ZMQ_ROUTER);
		const mq_sockopt_t opts[] = {
			{ZMQ_ROUTER_MANDATORY, "ZMQ_ROUTER_MANDATORY", 1, 0},
			{ZMQ_LINGER, "ZMQ_LINGER", 1000, 0},
			{ZMQ_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL", 1000, 0},
			{ZMQ_HEARTBEAT_TTL, "ZMQ_HEARTBEAT_TTL", 10000, 0},
			{ZMQ_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TIMEOUT", 10000, 0},
			{ZMQ_MAXMSGSIZE, "ZMQ_MAXMSGSIZE", (int64_t)MQ_BATCH_MAX_BYTES + 65536, 1},
			{ZMQ_IPV6, "ZMQ_IPV6", mq_endpoint_is_ipv6(o->listen[i]), 0},
		};
		if (!s) {
			rc = mq_err_set(err, MQ_EIO, "cannot create a ZeroMQ socket: %s", zmq_strerror(errno));
			goto fail;
		}
		b->sock[b->nsock++] = s;
		if ((rc = mq_wire_sockopts(s, opts, sizeof(opts) / sizeof(opts[0]), err)))
			goto fail;
		if (o->curve_secret && (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &(int){1}, sizeof(int)) ||
					zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, o->curve_secret, MQ_CURVE_KEY_TEXT) ||
					zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, "mq", 2))) {
			rc = mq_err_set(err, MQ_EINVAL, "cannot use the CurveZMQ secret key on %s: %s%s", o->listen[i],
					zmq_strerror(zmq_errno()),
					zmq_errno() == EINVAL ? " (is the libzmq built with CURVE, and the key a "
								"secret key from mq-admin keygen?)" : "");
			goto fail;
		}
		if (zmq_bind(s, o->listen[i]) < 0) {
			int e = errno;
			rc = mq_err_set(err, e == EADDRINUSE ? MQ_EBUSY : MQ_EINVAL, "cannot listen on %s: %s%s",
					o->listen[i], zmq_strerror(e),
					e == EADDRINUSE ? " (another mq-serve? choose another endpoint with -l)" : "");
			goto fail;
		}
		size_t len = sizeof(b->endpoint[i]);
		if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, b->endpoint[i], &len) < 0)
			snprintf(b->endpoint[i], sizeof(b->endpoint[i]), "%s", o->listen[i]);
	}
	b->next_retention = mq_mono_ms() + 1000;
	b->started = b->next_sample = mq_mono_ms();
	b->epoch_base = (uint64_t)mq_now_ms() << 20; /* another broker, another epoch */
	*out = b;
	return 0;
fail:
	mq_broker_close(b);
	return rc;
}

void mq_broker_wake_on(mq_broker_t *b, int fd)
{
	b->wake_fd = fd;
}

void mq_broker_reload_on(mq_broker_t *b, volatile sig_atomic_t *flag)
{
	b->reload = flag;
}

/* SIGHUP: the allow-lists again. */
static void reload_keys(mq_broker_t *b)
{
	*b->reload = 0;
	if (!b->zap) {
		say(b, "SIGHUP: nothing to read again (no --curve-allow)");
		return;
	}
	mq_err_t e;
	if (mq_zap_reload(b->zap, &e))
		say(b, "SIGHUP: %s; the keys read before stay in force", e.msg);
	else if (mq_zap_keys(b->zap) >= 0)
		say(b, "SIGHUP: %ld client keys allowed", mq_zap_keys(b->zap));
}

const char *mq_broker_endpoint(const mq_broker_t *b, int i)
{
	return i < b->nsock ? b->endpoint[i] : NULL;
}

/* Delayed batches now due go to their partitions (delay.h), a bounded
 * number per turn so requests keep being served. */
static void move_due(mq_broker_t *b)
{
	uint32_t moved = 0;
	mq_err_t e;
	if (mq_delay_next_due(b->delay) > mq_now_ms())
		return;
	if (mq_delay_move(b->delay, mq_now_ms(), DELAY_MOVES_PER_TURN, &moved, &e))
		note_fault(b, &e);
	if (moved)
		b->appended = 1;
}

/* How long the loop may sleep: until a request comes or the first timed
 * duty is due, whichever is first.  Every duty of a turn that runs on the
 * clock is here: parked fetches and checks running out, group sessions
 * expiring, lag samples, retention, delayed batches coming due,
 * transactions to check back.  (Parked fetches are answered in the turn
 * that appends for them, not on a timer.)  -1: no duty at all. */
static int64_t next_duty(mq_broker_t *b, int64_t now)
{
	int64_t timeout = INT64_MAX;
	if (b->next_sample - now < timeout)
		timeout = b->next_sample - now;
	if (b->next_retention - now < timeout)
		timeout = b->next_retention - now;
	for (int i = 0; i < b->nparked; i++)
		if (b->parked[i].deadline - now < timeout)
			timeout = b->parked[i].deadline - now;
	int64_t exp = mq_groups_next_expiry(b->groups);
	if (exp != INT64_MAX && exp - now < timeout)
		timeout = exp - now;
	int64_t due = mq_delay_next_due(b->delay);
	if (due != INT64_MAX && due - mq_now_ms() < timeout)
		timeout = due - mq_now_ms();
	txn_wait(b, now, &timeout);
	return timeout == INT64_MAX ? -1 : timeout < 0 ? 0 : timeout;
}

/* The turn's waits into b->items: the sockets, the signal pipe, the
 * key checks, then each own listener's descriptors.  The number, or <
 * 0 out of memory. */
static int poll_items(mq_broker_t *b, int64_t now, int *wake, int *zap, int *at, int *cnt)
{
	int need = b->nsock + 2;
	for (int i = 0; i < b->nsock; i++)
		if (b->srv[i])
			need += mq_zsrv_npoll(b->srv[i]);
	if (need > b->capitems) {
		int cap = need * 2;
		zmq_pollitem_t *it = realloc(b->items, (size_t)cap * sizeof *it);
		if (it)
			b->items = it;
		struct pollfd *pf = it ? realloc(b->pfd, (size_t)cap * sizeof *pf) : NULL;
		if (!pf)
			return -1;
		b->pfd = pf;
		b->capitems = cap;
	}
	int n = 0;
	*wake = *zap = -1;
	for (int i = 0; i < b->nsock; i++)
		if (b->sock[i])
			b->items[n++] = (zmq_pollitem_t){b->sock[i], 0, ZMQ_POLLIN, 0};
	if (b->wake_fd >= 0) {
		*wake = n;
		b->items[n++] = (zmq_pollitem_t){NULL, b->wake_fd, ZMQ_POLLIN, 0};
	}
	if (b->zap) {
		*zap = n;
		b->items[n++] = (zmq_pollitem_t){mq_zap_socket(b->zap), 0, ZMQ_POLLIN, 0};
	}
	for (int i = 0; i < b->nsock; i++) {
		if (!b->srv[i])
			continue;
		int k = mq_zsrv_poll(b->srv[i], b->pfd + n, b->capitems - n, now);
		at[i] = n;
		cnt[i] = k;
		for (int j = n; j < n + k; j++)
			b->items[j] = (zmq_pollitem_t){NULL, b->pfd[j].fd,
						       (short)((b->pfd[j].events & POLLIN ? ZMQ_POLLIN : 0) |
							       (b->pfd[j].events & POLLOUT ? ZMQ_POLLOUT : 0)), 0};
		n += k;
	}
	return n;
}

/* After the poll: each own listener handles its descriptors' events. */
static void zsrv_events(mq_broker_t *b, const int *at, const int *cnt)
{
	for (int i = 0; i < b->nsock; i++) {
		if (!b->srv[i])
			continue;
		for (int j = at[i]; j < at[i] + cnt[i]; j++) {
			short r = b->items[j].revents;
			b->pfd[j].revents = (short)((r & ZMQ_POLLIN ? POLLIN : 0) | (r & ZMQ_POLLOUT ? POLLOUT : 0) |
						    (r & ZMQ_POLLERR ? POLLERR : 0));
		}
		mq_zsrv_handle(b->srv[i], b->pfd + at[i], cnt[i]);
	}
}

/* Wait on the turn's items.  zmq_poll looks once without waiting before
 * it waits, a system call more for every turn; with no libzmq socket
 * among the items (own listeners only, no key checks) poll(2) waits
 * alone, the events given back as zmq_poll gives them. */
static int turn_poll(mq_broker_t *b, int n, long timeout)
{
	for (int i = 0; i < n; i++)
		if (b->items[i].socket)
			return zmq_poll(b->items, n, timeout);
	for (int i = 0; i < n; i++) {
		short ev = b->items[i].events;
		b->pfd[i] = (struct pollfd){b->items[i].fd,
					    (short)((ev & ZMQ_POLLIN ? POLLIN : 0) | (ev & ZMQ_POLLOUT ? POLLOUT : 0)), 0};
	}
	int r = poll(b->pfd, (nfds_t)n, timeout < 0 ? -1 : timeout > INT32_MAX ? INT32_MAX : (int)timeout);
	for (int i = 0; i < n; i++) {
		short re = r > 0 ? b->pfd[i].revents : 0;
		b->items[i].revents = (short)((re & POLLIN ? ZMQ_POLLIN : 0) | (re & POLLOUT ? ZMQ_POLLOUT : 0) |
					      (re & ~(POLLIN | POLLOUT) ? ZMQ_POLLERR : 0));
	}
	return r;
}

int mq_broker_run(mq_broker_t *b, volatile sig_atomic_t *stop, mq_err_t *err)
{
	while (!*stop) {
		if (b->reload && *b->reload)
			reload_keys(b);
		int64_t now = mq_mono_ms(), duty = next_duty(b, now), timeout = duty;
		/* --fsync DURATION: what a turn wrote is synced by a turn at
		 * least DURATION later (mq_log_commit), so one comes then. */
		if (b->o.log.fsync == MQ_FSYNC_INTERVAL && b->last_work) {
			int64_t sync = b->last_work + b->o.log.fsync_interval_ms - now;
			if (timeout < 0 || sync < timeout)
				timeout = sync < 0 ? 0 : sync;
		}
		int wake, zap, at[MQ_LISTEN_MAX], cnt[MQ_LISTEN_MAX], ready = 0;
		int nitems = poll_items(b, now, &wake, &zap, at, cnt);
		if (nitems < 0)
			return mq_err_set(err, MQ_ENOMEM, "out of memory for the connections' waits");
		for (int i = 0; i < b->nsock; i++) {
			if (!b->srv[i])
				continue;
			ready |= mq_zsrv_ready(b->srv[i]);
			int64_t t = ready ? now : mq_zsrv_next_deadline(b->srv[i]);
			if (t != INT64_MAX && (timeout < 0 || t - now < timeout))
				timeout = t < now ? 0 : t - now;
		}
		if (timeout > INT32_MAX)
			timeout = INT32_MAX;
		int n = turn_poll(b, nitems, (long)timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return mq_err_set(err, MQ_EIO, "poll failed: %s", zmq_strerror(errno));
		}
		if (wake >= 0 && b->items[wake].revents) {
			mq_drain_fd(b->wake_fd); /* a signal: the loop looks at *stop and *reload */
			n--;
		}
		if (zap >= 0 && b->items[zap].revents) {
			mq_zap_serve(b->zap, mq_mono_ms()); /* a handshake waits for it: before anything else */
			n--;
		}
		zsrv_events(b, at, cnt);
		/* A turn for requests or for a duty may write; the sync's own turn
		 * syncs what the last one wrote and so needs no other after it. */
		int64_t woke = mq_mono_ms();
		if (n > 0 || ready || (duty >= 0 && woke >= now + duty))
			b->last_work = woke;
		else if (b->last_work && woke >= b->last_work + b->o.log.fsync_interval_ms)
			b->last_work = 0;
		b->turn++;
		size_t bytes = 0;
		int msgs = 0;
		for (int progress = 1; progress && msgs < TURN_MAX_MSGS && bytes < TURN_MAX_BYTES;) {
			progress = 0;
			for (int i = 0; i < b->nsock; i++) {
				if (recv_one(b, i, &bytes)) {
					progress = 1;
					msgs++;
				}
			}
		}
		move_due(b);
		now = mq_mono_ms();
		txn_turn(b, 0);
		if (mq_groups_tick(b->groups, now) || b->appended || b->nparked)
			serve_parked(b, 0);
		flush_turn(b);
		if (now >= b->next_sample) {
			mq_groups_sample(b->groups, mq_now_ms(), sample_end, b);
			b->next_sample = now + b->o.lag_interval_ms;
			if (++b->samples % HISTORY_SAVE_EVERY == 0)
				history_save(b);
		}
		if (now >= b->next_retention) {
			mq_err_t e;
			mq_store_retain(b->store, mq_now_ms(), &e);
			b->next_retention = now + b->o.retention_check_ms;
		}
	}
	txn_turn(b, 1);
	serve_parked(b, 1);
	flush_turn(b);
	return 0;
}

void mq_broker_close(mq_broker_t *b)
{
	if (!b)
		return;
	for (int i = 0; i < b->nparked; i++)
		parked_free(&b->parked[i]);
	free(b->parked);
	for (int i = 0; i < b->nout; i++) {
		mq_buf_free(&b->out[i].hdr);
		for (int k = 0; k < b->out[i].npl; k++)
			mq_buf_free(&b->out[i].pl[k]);
		free(b->out[i].pl);
	}
	free(b->out);
	for (size_t i = 0; i < b->pst_cap; i++) {
		free(b->pst[i].key);
		free(b->pst[i].prod);
	}
	free(b->pst);
	for (int i = 0; i < b->nsock; i++) {
		if (b->sock[i])
			zmq_close(b->sock[i]);
		mq_zsrv_close(b->srv[i]);
	}
	free(b->items);
	free(b->pfd);
	mq_zap_close(b->zap);
	if (b->zctx)
		zmq_ctx_term(b->zctx);
	if (b->groups && b->samples)
		history_save(b);
	mq_groups_close(b->groups);
	mq_seen_close(b->ids);
	mq_sbuckets_close(b->buckets);
	mq_expiry_free(b->expiry);
	mq_delay_close(b->delay);
	mq_txns_close(b->txns);
	free(b->chk);
	mq_buf_free(&b->scratch);
	free(b->batch_ids);
	mq_store_close(b->store);
	/* Every write to the logs is done and every id journaled: a journal
	 * newer than every segment tells the next start to scan nothing. */
	if (b->ids_clean)
		utimensat(AT_FDCWD, b->ids_path, NULL, 0);
	free(b);
}
