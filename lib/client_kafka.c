/*
 * client_kafka.c -- the fetch and offsets of client.h over a Kafka
 * cluster (kafka.h), shaped as mq-serve's, so that the consumer engine
 * above (consumer.c) and every output format work unchanged.
 *
 * A FETCH becomes an assignment: the consumer reads the partitions asked
 * for from the offsets asked for, and keeps streaming while later
 * fetches ask for exactly where the stream is (a new assignment only
 * when they ask for something else).  A reply is made of the records
 * that arrived, packed per partition into mq batches; Kafka's offsets
 * may skip (compaction, transaction markers), so a new batch starts at
 * each gap and the entry is marked sparse (mq_fetch_entry_check then
 * asks only that offsets grow).
 */
#include "client_int.h"

#define KBATCH_BYTES (1u << 20) /* a batch is closed past this */

typedef struct kpos {
	uint32_t topic; /* index into kf->topics */
	int32_t part;
	int64_t next;     /* the next offset the stream gives (or was asked for) */
	mq_buf_t buf;     /* batches being made for the reply */
	mq_batch_builder_t b;
	int open;         /* b has a batch begun */
	int64_t last;     /* offset of the last record packed, -1 none */
	uint64_t from;    /* the reply's first offset for it */
} kpos_t;

struct mq_kfetch {
	char **topics;
	uint32_t ntopics;
	kpos_t *pos;
	uint32_t n;
	size_t max_bytes;
	uint32_t wait_ms;
	int assigned; /* the consumer reads pos[] as it stands */
	uint64_t gen; /* the group's rebalances when assigned (one moves the stream) */
	uint32_t hint; /* the position of the last record taken */
	mq_err_t err;  /* why packing a record failed */
	mq_kafka_t *k;
	/* The last reply's bytes, kept for the next: the reader is done with
	 * a reply when it asks for the next one (mq_client_fetch_recv), so
	 * one block, grown as needed, serves them all.  A block malloc'd
	 * and freed for each reply came from mmap (it is megabytes) and
	 * paid a page fault for every page of every reply. */
	uint8_t *block;
	size_t block_cap;
};

static void kf_clear(mq_kfetch_t *kf)
{
	mq_cl_free_topics(kf->topics, kf->ntopics);
	for (uint32_t i = 0; i < kf->n; i++)
		mq_buf_free(&kf->pos[i].buf);
	free(kf->pos);
	kf->topics = NULL, kf->pos = NULL, kf->ntopics = kf->n = 0;
}

void mq_cl_kafka_fetch_free(mq_client_t *c)
{
	if (c->kf) {
		kf_clear(c->kf);
		free(c->kf->block);
	}
	free(c->kf);
	c->kf = NULL;
}

int mq_cl_kafka_offsets(mq_client_t *c, const char *topic, int64_t time, mq_part_offsets_t *out, uint32_t n,
			mq_err_t *err)
{
	if (time < 0 && n) { /* first and end offsets of every partition: one request per leader */
		const char **topics = malloc(n * sizeof *topics);
		int32_t *parts = malloc(n * sizeof *parts);
		int64_t *s = malloc(n * sizeof *s), *e = malloc(n * sizeof *e);
		int rc = topics && parts && s && e ? 0 : mq_err_set(err, MQ_ENOMEM, "out of memory");
		for (uint32_t i = 0; !rc && i < n; i++)
			topics[i] = topic, parts[i] = (int32_t)i;
		if (!rc)
			rc = mq_kafka_watermarks(c->kafka, topics, parts, n, s, e, err);
		for (uint32_t i = 0; !rc && i < n; i++)
			out[i] = (mq_part_offsets_t){i, s[i] < 0 ? 0 : (uint64_t)s[i], e[i] < 0 ? 0 : (uint64_t)e[i], -1};
		free(topics), free(parts), free(s), free(e);
		return rc;
	}
	for (uint32_t i = 0; i < n; i++) {
		int64_t s, e, at;
		int rc = mq_kafka_offsets(c->kafka, topic, (int32_t)i, time, &s, &e, &at, err);
		if (rc)
			return rc;
		out[i] = (mq_part_offsets_t){i, s < 0 ? 0 : (uint64_t)s, e < 0 ? 0 : (uint64_t)e, time < 0 ? -1 : at};
	}
	return 0;
}

int mq_cl_kafka_topics(mq_client_t *c, mq_topic_list_t *out, mq_err_t *err)
{
	memset(out, 0, sizeof *out);
	return mq_kafka_topics(c->kafka, &out->names, &out->parts, &out->n, err);
}

/* The caller's topic list into kf->topics (the names its indexes mean). */
static int set_topics(mq_kfetch_t *kf, const char *const *topics, uint32_t ntopics, mq_err_t *err)
{
	int same = ntopics == kf->ntopics;
	for (uint32_t i = 0; same && i < ntopics; i++)
		same = !strcmp(topics[i], kf->topics[i]);
	return same ? 0 : mq_cl_set_topics(&kf->topics, &kf->ntopics, topics, ntopics, err);
}

