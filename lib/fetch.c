/*
 * fetch.c -- the overlapped fetch of client.h, and offsets as people give them.
 */
#include "client_int.h"

/* ---- fetch ---- */

static void frames_release(mq_fetch_reply_t *r)
{
	if (r->lite) {
		free(r->own); /* frames is the copy's own array */
		free(r->frames);
		r->own = r->frames = NULL;
		r->frames_cap = 0;
	} else {
		zmq_msg_t *f = r->frames;
		for (uint32_t i = 0; i < r->nframes; i++)
			zmq_msg_close(&f[i]);
	}
	r->nframes = 0;
	r->n = 0;
}

static const void *frame_data(const mq_fetch_reply_t *r, uint32_t i)
{
	return r->lite ? ((const mq_zmtp_frame_t *)r->frames)[i].p : zmq_msg_data(&((zmq_msg_t *)r->frames)[i]);
}

static size_t frame_size(const mq_fetch_reply_t *r, uint32_t i)
{
	return r->lite ? ((const mq_zmtp_frame_t *)r->frames)[i].len : zmq_msg_size(&((zmq_msg_t *)r->frames)[i]);
}

void mq_fetch_reply_free(mq_fetch_reply_t *r)
{
	if (!r)
		return;
	frames_release(r);
	free(r->frames);
	free(r->e);
	memset(r, 0, sizeof *r);
}

int mq_client_fetch_send(mq_client_t *c, const char *const *topics, uint32_t ntopics, const mq_fetch_pos_t *pos,
			 uint32_t n, uint32_t max_bytes, uint32_t max_wait_ms, const char *group, const char *member,
			 const uint64_t *epoch, mq_err_t *err)
{
	if (ntopics > MQ_FETCH_MAX_TOPICS || (ntopics == 0 && (n || !epoch)))
		return mq_err_set(err, MQ_EINVAL, "a fetch of %u topics (1 to %d, or 0 with an epoch to wait for)",
				  ntopics, MQ_FETCH_MAX_TOPICS);
	if (c->kafka)
		return mq_cl_kafka_fetch_send(c, topics, ntopics, pos, n, max_bytes, max_wait_ms, err);
	c->freq.len = 0;
	msgpack_packer pk;
	mq_wire_packer(&pk, &c->freq);
	c->fetch_id = mq_cl_new_id(c);
	mq_wire_begin(&pk, MQ_REQ_FETCH, c->fetch_id, 7);
	msgpack_pack_array(&pk, ntopics);
	for (uint32_t i = 0; i < ntopics; i++)
		mq_wire_pack_str(&pk, topics[i]);
	msgpack_pack_array(&pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_array(&pk, 3);
		msgpack_pack_uint32(&pk, pos[i].topic);
		msgpack_pack_uint32(&pk, pos[i].partition);
		msgpack_pack_uint64(&pk, pos[i].offset);
	}
	msgpack_pack_uint32(&pk, max_bytes);
	msgpack_pack_uint32(&pk, max_wait_ms);
	if (group && *group)
		mq_wire_pack_str(&pk, group);
	else
		msgpack_pack_nil(&pk);
	if (member && *member)
		mq_wire_pack_str(&pk, member);
	else
		msgpack_pack_nil(&pk);
	if (epoch)
		msgpack_pack_uint64(&pk, *epoch);
	else
		msgpack_pack_nil(&pk);
	if (!c->freq.p)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	c->fetch_wait = max_wait_ms;
	c->fetch_first = mq_mono_ms();
	free(c->stash); /* a reply to the fetch this one replaces */
	free(c->stash_fr);
	c->stash = NULL;
	c->stash_fr = NULL;
	c->stash_n = 0;
	c->fetch_downs = c->ddowns;
	c->fetch_state = 1;
	int rc = mq_cl_send_frames(c, c->data, c->freq.p, c->freq.len, NULL, 0, err);
	if (rc < 0)
		return rc;
	if (rc) {
		c->fetch_state = 2;
		c->fetch_sent = c->fetch_first;
	}
	return 0;
}

int mq_client_fetch_pending(const mq_client_t *c)
{
	return c->fetch_state != 0;
}

void mq_client_fetch_cancel(mq_client_t *c)
{
	c->fetch_state = 0;
}

