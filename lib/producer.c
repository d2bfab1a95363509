/*
 * producer.c -- the pipelined producer of client.h: a window of batches in flight,
 * resent until acknowledged.
 */
#include "client_int.h"

/* ---- pipelined produce ---- */

/* Over Kafka (kafka.h) there is no window of batches: each record is
 * handed to librdkafka, which batches, retries (as the idempotent
 * producer) and reports its delivery here; inflight counts records. */

enum { SLOT_FREE = 0, SLOT_UNSENT, SLOT_SENT };

typedef struct slot {
	mq_buf_t buf;
	uint32_t id;
	uint32_t partition;
	uint32_t count;
	int state;
	int64_t sent; /* mono ms of the last send */
} slot_t;

struct mq_producer {
	mq_client_t *c;
	char topic[MQ_NAME_MAX + 1];
	uint32_t partitions;
	uint64_t pid;
	uint32_t *seq;
	uint32_t *pending; /* per partition: batches not yet acknowledged or refused */
	slot_t *slots;
	uint32_t window, head, used; /* ring: slots[head .. head+used) */
	uint32_t inflight;
	int64_t last_progress;
	int resend_now; /* a batch came out of order: resend at once */
	uint32_t downs;  /* the client's lost connections when last pumped */
	mq_buf_t hdr;
	mq_producer_stats_t st;
	char error[512];
	int error_new;
	mq_times_t times; /* --at/--delay/--ttl of every batch */
	int pinned;       /* Kafka: the batch's partition is the record's (else the cluster's partitioner) */
};

int mq_producer_new(mq_client_t *c, const char *topic, uint32_t partitions, uint32_t window,
		    mq_producer_t **out, mq_err_t *err)
{
	if (window < 1 || window > 1024 || partitions == 0 || strlen(topic) > MQ_NAME_MAX)
		return mq_err_set(err, MQ_EINVAL, "producer: bad window, partition count or topic");
	mq_producer_t *p = calloc(1, sizeof *p);
	if (!p || !(p->seq = calloc(partitions, sizeof *p->seq)) || !(p->pending = calloc(partitions, sizeof *p->pending)) ||
	    !(p->slots = calloc(window, sizeof *p->slots))) {
		mq_producer_free(p);
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	p->c = c;
	p->downs = c->ddowns;
	strcpy(p->topic, topic);
	p->partitions = partitions;
	p->window = window;
	/* A random id per run: a restarted mq-pub is a new producer, so
	 * its sequences cannot collide with the ones the broker saw. */
	while (p->pid == 0) {
		if (getrandom(&p->pid, sizeof p->pid, 0) != (ssize_t)sizeof p->pid) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			p->pid = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 48);
		}
	}
	*out = p;
	return 0;
}

uint64_t mq_producer_id(const mq_producer_t *p)
{
	return p->pid;
}

void mq_producer_free(mq_producer_t *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; p->slots && i < p->window; i++)
		mq_buf_free(&p->slots[i].buf);
	free(p->slots);
	free(p->seq);
	free(p->pending);
	mq_buf_free(&p->hdr);
	free(p);
}

void mq_producer_begin(mq_producer_t *p, uint32_t partition, mq_batch_builder_t *b, mq_buf_t *buf)
{
	mq_batch_begin(b, buf);
	b->hdr.producer_id = p->pid;
	b->hdr.base_seq = p->seq[partition];
	if (p->times.at_ms || p->times.delay_ms || p->times.ttl_ms)
		mq_times_apply(&p->times, mq_now_ms(), &b->hdr.deliver_at, &b->hdr.expire_at);
}

void mq_producer_pin(mq_producer_t *p, int pinned)
{
	p->pinned = pinned;
}

void mq_cl_kafka_delivered(void *opaque, int ok, const char *why)
{
	mq_producer_t *p = opaque;
	p->inflight--; /* progress: kafka_poll's caller reads the clock once for all the reports */
	if (ok) {
		p->st.acked++;
		return;
	}
	p->st.failed++;
	if (!p->error_new) {
		snprintf(p->error, sizeof p->error, "%.200s did not acknowledge it: %.200s", p->c->endpoint, why);
		p->error_new = 1;
	}
}

/* Serve the delivery reports that wait; any is progress. */
static void kafka_poll(mq_producer_t *p)
{
	uint64_t done = p->st.acked + p->st.failed;
	mq_kafka_poll(p->c->kafka, 0);
	if (p->st.acked + p->st.failed != done)
		p->last_progress = mq_mono_ms();
}