/* Whether every position asked for is where the stream stands (no
 * rebalance since it was assigned): then pos[] becomes the positions,
 * in the caller's order and with its topic indexes.  Partitions of the
 * stream not asked for this time (at their end, or held by the reader)
 * stay in it; what comes for them is dropped, and asking for them again
 * at an offset the stream has passed makes a new assignment. */
static int same_stream(mq_kfetch_t *kf, const char *const *topics, uint32_t ntopics, const mq_fetch_pos_t *pos,
		       uint32_t n)
{
	const mq_kafka_tp_t *own;
	uint32_t nown;
	if (!kf->assigned || n > kf->n || mq_kafka_assignment(kf->k, &own, &nown) != kf->gen)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t j = i;
		if (pos[i].topic >= ntopics)
			return 0;
		while (j < kf->n && (kf->pos[j].part != (int32_t)pos[i].partition ||
				     strcmp(topics[pos[i].topic], kf->topics[kf->pos[j].topic])))
			j++;
		if (j == kf->n || kf->pos[j].next != (int64_t)pos[i].offset)
			return 0;
		kpos_t t = kf->pos[i]; /* the set stays the same: a mismatch later clears it all */
		kf->pos[i] = kf->pos[j];
		kf->pos[j] = t;
	}
	return 1;
}

int mq_cl_kafka_fetch_send(mq_client_t *c, const char *const *topics, uint32_t ntopics, const mq_fetch_pos_t *pos,
			   uint32_t n, uint32_t max_bytes, uint32_t max_wait_ms, mq_err_t *err)
{
	if (!c->kf && !(c->kf = calloc(1, sizeof *c->kf)))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	mq_kfetch_t *kf = c->kf;
	kf->k = c->kafka;
	kf->max_bytes = max_bytes ? max_bytes : (16u << 20);
	kf->wait_ms = max_wait_ms;
	c->fetch_state = 2;
	c->fetch_sent = mq_mono_ms();
	if (same_stream(kf, topics, ntopics, pos, n)) {
		for (uint32_t i = n; i < kf->n; i++) /* read on, not handed over */
			mq_buf_free(&kf->pos[i].buf);
		kf->n = n;
		for (uint32_t i = 0; i < n; i++)
			kf->pos[i].topic = pos[i].topic; /* the caller's indexes, into its names */
		return set_topics(kf, topics, ntopics, err);
	}
	kf_clear(kf);
	kf->assigned = 0;
	if (!(kf->pos = calloc(n ? n : 1, sizeof *kf->pos)))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	int rc = mq_cl_set_topics(&kf->topics, &kf->ntopics, topics, ntopics, err);
	if (rc)
		return rc;
	const char **names = calloc(n ? n : 1, sizeof *names);
	int32_t *parts = calloc(n ? n : 1, sizeof *parts);
	int64_t *offs = calloc(n ? n : 1, sizeof *offs);
	rc = !names || !parts || !offs ? mq_err_set(err, MQ_ENOMEM, "out of memory") : 0;
	for (uint32_t i = 0; !rc && i < n; i++) {
		if (pos[i].topic >= ntopics) {
			rc = mq_err_set(err, MQ_EINVAL, "a fetch position names topic %u of %u", pos[i].topic, ntopics);
			break;
		}
		kf->pos[i] = (kpos_t){.topic = pos[i].topic, .part = (int32_t)pos[i].partition,
				      .next = (int64_t)pos[i].offset, .last = -1};
		names[i] = topics[pos[i].topic];
		parts[i] = (int32_t)pos[i].partition;
		offs[i] = (int64_t)pos[i].offset;
	}
	kf->n = n;
	if (!rc)
		rc = mq_kafka_assign(c->kafka, names, parts, offs, n, err);
	free(names), free(parts), free(offs);
	kf->assigned = rc == 0;
	const mq_kafka_tp_t *own;
	uint32_t nown;
	kf->gen = mq_kafka_assignment(c->kafka, &own, &nown);
	return rc;
}

/* mq_kafka_consume's take: the record into its position's batches. */
static int take(void *ctx, const mq_kafka_msg_t *m)
{
	mq_kfetch_t *kf = ctx;
	uint32_t i = kf->hint;
	if (i >= kf->n || kf->pos[i].part != m->partition || strcmp(kf->topics[kf->pos[i].topic], m->topic))
		for (i = 0; i < kf->n; i++)
			if (kf->pos[i].part == m->partition && !strcmp(kf->topics[kf->pos[i].topic], m->topic))
				break;
	if (i == kf->n)
		return 0; /* of an assignment left behind */
	kf->hint = i;
	kpos_t *k = &kf->pos[i];
	if (m->offset < k->next)
		return 0; /* seen already */
	if (k->open && (m->offset != k->last + 1 || mq_batch_size(&k->b) > KBATCH_BYTES)) {
		size_t at = k->b.start;
		if (mq_batch_finish(&k->b))
			mq_batch_set_base(k->buf.p + at, k->from);
		k->open = 0;
	}
	if (!k->open) {
		mq_batch_begin(&k->b, &k->buf);
		k->open = 1;
		k->from = (uint64_t)m->offset;
	}
	if (mq_batch_add(&k->b, m->timestamp > 0 ? m->timestamp : 0, m->key, m->key_len, m->value, m->value_len, m->id, m->id_len, m->headers,
			 m->nheaders))
		return mq_err_set(&kf->err, MQ_ENOMEM, "out of memory");
	k->last = m->offset;
	k->next = m->offset + 1;
	return 0;
}