static int grow(void **v, uint32_t *cap, uint32_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	uint32_t n = *cap ? *cap : 16;
	while (n < need)
		n *= 2;
	void *p = realloc(*v, n * size);
	if (!p)
		return -MQ_ENOMEM;
	*v = p;
	*cap = n;
	return 0;
}

int mq_fetch_entry_check(const mq_fetch_entry_t *x, const char *topic, mq_err_t *err)
{
	const uint8_t *d = x->data, *end = x->data + x->nbytes;
	uint64_t expect = 0;
	mq_batch_hdr_t h;
	mq_err_t e;
	if (x->err)
		return mq_err_set(err, MQ_EPROTO, "topic '%s' partition %u: data sent with error %d", topic,
				  x->partition, x->err);
	while (d < end) {
		if (mq_batch_hdr_decode(d, (size_t)(end - d), &h, &e) || h.length > (size_t)(end - d) ||
		    mq_batch_verify(d, h.length, &e))
			return mq_err_set(err, MQ_ECORRUPT, "topic '%s' partition %u: the broker sent a damaged batch "
					  "at byte %zu of its reply: %s (retry; if it stays, run mq-admin verify on "
					  "the broker's data)", topic, x->partition, (size_t)(d - x->data), e.msg);
		if (d != x->data && (x->sparse ? h.base_offset < expect : h.base_offset != expect))
			return mq_err_set(err, MQ_ECORRUPT, "topic '%s' partition %u: the broker sent offset %" PRIu64
					  " where %" PRIu64 " was due (retry; if it stays, run mq-admin verify on the "
					  "broker's data)", topic, x->partition, h.base_offset, expect);
		expect = h.base_offset + h.count;
		d += h.length;
	}
	if (x->sparse ? expect > x->next : x->expired > x->next || expect != x->next - x->expired)
		return mq_err_set(err, MQ_ECORRUPT, "topic '%s' partition %u: the broker sent batches up to offset "
				  "%" PRIu64 " but says %" PRIu64 " is next after %" PRIu64 " expired", topic, x->partition,
				  expect, x->next, x->expired);
	return 0;
}

/* Receive the rest of a FETCH reply whose first frame is in r->frames[0]. */
static int fetch_parse(mq_client_t *c, mq_fetch_reply_t *r, const mq_wire_msg_t *m, mq_err_t *err)
{
	const msgpack_object_array *a;
	const msgpack_object *eo = mq_wire_arg(m, 1);
	if (mq_wire_array(mq_wire_arg(m, 0), &a, "entries", err) ||
	    grow((void **)&r->e, &r->cap, a->size, sizeof *r->e) ||
	    (eo && mq_wire_u64(eo, &r->epoch, "topics epoch", err)))
		return mq_cl_bad_reply(c, "FETCH", err);
	r->has_epoch = eo != NULL;
	uint32_t next_frame = 1;
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object_array *e;
		uint64_t t, p, s, en, nx, nb, code, xp = 0;
		if (mq_wire_array(&a->ptr[i], &e, "entry", err) || e->size < 7 ||
		    mq_wire_u64(&e->ptr[0], &t, "topic", err) || mq_wire_u64(&e->ptr[1], &p, "partition", err) ||
		    mq_wire_u64(&e->ptr[2], &s, "start", err) || mq_wire_u64(&e->ptr[3], &en, "end", err) ||
		    mq_wire_u64(&e->ptr[4], &nx, "next", err) || mq_wire_u64(&e->ptr[5], &nb, "nbytes", err) ||
		    mq_wire_u64(&e->ptr[6], &code, "err", err) || t > UINT32_MAX || p > UINT32_MAX ||
		    (e->size > 7 && mq_wire_u64(&e->ptr[7], &xp, "expired", err)))
			return mq_cl_bad_reply(c, "FETCH", err);
		mq_fetch_entry_t *x = &r->e[r->n++];
		*x = (mq_fetch_entry_t){(uint32_t)t, (uint32_t)p, s, en, nx, (int)code, NULL, 0, xp, 0};
		c->expired += xp;
		if (nb > 0) {
			if (next_frame >= r->nframes) {
				mq_err_set(err, MQ_EPROTO, "partition %u: %llu bytes announced, no frame", x->partition,
					   (unsigned long long)nb);
				return mq_cl_bad_reply(c, "FETCH", err);
			}
			x->data = frame_data(r, next_frame);
			x->nbytes = frame_size(r, next_frame);
			next_frame++;
		}
	}
	return 0;
}