/* Wait up to wait_ms (< 0: no limit) for delivery reports, the watched
 * descriptor or the wake-up descriptor, then serve the reports. */
static int kafka_wait(mq_producer_t *p, int wait_ms, int watch_fd, short watch_events, mq_err_t *err)
{
	mq_client_t *c = p->c;
	struct pollfd f[3] = {{mq_kafka_fd(c->kafka), POLLIN, 0}};
	int n = 1;
	if (watch_fd >= 0) /* zmq_pollitem_t's events: POLLIN and POLLOUT as ZMQ_ */
		f[n++] = (struct pollfd){watch_fd, (short)((watch_events & ZMQ_POLLIN ? POLLIN : 0) |
							  (watch_events & ZMQ_POLLOUT ? POLLOUT : 0)), 0};
	if (c->wake_fd >= 0)
		f[n++] = (struct pollfd){c->wake_fd, POLLIN, 0};
	if (!p->inflight && (watch_fd < 0 || wait_ms == 0)) {
		kafka_poll(p);
		return 0;
	}
	if (poll(f, (nfds_t)n, wait_ms < 0 ? -1 : wait_ms) < 0 && errno != EINTR)
		return mq_err_sys(err, "waiting for the Kafka cluster");
	c->watch_hit = watch_fd >= 0 && f[1].revents;
	if (c->wake_fd >= 0 && f[n - 1].revents)
		mq_drain_fd(c->wake_fd);
	kafka_poll(p);
	return 0;
}

static int kafka_send(mq_producer_t *p, mq_batch_builder_t *b, uint32_t partition, mq_err_t *err)
{
	uint32_t count = b->count, queued = 0;
	if (mq_batch_finish(b) == 0)
		return 0;
	/* Keyed records go where Kafka's partitioner puts them; the others to
	 * the partition this batch was made for (a partition a batch, as
	 * Kafka's sticky partitioner). */
	int rc = mq_kafka_produce(p->c->kafka, p->topic, p->pinned ? (int32_t)partition : -1, (int32_t)partition,
				  b->buf->p, b->buf->len, p, &queued, err);
	b->buf->len = 0;
	p->st.sent += count;
	p->st.failed += count - queued;
	if (p->inflight == 0)
		p->last_progress = mq_mono_ms();
	p->inflight += queued;
	if (rc)
		return rc;
	kafka_poll(p);
	return 0;
}

void mq_producer_set_times(mq_producer_t *p, const mq_times_t *t)
{
	p->times = *t;
}

void mq_times_apply(const mq_times_t *t, int64_t now_ms, int64_t *deliver_at, int64_t *expire_at)
{
	int64_t due = t->at_ms ? t->at_ms : t->delay_ms ? now_ms + t->delay_ms : 0;
	*deliver_at = due > now_ms ? due : 0; /* due already: delivered at once */
	*expire_at = t->ttl_ms ? (due > now_ms ? due : now_ms) + t->ttl_ms : 0;
}

static slot_t *ring(mq_producer_t *p, uint32_t i)
{
	return &p->slots[(p->head + i) % p->window];
}

/* Whether s is the partition's oldest batch not yet answered: the broker
 * may then take it even when its sequence is ahead of what it expects. */
static int slot_oldest(mq_producer_t *p, const slot_t *s)
{
	for (uint32_t i = 0; i < p->used && ring(p, i) != s; i++)
		if (ring(p, i)->state != SLOT_FREE && ring(p, i)->partition == s->partition)
			return 0;
	return 1;
}

/* Each send gets a new id: an answer to an earlier send of the same
 * batch (an out-of-order refusal above all) is then told apart and
 * dropped, and the answer to the last send decides. */
static int slot_send(mq_producer_t *p, slot_t *s, mq_err_t *err)
{
	p->hdr.len = 0;
	msgpack_packer pk;
	mq_wire_packer(&pk, &p->hdr);
	uint32_t id = mq_cl_new_id(p->c);
	mq_wire_begin(&pk, MQ_REQ_PRODUCE, id, 3);
	mq_wire_pack_str(&pk, p->topic);
	msgpack_pack_uint32(&pk, s->partition);
	mq_wire_pack_bool(&pk, slot_oldest(p, s));
	int rc = mq_cl_send_frames(p->c, p->c->data, p->hdr.p, p->hdr.len, s->buf.p, s->buf.len, err);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		s->id = id;
		s->state = SLOT_SENT;
		s->sent = mq_mono_ms();
	}
	return rc;
}

