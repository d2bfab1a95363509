/*
 * client_group.c -- the client's group membership: join, heartbeat, leave (client.h).
 */
#include "client_int.h"

/* ---- group membership ---- */

static int add_owned(mq_member_t *m, uint32_t t, uint32_t p)
{
	if (m->nowned == m->cap) {
		uint32_t cap = m->cap ? m->cap * 2 : 16;
		mq_owned_t *v = realloc(m->owned, cap * sizeof *v);
		if (!v)
			return -MQ_ENOMEM;
		m->owned = v;
		m->cap = cap;
	}
	m->owned[m->nowned++] = (mq_owned_t){t, p};
	return 0;
}

static int cmp_owned(const void *a, const void *b)
{
	const mq_owned_t *x = a, *y = b;
	if (x->topic != y->topic)
		return x->topic < y->topic ? -1 : 1;
	return x->partition < y->partition ? -1 : x->partition > y->partition;
}

/* Index of topic t (n bytes) among m's topics, or -1. */
static int64_t member_topic(const mq_member_t *m, const char *t, size_t n)
{
	for (uint32_t i = 0; i < m->ntopics; i++)
		if (strlen(m->topics[i]) == n && !memcmp(m->topics[i], t, n))
			return i;
	return -1;
}

/* [[topic, p]...] into m->owned (our topics only). */
static int parse_assignment(mq_member_t *m, const msgpack_object *o, mq_err_t *err)
{
	const msgpack_object_array *a;
	if (mq_wire_array(o, &a, "assignment", err))
		return -MQ_EPROTO;
	m->nowned = 0;
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object_array *e;
		const char *t;
		size_t n;
		uint64_t p;
		if (mq_wire_array(&a->ptr[i], &e, "assignment entry", err) || e->size < 2 ||
		    mq_wire_strv(&e->ptr[0], &t, &n, "topic", err) || mq_wire_u64(&e->ptr[1], &p, "partition", err) ||
		    p > UINT32_MAX)
			return -MQ_EPROTO;
		int64_t ti = member_topic(m, t, n);
		if (ti >= 0 && add_owned(m, (uint32_t)ti, (uint32_t)p))
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	if (m->nowned > 1)
		qsort(m->owned, m->nowned, sizeof *m->owned, cmp_owned);
	return 0;
}

int mq_member_set_topics(mq_member_t *m, const char *const *topics, uint32_t n, mq_err_t *err)
{
	return mq_cl_set_topics(&m->topics, &m->ntopics, topics, n, err);
}

/* Over Kafka: the member as the cluster's group protocol has it now
 * (kafka.h; its rebalances are served while records are read). */
static int kafka_member(mq_client_t *c, mq_member_t *m, mq_err_t *err)
{
	const mq_kafka_tp_t *own;
	uint32_t n;
	uint64_t gen = mq_kafka_assignment(c->kafka, &own, &n);
	mq_kafka_member_id(c->kafka, m->member, sizeof m->member);
	if (!m->member[0])
		snprintf(m->member, sizeof m->member, "%s", "kafka");
	m->nowned = 0;
	for (uint32_t i = 0; i < n; i++) {
		int64_t ti = member_topic(m, own[i].topic, strlen(own[i].topic));
		if (ti >= 0 && add_owned(m, (uint32_t)ti, (uint32_t)own[i].partition))
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	if (m->nowned > 1)
		qsort(m->owned, m->nowned, sizeof *m->owned, cmp_owned);
	m->generation = gen;
	return 0;
}

int mq_client_join(mq_client_t *c, mq_member_t *m, mq_err_t *err)
{
	if (c->kafka) {
		int rc = mq_kafka_join(c->kafka, m->group, (const char *const *)m->topics, m->ntopics, m->session_ms,
				       /* -w 0 is INT64_MAX: added one at a time, saturating */
				       mq_cl_after(mq_cl_after(mq_mono_ms(), c->timeout_ms), m->session_ms), err);
		return rc ? rc : kafka_member(c, m, err);
	}
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_JOIN, 5);
	mq_wire_pack_str(pk, m->group);
	msgpack_pack_array(pk, m->ntopics);
	for (uint32_t i = 0; i < m->ntopics; i++)
		mq_wire_pack_str(pk, m->topics[i]);
	mq_wire_pack_str(pk, m->member);
	msgpack_pack_int64(pk, m->session_ms);
	mq_wire_pack_str(pk, c->name);
	reply_t r;
	int rc = mq_cl_req_call(c, &q, &r, err);
	if (rc)
		return rc;
	const char *s;
	size_t n;
	uint64_t gen;
	if (mq_wire_strv(mq_wire_arg(&r.msg, 0), &s, &n, "member", err) || n == 0 || n > MQ_MEMBER_ID_MAX ||
	    mq_wire_u64(mq_wire_arg(&r.msg, 1), &gen, "generation", err) ||
	    parse_assignment(m, mq_wire_arg(&r.msg, 2), err)) {
		rc = mq_cl_bad_reply(c, "JOIN", err);
	} else {
		memcpy(m->member, s, n);
		m->member[n] = 0;
		m->generation = gen;
	}
	mq_cl_reply_free(&r);
	return rc;
}

int mq_client_heartbeat(mq_client_t *c, mq_member_t *m, mq_err_t *err)
{
	if (c->kafka) /* librdkafka heartbeats on its own */
		return kafka_member(c, m, err);
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_HEARTBEAT, 3);
	mq_wire_pack_str(pk, m->group);
	mq_wire_pack_str(pk, m->member);
	msgpack_pack_uint64(pk, m->acked);
	reply_t r;
	int rc = mq_cl_req_call(c, &q, &r, err);
	if (rc)
		return rc;
	uint64_t gen;
	if (mq_wire_u64(mq_wire_arg(&r.msg, 0), &gen, "generation", err) ||
	    parse_assignment(m, mq_wire_arg(&r.msg, 1), err))
		rc = mq_cl_bad_reply(c, "HEARTBEAT", err);
	else
		m->generation = gen;
	mq_cl_reply_free(&r);
	return rc;
}

int mq_client_leave(mq_client_t *c, mq_member_t *m, mq_err_t *err)
{
	if (!m->member[0])
		return 0;
	if (c->kafka)
		return mq_kafka_leave(c->kafka);
	req_t q;
	msgpack_packer *pk = mq_cl_req_begin(c, &q, MQ_REQ_LEAVE, 2);
	mq_wire_pack_str(pk, m->group);
	mq_wire_pack_str(pk, m->member);
	reply_t r;
	int rc = mq_cl_req_call(c, &q, &r, err);
	mq_cl_reply_free(&r);
	if (!rc)
		m->member[0] = 0;
	return rc;
}

void mq_member_free(mq_member_t *m)
{
	if (!m)
		return;
	free(m->owned);
	m->owned = NULL;
	m->nowned = m->cap = 0;
	mq_cl_free_topics(m->topics, m->ntopics);
	m->topics = NULL;
	m->ntopics = 0;
}

int mq_member_owns(const mq_member_t *m, uint32_t topic, uint32_t p)
{
	mq_owned_t k = {topic, p};
	return m->nowned && bsearch(&k, m->owned, m->nowned, sizeof k, cmp_owned) != NULL;
}
