/*
 * client_admin.c -- the client's administration calls and half-message transactions (client.h).
 */
#include "client_int.h"

/* ---- transactions ---- */

int mq_cl_call_empty(mq_client_t *c, req_t *q, mq_err_t *err);

int mq_client_txn_begin(mq_client_t *c, uint64_t txid, const char *topic, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_TXN_BEGIN, 2);
	msgpack_pack_uint64(pk, txid);
	mq_wire_pack_str(pk, topic);
	return mq_cl_call_empty(c, &q, err);
}

/* A transaction call whose reply is one unsigned number. */
static int txn_call(mq_client_t *c, req_t *q, const void *pl, size_t pl_len, uint64_t *v, mq_err_t *err)
{
	reply_t r;
	r.live = 0;
	int rc = q->b.p ? mq_cl_call_pl(c, &q->b, pl, pl_len, q->id, mq_wire_kind_name(q->kind), &r, err)
			: mq_err_set(err, MQ_ENOMEM, "out of memory");
	mq_buf_free(&q->b);
	if (rc == 0 && mq_wire_u64(mq_wire_arg(&r.msg, 0), v, "result", err))
		rc = mq_cl_bad_reply(c, mq_wire_kind_name(q->kind), err);
	mq_cl_reply_free(&r);
	return rc;
}

int mq_client_txn_add(mq_client_t *c, uint64_t txid, uint32_t index, uint32_t partition, const void *batch,
		      size_t len, int *dup, mq_err_t *err)
{
	req_t q;
	uint64_t v = 0;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_TXN_ADD, 3);
	msgpack_pack_uint64(pk, txid);
	msgpack_pack_uint32(pk, index);
	msgpack_pack_uint32(pk, partition);
	int rc = txn_call(c, &q, batch, len, &v, err);
	*dup = v != 0;
	return rc;
}

int mq_client_txn_end(mq_client_t *c, uint64_t txid, uint32_t nbatches, uint64_t *messages, mq_err_t *err)
{
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_TXN_END, 2);
	msgpack_pack_uint64(pk, txid);
	msgpack_pack_uint32(pk, nbatches);
	return txn_call(c, &q, NULL, 0, messages, err);
}

int mq_client_txn_decide(mq_client_t *c, uint64_t txid, const char *topic, int verdict, int from_checker,
			 int *was, mq_err_t *err)
{
	req_t q;
	uint32_t kind = from_checker ? MQ_REQ_TXN_VERDICT
			: verdict == MQ_VERDICT_COMMIT ? MQ_REQ_TXN_COMMIT : MQ_REQ_TXN_ROLLBACK;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, kind, from_checker ? 3 : 2);
	msgpack_pack_uint64(pk, txid);
	if (topic && *topic)
		mq_wire_pack_str(pk, topic);
	else
		msgpack_pack_nil(pk);
	if (from_checker)
		msgpack_pack_int(pk, verdict);
	uint64_t v = 0;
	int rc = txn_call(c, &q, NULL, 0, &v, err);
	if (was)
		*was = (int)v;
	return rc;
}