static void slot_done(mq_producer_t *p, slot_t *s)
{
	s->state = SLOT_FREE;
	s->buf.len = 0;
	p->inflight--;
	p->pending[s->partition]--;
	while (p->used && ring(p, 0)->state == SLOT_FREE) {
		p->head = (p->head + 1) % p->window;
		p->used--;
	}
}

static void on_reply(mq_producer_t *p, const mq_wire_msg_t *m)
{
	slot_t *s = NULL;
	for (uint32_t i = 0; i < p->used && !s; i++)
		if (ring(p, i)->state == SLOT_SENT && ring(p, i)->id == m->id)
			s = ring(p, i);
	if (!s)
		return; /* the answer to an earlier send of a batch sent again */
	uint64_t code = 0;
	if (m->kind != MQ_REP_OK && !mq_wire_u64(mq_wire_arg(m, 0), &code, "error code", NULL) && code == MQ_ESEQ) {
		/* An earlier batch of the partition did not arrive (lost with a
		 * connection): send them all again in sequence order.  Not
		 * progress: a broker that keeps refusing ends in the timeout. */
		for (uint32_t i = 0; i < p->used; i++) {
			slot_t *o = ring(p, i);
			if (o->state == SLOT_SENT && o->partition == s->partition) {
				o->state = SLOT_UNSENT;
				p->st.resent++;
			}
		}
		p->resend_now = 1;
		return;
	}
	p->last_progress = mq_mono_ms();
	if (m->kind == MQ_REP_OK) {
		int dup = 0;
		uint64_t dup_ids = 0;
		mq_wire_bool(mq_wire_arg(m, 2), &dup, "duplicate", NULL);
		if (mq_wire_arg(m, 3))
			mq_wire_u64(mq_wire_arg(m, 3), &dup_ids, "duplicate ids", NULL);
		p->st.acked += s->count;
		if (dup)
			p->st.duplicates += s->count;
		else
			p->st.duplicates += dup_ids < s->count ? dup_ids : s->count;
	} else {
		mq_err_t e;
		mq_cl_reply_error(p->c, m, &e);
		p->st.failed += s->count;
		if (!p->error_new) {
			snprintf(p->error, sizeof p->error, "partition %u: %.400s", s->partition, e.msg);
			p->error_new = 1;
		}
	}
	slot_done(p, s);
}

/* Send what is unsent; resend everything in flight when the oldest
 * batch waited resend_ms (a lost connection loses all that followed). */
static int pump(mq_producer_t *p, mq_err_t *err)
{
	int64_t now = mq_mono_ms();
	int resend = p->downs != p->c->ddowns; /* what was in flight went with the connection */
	p->downs = p->c->ddowns;
	for (uint32_t i = 0; i < p->used; i++) {
		slot_t *s = ring(p, i);
		if (s->state == SLOT_SENT && now - s->sent >= p->c->resend_ms)
			resend = 1;
	}
	for (uint32_t i = 0; i < p->used; i++) {
		slot_t *s = ring(p, i);
		if (s->state == SLOT_UNSENT || (resend && s->state == SLOT_SENT)) {
			int was_sent = s->state == SLOT_SENT;
			int rc = slot_send(p, s, err);
			if (rc < 0)
				return rc;
			if (rc == 0) {
				s->state = SLOT_UNSENT;
				break; /* keep the order: nothing after it either */
			}
			if (was_sent)
				p->st.resent++;
		}
	}
	if (p->inflight && now - p->last_progress >= p->c->timeout_ms)
		return mq_cl_timed_out(p->c, "PRODUCE", err);
	return 0;
}

/* What p waits for: a reply, the socket taking what waits unsent (the
 * events), and by when at the latest: the oldest batch's resend time or
 * the timeout (INT64_MAX: nothing in flight). */