/* Receive a whole message (all frames) into r->frames. */
static int recv_all(void *s, mq_fetch_reply_t *r)
{
	frames_release(r);
	for (;;) {
		if (grow(&r->frames, &r->frames_cap, r->nframes + 1, sizeof(zmq_msg_t)))
			return -MQ_ENOMEM;
		zmq_msg_t *f = (zmq_msg_t *)r->frames + r->nframes;
		zmq_msg_init(f);
		if (zmq_msg_recv(f, s, r->nframes ? 0 : ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(f);
			return r->nframes ? 1 : 0;
		}
		r->nframes++;
		if (!zmq_msg_more(f))
			return 1;
	}
}

/* A lite client's next message into r (the stash first): 1, 0 none,
 * -MQ_ENOMEM.  A reply to a control call nobody waits for is dropped
 * by the caller (its id is not the fetch's). */
static int lite_fetch_reply(mq_client_t *c, mq_fetch_reply_t *r)
{
	if (c->stash) {
		r->own = c->stash;
		r->frames = c->stash_fr;
		r->nframes = (uint32_t)c->stash_n;
		c->stash = NULL;
		c->stash_fr = NULL;
		c->stash_n = 0;
		return 1;
	}
	const mq_zmtp_frame_t *f;
	int n = 0;
	if (!mq_cl_lite_take(c, &f, &n))
		return 0;
	uint8_t *buf;
	mq_zmtp_frame_t *fr;
	if (mq_cl_lite_copy(f, n, &buf, &fr))
		return -MQ_ENOMEM;
	r->own = buf;
	r->frames = fr;
	r->nframes = (uint32_t)n;
	return 1;
}

void mq_client_watch_fd(mq_client_t *c, int fd)
{
	mq_client_watch(c, fd, 0);
}

void mq_client_watch(mq_client_t *c, int fd, short events)
{
	c->watch_fd = fd;
	c->watch_events = events;
}

int mq_client_watch_hit(const mq_client_t *c)
{
	return c->watch_hit;
}

void mq_client_wake_on(mq_client_t *c, int fd)
{
	c->wake_fd = fd;
}

int mq_client_wake_fd(const mq_client_t *c)
{
	return c->wake_fd;
}

int mq_client_fetch_recv(mq_client_t *c, mq_fetch_reply_t *r, int wait_ms, mq_err_t *err)
{
	int64_t start = mq_mono_ms(), until = mq_cl_after(start, wait_ms < 0 ? 0 : wait_ms);
	frames_release(r);
	if (c->kafka) {
		if (!r->lite) { /* the frame table is of the other kind */
			free(r->frames);
			r->frames = NULL;
			r->frames_cap = 0;
		}
		return mq_cl_kafka_fetch_recv(c, r, wait_ms, err);
	}
	if (r->lite != c->lite) { /* the frame table is of the other kind */
		free(r->frames);
		r->frames = NULL;
		r->frames_cap = 0;
		r->lite = c->lite;
	}
	while (c->fetch_state) {
		int64_t now = mq_mono_ms();
		if (c->fetch_downs != c->ddowns) { /* lost with the connection: a new wait */
			c->fetch_downs = c->ddowns;
			c->fetch_state = 1;
			c->fetch_first = now;
		}
		if (c->fetch_state == 1 || now - c->fetch_sent >= (int64_t)c->fetch_wait + c->resend_ms) {
			int rc = mq_cl_send_frames(c, c->data, c->freq.p, c->freq.len, NULL, 0, err);
			if (rc < 0)
				return rc;
			if (rc) {
				c->fetch_state = 2;
				c->fetch_sent = now;
			}
		}
		/* A long wait is no silence: give up when the connection has been
		 * down for the timeout, or when a broker still connected has not
		 * answered for the timeout past the wait. */
		int64_t give_up = c->down_since ? mq_cl_after(c->down_since, c->timeout_ms)
						: mq_cl_after(c->fetch_first + (int64_t)c->fetch_wait, c->timeout_ms);
		if (now >= give_up) {
			c->fetch_state = 0;
			return mq_cl_timed_out(c, "FETCH", err);
		}
		if (now >= until)
			return -MQ_EAGAIN;
		/* Unsent: until the socket takes it; sent: until the reply is late. */
		int64_t w = until < give_up ? until : give_up;
		if (c->fetch_state == 2 && c->fetch_sent + (int64_t)c->fetch_wait + c->resend_ms < w)
			w = c->fetch_sent + (int64_t)c->fetch_wait + c->resend_ms;
		int rc = c->stash ? 0 /* it came already */
				  : mq_cl_wait_sock(c, c->data, ZMQ_POLLIN | (c->fetch_state == 1 ? ZMQ_POLLOUT : 0), 1,
					      w == INT64_MAX ? -1 : w - now, err);
		if (rc < 0)
			return rc;
		if (!(rc & ZMQ_POLLIN) && !c->stash)
			continue;
		rc = c->lite ? lite_fetch_reply(c, r) : recv_all(c->data, r);
		if (rc <= 0) {
			if (rc < 0)
				return mq_err_set(err, MQ_ENOMEM, "out of memory");
			continue;
		}
		mq_wire_msg_t m;
		if (mq_wire_parse(frame_data(r, 0), frame_size(r, 0), &m, NULL) < 0 || m.id != c->fetch_id) {
			mq_wire_msg_free(&m);
			frames_release(r);
			continue;
		}
		c->fetch_state = 0;
		if (m.kind == MQ_REP_OK)
			rc = fetch_parse(c, r, &m, err);
		else
			rc = mq_cl_reply_error(c, &m, err);
		mq_wire_msg_free(&m);
		return rc;
	}
	return mq_err_set(err, MQ_EINVAL, "no FETCH outstanding");
}

/* ---- offsets given by people ---- */

#define OFF_HINT "use beginning, end, N, -N, @SECONDS, @MS, @2026-11-24, @2026-11-24T10:00, @2026-11-24T10:00:00Z or @-1h30m"

int mq_offset_spec_parse(const char *s, int64_t now_ms, mq_offset_spec_t *o, mq_err_t *err)
{
	uint64_t v;
	if (!strcmp(s, "beginning") || !strcmp(s, "begin") || !strcmp(s, "start")) {
		*o = (mq_offset_spec_t){MQ_OFF_BEGINNING, 0};
		return 0;
	}
	if (!strcmp(s, "end")) {
		*o = (mq_offset_spec_t){MQ_OFF_END, 0};
		return 0;
	}
	if (s[0] == '-' && mq_parse_u64(s + 1, &v, NULL) == 0 && v <= INT64_MAX) {
		*o = (mq_offset_spec_t){MQ_OFF_FROM_END, (int64_t)v};
		return 0;
	}
	if (mq_parse_u64(s, &v, NULL) == 0 && v <= INT64_MAX) {
		*o = (mq_offset_spec_t){MQ_OFF_ABS, (int64_t)v};
		return 0;
	}
	if (s[0] == '@') {
		int64_t ms;
		if (mq_time_parse(s + 1, now_ms, &ms, NULL) == 0) {
			*o = (mq_offset_spec_t){MQ_OFF_TIME, ms};
			return 0;
		}
		return mq_err_set(err, MQ_EINVAL, "offset '%.200s': time not understood (" OFF_HINT ")", s);
	}
	return mq_err_set(err, MQ_EINVAL, "offset '%.200s': not understood (" OFF_HINT ")", s);
}

int mq_client_resolve(mq_client_t *c, const char *topic, const mq_offset_spec_t *o, uint64_t *off,
		      uint32_t n, mq_err_t *err)
{
	mq_part_offsets_t *po = calloc(n ? n : 1, sizeof *po);
	if (!po)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	int rc = mq_client_offsets(c, topic, o->kind == MQ_OFF_TIME ? (o->v < 0 ? 0 : o->v) : -1, po, n, err);
	for (uint32_t i = 0; !rc && i < n; i++) {
		uint64_t s = po[i].start, e = po[i].end, v = (uint64_t)o->v;
		switch (o->kind) {
		case MQ_OFF_BEGINNING:
			off[i] = s;
			break;
		case MQ_OFF_END:
			off[i] = e;
			break;
		case MQ_OFF_ABS:
			off[i] = v < s ? s : v > e ? e : v;
			break;
		case MQ_OFF_FROM_END:
			off[i] = e - s < v ? s : e - v;
			break;
		case MQ_OFF_TIME:
			off[i] = po[i].at_time < 0 ? e : (uint64_t)po[i].at_time;
			break;
		}
	}
	free(po);
	return rc;
}