/* The reply: an entry per position, its batches copied into one block. */
static int make_reply(mq_client_t *c, mq_fetch_reply_t *r, mq_err_t *err)
{
	mq_kfetch_t *kf = c->kf;
	size_t total = 0;
	for (uint32_t i = 0; i < kf->n; i++) {
		kpos_t *k = &kf->pos[i];
		if (k->open) {
			size_t at = k->b.start;
			if (mq_batch_finish(&k->b))
				mq_batch_set_base(k->buf.p + at, k->from);
			k->open = 0;
		}
		total += k->buf.len;
	}
	if (r->cap < kf->n) {
		mq_fetch_entry_t *e = realloc(r->e, (kf->n ? kf->n : 1) * sizeof *e);
		if (!e)
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
		r->e = e;
		r->cap = kf->n;
	}
	if (total > kf->block_cap) {
		size_t cap = total + total / 2;
		uint8_t *nb = realloc(kf->block, cap); /* nothing in it is needed now */
		if (!nb)
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
		kf->block = nb;
		kf->block_cap = cap;
	}
	uint8_t *block = kf->block;
	r->own = NULL;
	r->lite = 1; /* kf->block holds the bytes, frames nothing */
	size_t off = 0;
	for (uint32_t i = 0; i < kf->n; i++) {
		kpos_t *k = &kf->pos[i];
		/* unknown: a little past where it stands, so the reader goes on asking */
		int64_t end = mq_kafka_cached_end(c->kafka, kf->topics[k->topic], k->part);
		r->e[i] = (mq_fetch_entry_t){.topic = k->topic, .partition = (uint32_t)k->part,
					     .end = end >= k->next ? (uint64_t)end : (uint64_t)k->next + (end < 0),
					     .next = (uint64_t)k->next, .sparse = 1};
		if (k->buf.len) {
			memcpy(block + off, k->buf.p, k->buf.len);
			r->e[i].data = block + off;
			r->e[i].nbytes = k->buf.len;
			off += k->buf.len;
			k->buf.len = 0;
		}
	}
	r->n = kf->n;
	return 0;
}

/* Wait for records, the watched descriptor or a wake-up, until until. */
static int kafka_wait(mq_client_t *c, int64_t until, mq_err_t *err)
{
	struct pollfd f[3] = {{mq_kafka_consumer_fd(c->kafka), POLLIN, 0}};
	int n = 1, wake = -1;
	if (c->watch_fd >= 0)
		f[n++] = (struct pollfd){c->watch_fd, c->watch_events ? c->watch_events : POLLIN, 0};
	if (c->wake_fd >= 0)
		f[wake = n++] = (struct pollfd){c->wake_fd, POLLIN, 0};
	int64_t left = until - mq_mono_ms();
	int r = poll(f, (nfds_t)n, left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left);
	if (r < 0 && errno != EINTR)
		return mq_err_sys(err, "waiting for the Kafka cluster");
	if (wake >= 0 && f[wake].revents) {
		mq_drain_fd(c->wake_fd);
		return mq_err_set(err, MQ_EAGAIN, "interrupted");
	}
	if (n > 1 && c->watch_fd >= 0 && f[1].revents)
		return mq_err_set(err, MQ_EAGAIN, "the watched descriptor is ready");
	return 0;
}

int mq_cl_kafka_fetch_recv(mq_client_t *c, mq_fetch_reply_t *r, int wait_ms, mq_err_t *err)
{
	mq_kfetch_t *kf = c->kf;
	if (!c->fetch_state || !kf)
		return mq_err_set(err, MQ_EINVAL, "no fetch outstanding");
	int64_t now = mq_mono_ms(), due = c->fetch_sent + kf->wait_ms;
	int64_t until = wait_ms < 0 ? due : mq_cl_after(now, wait_ms) < due ? mq_cl_after(now, wait_ms) : due;
	for (;;) {
		kf->err.code = 0;
		int got = mq_kafka_consume(c->kafka, 0, kf->max_bytes, take, kf, err);
		if (got < 0)
			return kf->err.code ? (*err = kf->err, -kf->err.code) : got;
		if (got > 0 || mq_mono_ms() >= due)
			break;
		if (mq_mono_ms() >= until)
			return -MQ_EAGAIN; /* still outstanding */
		int rc = kafka_wait(c, until, err);
		if (rc)
			return rc;
	}
	c->fetch_state = 0;
	return make_reply(c, r, err);
}