static short producer_events(mq_producer_t *p, int64_t *next)
{
	int unsent = 0;
	*next = p->inflight ? mq_cl_after(p->last_progress, p->c->timeout_ms) : INT64_MAX;
	for (uint32_t i = 0; i < p->used; i++) {
		const slot_t *s = ring(p, i);
		unsent |= s->state == SLOT_UNSENT;
		if (s->state == SLOT_SENT && s->sent + p->c->resend_ms < *next)
			*next = s->sent + p->c->resend_ms;
	}
	return p->inflight ? ZMQ_POLLIN | (unsent ? ZMQ_POLLOUT : 0) : 0;
}

/* Take every reply that arrived; send again what they asked for. */
static int producer_replies(mq_producer_t *p, mq_err_t *err)
{
	for (int n = 0; n < 4096; n++) {
		reply_t r;
		if (!mq_cl_recv_reply(p->c, p->c->data, &r, 1))
			break;
		on_reply(p, &r.msg);
		mq_cl_reply_free(&r);
	}
	if (p->resend_now) {
		p->resend_now = 0;
		return pump(p, err);
	}
	return 0;
}

int mq_producer_poll(mq_producer_t *p, int wait_ms, mq_err_t *err)
{
	p->c->watch_hit = 0;
	if (p->c->kafka)
		return kafka_wait(p, wait_ms, p->c->watch_fd, p->c->watch_events, err);
	int rc = pump(p, err);
	if (rc)
		return rc;
	int watching = p->c->watch_fd >= 0;
	if (!p->inflight && (!watching || wait_ms == 0))
		return 0;
	/* Wake for a reply, for the socket taking what waits unsent, for the
	 * oldest batch's resend time, the timeout, or the watched descriptor. */
	int64_t next;
	short events = producer_events(p, &next);
	int64_t now = mq_mono_ms(), w = next == INT64_MAX ? -1 : next > now ? next - now : 0;
	if (wait_ms >= 0 && (w < 0 || wait_ms < w))
		w = wait_ms;
	rc = mq_cl_wait_sock(p->c, p->c->data, events, 1, w, err);
	if (rc <= 0)
		return rc == -MQ_EAGAIN ? 0 : rc;
	if (!(rc & ZMQ_POLLIN))
		return pump(p, err); /* the connection is back: send what waited */
	return producer_replies(p, err);
}

int mq_producers_poll(mq_producer_t *const *ps, uint32_t n, int wait_ms, int watch_fd, short watch_events,
		      mq_err_t *err)
{
	if (n > MQ_PRODUCERS_POLL_MAX)
		return mq_err_set(err, MQ_EINVAL, "%u producers to wait for: at most %d", n, MQ_PRODUCERS_POLL_MAX);
	if (n)
		ps[0]->c->watch_hit = 0;
	if (n == 1 && ps[0]->c->kafka)
		return kafka_wait(ps[0], wait_ms, watch_fd, watch_events, err);
	for (uint32_t i = 0; i < n; i++)
		if (ps[i]->c->kafka)
			return mq_err_set(err, MQ_EINVAL, "publishing to several topics at once is not available over "
					  "Kafka in this version: publish to each topic with its own mq-pub");
	if (n == 1 && ps[0]->c->lite) { /* its own wait, watching fd for the call */
		mq_client_t *c = ps[0]->c;
		int fd = c->watch_fd;
		short ev = c->watch_events;
		mq_client_watch(c, watch_fd, watch_events);
		int rc = mq_producer_poll(ps[0], wait_ms, err);
		mq_client_watch(c, fd, ev);
		return rc;
	}
	for (uint32_t i = 0; i < n; i++)
		if (ps[i]->c->lite)
			return mq_cl_lite_refuses("waiting for several producers", err);
	zmq_pollitem_t it[3 * MQ_PRODUCERS_POLL_MAX + 2];
	int64_t next = INT64_MAX, now = mq_mono_ms();
	int busy = 0, rc;
	for (uint32_t i = 0; i < n; i++) {
		int64_t t;
		if ((rc = mq_cl_conn_events(ps[i]->c, err)) || (rc = pump(ps[i], err)))
			return rc;
		short ev = producer_events(ps[i], &t);
		if (ps[i]->c->data_dead)
			ev = (short)(ev & ~ZMQ_POLLOUT); /* sends wait for the new connection */
		busy |= ps[i]->inflight != 0;
		if (t < next)
			next = t;
		it[3 * i] = (zmq_pollitem_t){.socket = ps[i]->c->data, .events = ev};
		it[3 * i + 1] = (zmq_pollitem_t){.socket = ps[i]->c->mon, .events = ZMQ_POLLIN};
		it[3 * i + 2] = (zmq_pollitem_t){.socket = ps[i]->c->dmon, .events = ZMQ_POLLIN};
	}
	int k = 3 * (int)n, si = -1;
	if (watch_fd >= 0)
		it[k++] = (zmq_pollitem_t){.fd = watch_fd, .events = watch_events};
	else if (!busy || wait_ms == 0)
		return 0;
	if (n > 0 && ps[0]->c->wake_fd >= 0) {
		si = k;
		it[k++] = (zmq_pollitem_t){.fd = ps[0]->c->wake_fd, .events = ZMQ_POLLIN};
	}
	int64_t w = next == INT64_MAX ? -1 : next > now ? next - now : 0;
	if (wait_ms >= 0 && (w < 0 || wait_ms < w))
		w = wait_ms;
	if (w > INT32_MAX)
		w = INT32_MAX;
	if (zmq_poll(it, k, (long)w) < 0) {
		if (zmq_errno() == EINTR)
			return 0;
		return mq_err_set(err, MQ_EIO, "waiting for the broker: %s", zmq_strerror(zmq_errno()));
	}
	if (si >= 0 && it[si].revents) {
		mq_drain_fd(ps[0]->c->wake_fd);
		return 0; /* a signal: the caller looks at its flag */
	}
	for (uint32_t i = 0; i < n; i++) {
		if ((rc = mq_cl_conn_events(ps[i]->c, err)))
			return rc;
		rc = it[3 * i].revents & ZMQ_POLLIN ? producer_replies(ps[i], err) : pump(ps[i], err);
		if (rc)
			return rc;
	}
	if (n)
		ps[0]->c->watch_hit = watch_fd >= 0 && it[3 * n].revents;
	return 0;
}