int mq_client_txn_check(mq_client_t *c, const char *topic, uint32_t wait_ms, uint64_t *txid, mq_buf_t *msgs,
			mq_err_t *err)
{
	if (c->lite)
		return mq_cl_lite_refuses("checking transactions", err);
	mq_buf_t req = {0};
	msgpack_packer pk;
	mq_wire_packer(&pk, &req);
	uint32_t id = mq_cl_new_id(c);
	mq_wire_begin(&pk, MQ_REQ_TXN_CHECK, id, 2);
	mq_wire_pack_str(&pk, topic);
	msgpack_pack_uint32(&pk, wait_ms);
	if (!req.p)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	/* A long poll on the data socket: sent again only when the answer is
	 * late by resend_ms past the wait, given up after the timeout. */
	int64_t first = mq_mono_ms(), sent = -1;
	uint32_t downs = c->ddowns;
	int rc = 0;
	for (;;) {
		int64_t now = mq_mono_ms();
		if (c->ddowns != downs) { /* lost with the connection */
			downs = c->ddowns;
			sent = -1;
		}
		if (sent < 0 || now - sent >= (int64_t)wait_ms + c->resend_ms) {
			rc = mq_cl_send_frames(c, c->data, req.p, req.len, NULL, 0, err);
			if (rc < 0)
				break;
			if (rc)
				sent = now;
		}
		int64_t give_up = mq_cl_after((sent < 0 ? first : sent) + (int64_t)wait_ms, c->timeout_ms);
		if (now >= give_up) {
			rc = mq_cl_timed_out(c, "TXN_CHECK", err);
			break;
		}
		/* Unsent: until the socket can take it; sent: until it is late. */
		int64_t until = sent < 0 ? give_up : sent + (int64_t)wait_ms + c->resend_ms;
		if (until > give_up)
			until = give_up;
		if ((rc = mq_cl_wait_sock(c, c->data, ZMQ_POLLIN | (sent < 0 ? ZMQ_POLLOUT : 0), 0,
				    until == INT64_MAX ? -1 : until - now, err)) < 0) {
			if (rc == -MQ_EAGAIN && !(c->interrupt && *c->interrupt))
				continue;
			break;
		}
		if (!(rc & ZMQ_POLLIN))
			continue;
		reply_t r;
		if (!mq_cl_recv_reply(c, c->data, &r, 0))
			continue;
		if (r.msg.id != id) {
			mq_cl_reply_free(&r);
			mq_cl_drain_more(c->data);
			continue;
		}
		if (r.msg.kind != MQ_REP_OK) {
			rc = mq_cl_reply_error(c, &r.msg, err);
			mq_cl_reply_free(&r);
			mq_cl_drain_more(c->data);
			break;
		}
		const msgpack_object *o = mq_wire_arg(&r.msg, 0);
		rc = 0;
		if (o && o->type != MSGPACK_OBJECT_NIL) {
			if (mq_wire_u64(o, txid, "transaction id", err)) {
				rc = mq_cl_bad_reply(c, "TXN_CHECK", err);
			} else {
				zmq_msg_t f;
				zmq_msg_init(&f);
				int more = 0;
				size_t sz = sizeof more;
				zmq_getsockopt(c->data, ZMQ_RCVMORE, &more, &sz);
				if (!more || zmq_msg_recv(&f, c->data, 0) < 0)
					rc = mq_err_set(err, MQ_EPROTO, "broker %s sent a check without its messages",
							c->endpoint);
				else if (mq_buf_append(msgs, zmq_msg_data(&f), zmq_msg_size(&f)))
					rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
				else
					rc = 1;
				zmq_msg_close(&f);
			}
		}
		mq_cl_reply_free(&r);
		mq_cl_drain_more(c->data);
		break;
	}
	mq_buf_free(&req);
	return rc;
}

/* ---- administration ---- */

int mq_client_ping(mq_client_t *c, mq_hello_t *h, int64_t *rtt_us, mq_err_t *err)
{
	/* The first request also waits for the connection: time the second. */
	int rc = mq_client_hello(c, h, err);
	if (c->kafka) { /* a metadata request, the cluster's own round trip */
		mq_topic_list_t l;
		for (int i = 0; rc == 0 && i < 2; i++) {
			uint64_t t0 = mq_mono_ns();
			if ((rc = mq_client_topics(c, &l, err)) == 0)
				mq_topic_list_free(&l);
			*rtt_us = (int64_t)((mq_mono_ns() - t0) / 1000);
		}
		return rc;
	}
	uint64_t t0 = mq_mono_ns();
	if (rc == 0)
		rc = mq_client_hello(c, h, err);
	*rtt_us = (int64_t)((mq_mono_ns() - t0) / 1000);
	return rc;
}

/* A request whose reply has no results: send, wait, check. */
int mq_cl_call_empty(mq_client_t *c, req_t *q, mq_err_t *err)
{
	reply_t r;
	int rc = mq_cl_req_call(c, q, &r, err);
	mq_cl_reply_free(&r);
	return rc;
}

static void pack_opt_i64(msgpack_packer *pk, int64_t v)
{
	if (v < 0)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_int64(pk, v);
}

int mq_client_topic_create(mq_client_t *c, const char *topic, uint32_t partitions, int64_t retention_ms,
			   int64_t retention_bytes, mq_err_t *err)
{
	if (c->kafka)
		return mq_kafka_topic_create(c->kafka, topic, partitions, retention_ms, retention_bytes, err);
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_TOPIC_CREATE, 4);
	mq_wire_pack_str(pk, topic);
	msgpack_pack_uint32(pk, partitions);
	pack_opt_i64(pk, retention_ms);
	pack_opt_i64(pk, retention_bytes);
	return mq_cl_call_empty(c, &q, err);
}

