/*
 * expiry.c -- see expiry.h.
 *
 * The marks are a plain array searched linearly: an entry exists only
 * for a partition where something expired, and a fetch looks it up only
 * when it skipped something.  A hash on "topic/partition" replaces it
 * when brokers with many thousands of such partitions appear.  Marks and
 * counts live in memory, like the broker's other counters: they start
 * from zero when mq-serve starts.
 */
#include "expiry.h"

#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "store.h"

typedef struct mark {
	uint32_t topic; /* index into topics */
	uint32_t partition;
	uint64_t to; /* offsets below were counted */
} mark_t;

typedef struct tcount {
	char name[MQ_NAME_MAX + 1];
	uint64_t count;
} tcount_t;

struct mq_expiry {
	mark_t *mark;
	size_t nmark, capmark;
	tcount_t *topic;
	uint32_t ntopic, captopic;
	uint64_t total;
};

void mq_expiry_cut(const uint8_t *p, size_t len, int64_t now_ms, mq_expiry_cut_t *c)
{
	size_t pos = 0;
	mq_batch_hdr_t h;
	memset(c, 0, sizeof(*c));
	while (pos < len && mq_batch_hdr_decode(p + pos, len - pos, &h, NULL) == 0 && h.length <= len - pos) {
		if (mq_expired(h.expire_at, now_ms)) {
			if (!c->expired)
				c->from = h.base_offset;
			c->expired += h.count;
			c->next = h.base_offset + h.count;
		} else if (c->expired) {
			break;
		} else {
			c->keep = pos + h.length;
		}
		pos += h.length;
	}
}

int mq_expiry_new(mq_expiry_t **out, mq_err_t *err)
{
	if (!(*out = calloc(1, sizeof(**out))))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	return 0;
}

void mq_expiry_free(mq_expiry_t *x)
{
	if (!x)
		return;
	free(x->mark);
	free(x->topic);
	free(x);
}

static long topic_index(mq_expiry_t *x, const char *topic)
{
	for (uint32_t i = 0; i < x->ntopic; i++)
		if (!strcmp(x->topic[i].name, topic))
			return i;
	if (strlen(topic) > MQ_NAME_MAX)
		return -1;
	if (x->ntopic == x->captopic) {
		uint32_t cap = x->captopic ? x->captopic * 2 : 8;
		tcount_t *v = realloc(x->topic, cap * sizeof(*v));
		if (!v)
			return -1;
		x->topic = v;
		x->captopic = cap;
	}
	tcount_t *t = &x->topic[x->ntopic];
	strcpy(t->name, topic);
	t->count = 0;
	return x->ntopic++;
}

long long mq_expiry_note(mq_expiry_t *x, const char *topic, uint32_t partition, uint64_t from, uint64_t next,
			 uint64_t log_end)
{
	long ti = topic_index(x, topic);
	if (ti < 0)
		return -MQ_ENOMEM;
	mark_t *m = NULL;
	for (size_t i = 0; i < x->nmark && !m; i++)
		if (x->mark[i].topic == (uint32_t)ti && x->mark[i].partition == partition)
			m = &x->mark[i];
	if (!m) {
		if (x->nmark == x->capmark) {
			size_t cap = x->capmark ? x->capmark * 2 : 16;
			mark_t *v = realloc(x->mark, cap * sizeof(*v));
			if (!v)
				return -MQ_ENOMEM;
			x->mark = v;
			x->capmark = cap;
		}
		m = &x->mark[x->nmark++];
		*m = (mark_t){(uint32_t)ti, partition, 0};
	}
	if (m->to > log_end)
		m->to = 0; /* the topic was deleted and made again */
	if (from < m->to)
		from = m->to;
	if (next <= from)
		return 0;
	uint64_t n = next - from;
	m->to = next;
	x->topic[ti].count += n;
	x->total += n;
	return (long long)n;
}

uint32_t mq_expiry_topics(const mq_expiry_t *x)
{
	return x->ntopic;
}

const char *mq_expiry_topic(const mq_expiry_t *x, uint32_t i, uint64_t *count)
{
	*count = x->topic[i].count;
	return x->topic[i].name;
}

uint64_t mq_expiry_total(const mq_expiry_t *x)
{
	return x->total;
}