int mq_producer_send(mq_producer_t *p, mq_batch_builder_t *b, uint32_t partition, mq_err_t *err)
{
	if (p->c->kafka)
		return kafka_send(p, b, partition, err);
	uint32_t count = b->count;
	if (mq_batch_finish(b) == 0)
		return 0;
	/* The broker recognises a retry among a producer's last
	 * MQ_PRODUCER_BATCHES batches of a partition only: never more out. */
	while (p->used == p->window || p->pending[partition] >= MQ_PRODUCER_BATCHES) {
		int rc = mq_producer_poll(p, (int)p->c->resend_ms, err);
		if (rc) {
			p->st.sent += count;
			b->buf->len = 0;
			return rc;
		}
	}
	slot_t *s = ring(p, p->used);
	mq_buf_t tmp = s->buf;
	s->buf = *b->buf;
	*b->buf = tmp;
	b->buf->len = 0;
	s->partition = partition;
	s->count = count;
	s->state = SLOT_UNSENT;
	p->used++;
	p->pending[partition]++;
	if (p->inflight++ == 0)
		p->last_progress = mq_mono_ms();
	p->seq[partition] += count;
	p->st.sent += count;
	/* Send at once unless older batches still wait to go out. */
	int older_unsent = 0;
	for (uint32_t i = 0; i + 1 < p->used; i++)
		older_unsent |= ring(p, i)->state == SLOT_UNSENT;
	if (!older_unsent) {
		int rc = slot_send(p, s, err);
		if (rc < 0)
			return rc;
	}
	return mq_producer_poll(p, 0, err);
}

int mq_producer_flush(mq_producer_t *p, mq_err_t *err)
{
	while (p->inflight && p->c->kafka) { /* librdkafka fails a record at its timeout: the wait ends */
		int rc = kafka_wait(p, -1, -1, 0, err);
		if (rc || (p->c->interrupt && *p->c->interrupt))
			return rc ? rc : -MQ_EAGAIN;
	}
	while (p->inflight) {
		int rc = mq_producer_poll(p, (int)p->c->resend_ms, err);
		if (rc)
			return rc;
	}
	return 0;
}

uint32_t mq_producer_inflight(const mq_producer_t *p)
{
	return p->inflight;
}

void *mq_producer_socket(mq_producer_t *p)
{
	return p->c->data;
}

void mq_producer_stats(const mq_producer_t *p, mq_producer_stats_t *s)
{
	*s = p->st;
}

const char *mq_producer_take_error(mq_producer_t *p)
{
	if (!p->error_new)
		return NULL;
	p->error_new = 0;
	return p->error;
}