int mq_client_topic_describe(mq_client_t *c, const char *topic, mq_topic_info_t *out, mq_err_t *err)
{
	if (c->kafka)
		return mq_cl_kafka_topic_describe(c, topic, out, err);
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_TOPIC_DESCRIBE, 1);
	mq_wire_pack_str(pk, topic);
	reply_t r;
	int rc = mq_cl_req_call(c, &q, &r, err);
	if (rc)
		return rc;
	uint64_t parts, bytes, msgs;
	memset(out, 0, sizeof *out);
	snprintf(out->name, sizeof out->name, "%s", topic);
	if (mq_wire_u64(mq_wire_arg(&r.msg, 0), &parts, "partitions", err) || parts > UINT32_MAX ||
	    mq_wire_i64(mq_wire_arg(&r.msg, 1), &out->retention_ms, "retention_ms", err) ||
	    mq_wire_i64(mq_wire_arg(&r.msg, 2), &out->retention_bytes, "retention_bytes", err) ||
	    mq_wire_i64(mq_wire_arg(&r.msg, 3), &out->created_ms, "created_ms", err) ||
	    mq_wire_u64(mq_wire_arg(&r.msg, 4), &bytes, "bytes", err) ||
	    mq_wire_u64(mq_wire_arg(&r.msg, 5), &msgs, "messages", err))
		rc = mq_cl_bad_reply(c, "TOPIC_DESCRIBE", err);
	else
		out->partitions = (uint32_t)parts, out->bytes = bytes, out->messages = msgs;
	out->default_retention_ms = out->default_retention_bytes = -1;
	if (!rc && r.msg.nargs >= 8 &&
	    (mq_wire_i64(mq_wire_arg(&r.msg, 6), &out->default_retention_ms, "default_retention_ms", err) ||
	     mq_wire_i64(mq_wire_arg(&r.msg, 7), &out->default_retention_bytes, "default_retention_bytes", err)))
		rc = mq_cl_bad_reply(c, "TOPIC_DESCRIBE", err);
	mq_cl_reply_free(&r);
	return rc;
}

int mq_client_topic_delete(mq_client_t *c, const char *topic, int force, mq_err_t *err)
{
	if (c->kafka) /* Kafka has no say over who reads: force or not */
		return (void)force, mq_kafka_topic_delete(c->kafka, topic, err);
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_TOPIC_DELETE, 2);
	mq_wire_pack_str(pk, topic);
	mq_wire_pack_bool(pk, force);
	return mq_cl_call_empty(c, &q, err);
}

int mq_client_topic_partitions(mq_client_t *c, const char *topic, uint32_t n, mq_err_t *err)
{
	if (c->kafka) { /* as mq-serve: the count it has is no change, fewer is refused */
		uint32_t now;
		int rc = mq_kafka_partitions(c->kafka, topic, 0, &now, err);
		if (rc || now == n)
			return rc;
		if (n < now)
			return mq_err_set(err, MQ_EINVAL, "topic '%s' has %u partitions: partitions are never taken away "
					  "(records are placed by their count)", topic, now);
		return mq_kafka_topic_grow(c->kafka, topic, n, err);
	}
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_TOPIC_PARTITIONS, 2);
	mq_wire_pack_str(pk, topic);
	msgpack_pack_uint32(pk, n);
	return mq_cl_call_empty(c, &q, err);
}

static int copy_str(const msgpack_object *o, char *buf, size_t size, const char *what, mq_err_t *err)
{
	const char *s;
	size_t n;
	if (mq_wire_strv(o, &s, &n, what, err))
		return -MQ_EPROTO;
	if (n >= size)
		return mq_err_set(err, MQ_EPROTO, "%s: too long", what);
	memcpy(buf, s, n);
	buf[n] = 0;
	return 0;
}

static int parse_member_info(const msgpack_object *o, mq_group_member_info_t *m, mq_err_t *err)
{
	const msgpack_object_array *e;
	uint64_t owned;
	if (mq_wire_array(o, &e, "member", err) || e->size < 4 ||
	    copy_str(&e->ptr[0], m->id, sizeof m->id, "member id", err) ||
	    copy_str(&e->ptr[1], m->client, sizeof m->client, "client", err) ||
	    mq_wire_i64(&e->ptr[2], &m->idle_ms, "idle_ms", err) || mq_wire_u64(&e->ptr[3], &owned, "owned", err))
		return -MQ_EPROTO;
	m->nowned = (uint32_t)owned;
	return 0;
}

static int parse_row(const msgpack_object *o, mq_group_row_t *w, mq_err_t *err)
{
	const msgpack_object_array *e, *h;
	uint64_t p;
	memset(w, 0, sizeof *w);
	if (mq_wire_array(o, &e, "row", err) || e->size < 7 ||
	    copy_str(&e->ptr[0], w->topic, sizeof w->topic, "topic", err) ||
	    mq_wire_u64(&e->ptr[1], &p, "partition", err) || p > UINT32_MAX ||
	    mq_wire_i64(&e->ptr[2], &w->committed, "committed", err) ||
	    mq_wire_u64(&e->ptr[3], &w->start, "start", err) || mq_wire_u64(&e->ptr[4], &w->end, "end", err) ||
	    copy_str(&e->ptr[5], w->owner, sizeof w->owner, "owner", err) ||
	    mq_wire_array(&e->ptr[6], &h, "history", err))
		return -MQ_EPROTO;
	w->partition = (uint32_t)p;
	/* keep the newest MQ_LAG_HISTORY samples */
	uint32_t skip = h->size > MQ_LAG_HISTORY ? h->size - MQ_LAG_HISTORY : 0;
	for (uint32_t i = skip; i < h->size; i++) {
		const msgpack_object_array *s;
		mq_lag_sample_t *x = &w->hist[w->nhist];
		if (mq_wire_array(&h->ptr[i], &s, "sample", err) || s->size < 3 ||
		    mq_wire_i64(&s->ptr[0], &x->ms, "ms", err) || mq_wire_i64(&s->ptr[1], &x->committed, "committed", err) ||
		    mq_wire_u64(&s->ptr[2], &x->end, "end", err))
			return -MQ_EPROTO;
		w->nhist++;
	}
	w->since_ms = -1; /* a broker that does not say */
	if (e->size >= 8 && mq_wire_i64(&e->ptr[7], &w->since_ms, "since_ms", err))
		return -MQ_EPROTO;
	return 0;
}

static int parse_group(const msgpack_object *o, mq_group_info_t *g, int64_t interval, mq_err_t *err)
{
	const msgpack_object_array *e, *ms, *rs;
	if (mq_wire_array(o, &e, "group", err) || e->size < 4 ||
	    copy_str(&e->ptr[0], g->name, sizeof g->name, "group", err) ||
	    mq_wire_u64(&e->ptr[1], &g->generation, "generation", err) ||
	    mq_wire_array(&e->ptr[2], &ms, "members", err) || mq_wire_array(&e->ptr[3], &rs, "rows", err))
		return -MQ_EPROTO;
	g->interval_ms = interval;
	g->members = calloc(ms->size ? ms->size : 1, sizeof *g->members);
	g->rows = calloc(rs->size ? rs->size : 1, sizeof *g->rows);
	if (!g->members || !g->rows)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < ms->size; i++, g->nmembers++)
		if (parse_member_info(&ms->ptr[i], &g->members[i], err))
			return -MQ_EPROTO;
	for (uint32_t i = 0; i < rs->size; i++, g->nrows++)
		if (parse_row(&rs->ptr[i], &g->rows[i], err))
			return -MQ_EPROTO;
	return 0;
}

void mq_group_info_free(mq_group_info_t *g, uint32_t n)
{
	for (uint32_t i = 0; g && i < n; i++) {
		free(g[i].members);
		free(g[i].rows);
	}
	free(g);
}

int mq_client_group_ages(mq_client_t *c, mq_group_info_t *g, uint32_t n, mq_err_t *err)
{
	return c->kafka ? mq_cl_kafka_ages(c, g, n, err) : 0;
}

int mq_client_groups(mq_client_t *c, const char *group, const char *topic, mq_group_info_t **out, uint32_t *n,
		     mq_err_t *err)
{
	if (c->kafka)
		return mq_cl_kafka_groups(c, group, topic, out, n, err);
	*out = NULL;
	*n = 0;
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_GROUPS, 2);
	if (group)
		mq_wire_pack_str(pk, group);
	else
		msgpack_pack_nil(pk);
	if (topic)
		mq_wire_pack_str(pk, topic);
	else
		msgpack_pack_nil(pk);
	reply_t r;
	int rc = mq_cl_req_call(c, &q, &r, err);
	if (rc)
		return rc;
	int64_t interval;
	const msgpack_object_array *a;
	mq_group_info_t *v = NULL;
	uint32_t got = 0;
	if (mq_wire_i64(mq_wire_arg(&r.msg, 0), &interval, "interval_ms", err) ||
	    mq_wire_array(mq_wire_arg(&r.msg, 1), &a, "groups", err)) {
		rc = mq_cl_bad_reply(c, "GROUPS", err);
	} else if (!(v = calloc(a->size ? a->size : 1, sizeof *v))) {
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	} else {
		for (; got < a->size && rc == 0; got++)
			if ((rc = parse_group(&a->ptr[got], &v[got], interval, err)) == -MQ_EPROTO)
				rc = mq_cl_bad_reply(c, "GROUPS", err);
	}
	mq_cl_reply_free(&r);
	if (rc) {
		mq_group_info_free(v, got);
		return rc;
	}
	*out = v;
	*n = got;
	return 0;
}

/* Parse reply argument 0, an array, into a new array of n elements of
 * size bytes, each filled by one(); bad_reply naming what otherwise. */
static int parse_list(mq_client_t *c, const reply_t *r, const char *what, size_t size, void **out, uint32_t *n,
		      int (*one)(const msgpack_object *o, void *elem, mq_err_t *err), mq_err_t *err)
{
	const msgpack_object_array *a;
	*out = NULL;
	*n = 0;
	if (mq_wire_array(mq_wire_arg(&r->msg, 0), &a, "list", err))
		return mq_cl_bad_reply(c, what, err);
	uint8_t *v = calloc(a->size ? a->size : 1, size);
	if (!v)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < a->size; i++)
		if (one(&a->ptr[i], v + i * size, err)) {
			free(v);
			return mq_cl_bad_reply(c, what, err);
		}
	*out = v;
	*n = a->size;
	return 0;
}

static int parse_reset_entry(const msgpack_object *o, void *elem, mq_err_t *err)
{
	mq_reset_entry_t *x = elem;
	const msgpack_object_array *e;
	uint64_t p;
	if (mq_wire_array(o, &e, "entry", err) || e->size < 3 || mq_wire_u64(&e->ptr[0], &p, "partition", err) ||
	    p > UINT32_MAX || mq_wire_i64(&e->ptr[1], &x->old, "old", err) ||
	    mq_wire_u64(&e->ptr[2], &x->new_offset, "new", err))
		return -MQ_EPROTO;
	x->partition = (uint32_t)p;
	return 0;
}

static int parse_stat(const msgpack_object *o, void *elem, mq_err_t *err)
{
	mq_stat_t *x = elem;
	const msgpack_object_array *e;
	if (mq_wire_array(o, &e, "stat", err) || e->size < 2 ||
	    copy_str(&e->ptr[0], x->name, sizeof x->name, "name", err) || mq_wire_i64(&e->ptr[1], &x->value, "value", err))
		return -MQ_EPROTO;
	return 0;
}

int mq_client_group_reset(mq_client_t *c, const char *group, const char *topic, const mq_offset_spec_t *to,
			  unsigned flags, mq_reset_entry_t **out, uint32_t *n, mq_err_t *err)
{
	if (c->kafka)
		return mq_cl_kafka_group_reset(c, group, topic, to, flags, out, n, err);
	*out = NULL;
	*n = 0;
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_GROUP_RESET, 6);
	mq_wire_pack_str(pk, group);
	mq_wire_pack_str(pk, topic);
	msgpack_pack_uint32(pk, (uint32_t)to->kind);
	msgpack_pack_int64(pk, to->v);
	mq_wire_pack_bool(pk, (flags & MQ_RESET_DRY_RUN) != 0);
	mq_wire_pack_bool(pk, (flags & MQ_RESET_CREATE) != 0);
	reply_t r;
	int rc = mq_cl_req_call(c, &q, &r, err);
	if (rc)
		return rc;
	rc = parse_list(c, &r, "GROUP_RESET", sizeof **out, (void **)out, n, parse_reset_entry, err);
	mq_cl_reply_free(&r);
	return rc;
}

int mq_client_group_delete(mq_client_t *c, const char *group, mq_err_t *err)
{
	if (c->kafka)
		return mq_kafka_group_delete(c->kafka, group, err);
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_GROUP_DELETE, 1);
	mq_wire_pack_str(pk, group);
	return mq_cl_call_empty(c, &q, err);
}

int mq_client_stats(mq_client_t *c, mq_stat_t **out, uint32_t *n, mq_err_t *err)
{
	if (c->kafka)
		return mq_err_set(err, MQ_EINVAL, "stats are mq-serve's counters; a Kafka cluster keeps its own "
				  "(its JMX metrics, or kcat -L for brokers and topics)");
	*out = NULL;
	*n = 0;
	req_t q;
	mq_cl_req_begin(c, &q, MQ_REQ_STATS, 0);
	reply_t r;
	int rc = mq_cl_req_call(c, &q, &r, err);
	if (rc)
		return rc;
	rc = parse_list(c, &r, "STATS", sizeof **out, (void **)out, n, parse_stat, err);
	mq_cl_reply_free(&r);
	return rc;
}
