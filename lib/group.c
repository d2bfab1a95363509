/*
 * group.c -- consumer groups: members, assignment, sessions and
 * committed offsets (the rules are in group.h).
 *
 * Sizes are small (a few groups, a few members, up to thousands of
 * partitions), so groups and members live in plain arrays searched
 * linearly; a partition's owner and target are member pointers, which
 * stay valid because members are allocated one by one.
 */
#include "group.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "batch.h"
#include "crc32c.h"

#define COMPACT_BYTES (16u << 20)

typedef struct member {
	char id[MQ_MEMBER_MAX + 1];
	char client[64];
	char **topics;
	uint32_t ntopics;
	int64_t session_ms;
	int64_t last_seen;
	uint64_t acked;
} member_t;

typedef struct hist {
	mq_lag_point_t pt[MQ_GROUP_HISTORY];
	uint32_t n, head; /* head: where the next sample goes */
} hist_t;

typedef struct gtopic {
	char name[MQ_NAME_MAX + 1];
	uint32_t partitions;
	int64_t *committed; /* -1: none */
	hist_t *hist;
	member_t **owner;
	member_t **target;
} gtopic_t;

typedef struct group {
	char name[MQ_NAME_MAX + 1];
	uint64_t generation;
	member_t **members;
	uint32_t nmembers;
	gtopic_t *topics;
	uint32_t ntopics;
} group_t;

struct mq_groups {
	mq_store_t *store;
	mq_log_t *log;
	group_t *groups;
	uint32_t ngroups;
	uint64_t next_member;
	uint64_t live_entries; /* committed offsets held, for compaction */
	mq_buf_t buf;
	char *state_dir;
};

void mq_assignment_free(mq_assignment_t *a)
{
	free(a->tp);
	memset(a, 0, sizeof(*a));
}

static int assign_push(mq_assignment_t *a, const char *topic, uint32_t p)
{
	if (a->n == a->cap) {
		uint32_t cap = a->cap ? a->cap * 2 : 16;
		mq_tp_t *t = realloc(a->tp, cap * sizeof(*t));
		if (!t)
			return -MQ_ENOMEM;
		a->tp = t;
		a->cap = cap;
	}
	a->tp[a->n++] = (mq_tp_t){topic, p};
	return 0;
}

/* ---- lookup ---- */

static group_t *group_find(mq_groups_t *g, const char *name, int create)
{
	for (uint32_t i = 0; i < g->ngroups; i++)
		if (!strcmp(g->groups[i].name, name))
			return &g->groups[i];
	if (!create)
		return NULL;
	group_t *p = realloc(g->groups, (g->ngroups + 1) * sizeof(*p));
	if (!p)
		return NULL;
	g->groups = p;
	group_t *gr = &g->groups[g->ngroups++];
	memset(gr, 0, sizeof(*gr));
	snprintf(gr->name, sizeof(gr->name), "%s", name);
	return gr;
}

/* Make room for partitions [0, n) of t. */
static int gtopic_grow(gtopic_t *t, uint32_t n)
{
	if (n <= t->partitions)
		return 0;
	int64_t *c = realloc(t->committed, n * sizeof(*c));
	if (!c)
		return -MQ_ENOMEM;
	t->committed = c;
	member_t **o = realloc(t->owner, n * sizeof(*o));
	if (!o)
		return -MQ_ENOMEM;
	t->owner = o;
	member_t **tg = realloc(t->target, n * sizeof(*tg));
	if (!tg)
		return -MQ_ENOMEM;
	t->target = tg;
	hist_t *h = realloc(t->hist, n * sizeof(*h));
	if (!h)
		return -MQ_ENOMEM;
	t->hist = h;
	for (uint32_t i = t->partitions; i < n; i++) {
		c[i] = -1;
		o[i] = NULL;
		tg[i] = NULL;
		h[i].n = h[i].head = 0;
	}
	t->partitions = n;
	return 0;
}

static gtopic_t *gtopic_find(group_t *gr, const char *topic, int create)
{
	for (uint32_t i = 0; i < gr->ntopics; i++)
		if (!strcmp(gr->topics[i].name, topic))
			return &gr->topics[i];
	if (!create)
		return NULL;
	gtopic_t *p = realloc(gr->topics, (gr->ntopics + 1) * sizeof(*p));
	if (!p)
		return NULL;
	gr->topics = p;
	gtopic_t *t = &gr->topics[gr->ntopics++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", topic);
	return t;
}

static member_t *member_find(group_t *gr, const char *id)
{
	for (uint32_t i = 0; i < gr->nmembers; i++)
		if (!strcmp(gr->members[i]->id, id))
			return gr->members[i];
	return NULL;
}

static int subscribes(const member_t *m, const char *topic)
{
	for (uint32_t i = 0; i < m->ntopics; i++)
		if (!strcmp(m->topics[i], topic))
			return 1;
	return 0;
}

static int cmp_member(const void *a, const void *b)
{
	return strcmp((*(member_t *const *)a)->id, (*(member_t *const *)b)->id);
}

/* ---- assignment ---- */

/* New generation: refresh partition counts and deal every subscribed
 * topic's partitions round-robin over its members (sorted by id). */
static void rebalance(mq_groups_t *g, group_t *gr)
{
	gr->generation++;
	if (gr->nmembers > 1)
		qsort(gr->members, gr->nmembers, sizeof(member_t *), cmp_member);
	for (uint32_t i = 0; i < gr->nmembers; i++)
		for (uint32_t k = 0; k < gr->members[i]->ntopics; k++)
			gtopic_find(gr, gr->members[i]->topics[k], 1);
	member_t *subs[256];
	for (uint32_t i = 0; i < gr->ntopics; i++) {
		gtopic_t *t = &gr->topics[i];
		mq_topic_meta_t meta;
		if (mq_store_topic_meta(g->store, t->name, &meta, NULL) == 0)
			gtopic_grow(t, meta.partitions);
		uint32_t n = 0;
		for (uint32_t k = 0; k < gr->nmembers && n < 256; k++)
			if (subscribes(gr->members[k], t->name))
				subs[n++] = gr->members[k];
		for (uint32_t p = 0; p < t->partitions; p++)
			t->target[p] = n ? subs[p % n] : NULL;
	}
}

/* Apply member m's acknowledgement, grant it free target partitions,
 * and list what it may consume now (owned and targeted). */
static int settle(group_t *gr, member_t *m, mq_assignment_t *out)
{
	out->n = 0;
	out->generation = gr->generation;
	for (uint32_t i = 0; i < gr->ntopics; i++) {
		gtopic_t *t = &gr->topics[i];
		for (uint32_t p = 0; p < t->partitions; p++) {
			if (m->acked >= gr->generation && t->owner[p] == m && t->target[p] != m)
				t->owner[p] = NULL;
			if (t->target[p] == m && !t->owner[p])
				t->owner[p] = m;
			if (t->owner[p] == m && t->target[p] == m && assign_push(out, t->name, p))
				return -MQ_ENOMEM;
		}
	}
	return 0;
}

static void member_remove(group_t *gr, member_t *m)
{
	for (uint32_t i = 0; i < gr->ntopics; i++)
		for (uint32_t p = 0; p < gr->topics[i].partitions; p++) {
			if (gr->topics[i].owner[p] == m)
				gr->topics[i].owner[p] = NULL;
			if (gr->topics[i].target[p] == m)
				gr->topics[i].target[p] = NULL;
		}
	for (uint32_t i = 0; i < gr->nmembers; i++) {
		if (gr->members[i] == m) {
			memmove(&gr->members[i], &gr->members[i + 1], (gr->nmembers - i - 1) * sizeof(member_t *));
			gr->nmembers--;
			break;
		}
	}
	for (uint32_t k = 0; k < m->ntopics; k++)
		free(m->topics[k]);
	free(m->topics);
	free(m);
}

static int rejoin(mq_groups_t *g, group_t *gr, member_t *m, const char *const *topics, uint32_t ntopics,
		  int64_t session_ms, int64_t now, char *member_out, mq_assignment_t *out, mq_err_t *err)
{
	char **v = calloc(ntopics ? ntopics : 1, sizeof(char *));
	uint32_t n = 0;
	while (v && n < ntopics && (v[n] = strdup(topics[n])))
		n++;
	if (!v || n < ntopics) {
		for (uint32_t i = 0; v && i < n; i++)
			free(v[i]);
		free(v);
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	for (uint32_t k = 0; k < m->ntopics; k++)
		free(m->topics[k]);
	free(m->topics);
	m->topics = v;
	m->ntopics = ntopics;
	m->session_ms = session_ms > 0 ? session_ms : 10000;
	m->last_seen = now;
	rebalance(g, gr);
	snprintf(member_out, MQ_MEMBER_MAX + 1, "%s", m->id);
	if (settle(gr, m, out))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	return 0;
}

int mq_groups_join(mq_groups_t *g, const char *group, const char *const *topics, uint32_t ntopics,
		   const char *member, int64_t session_ms, int64_t now, char *member_out,
		   mq_assignment_t *out, mq_err_t *err)
{
	group_t *gr = group_find(g, group, 1);
	if (!gr)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	member_t *m = member[0] ? member_find(gr, member) : NULL;
	if (m) /* joining again: new topics; it keeps what it owns until it acks */
		return rejoin(g, gr, m, topics, ntopics, session_ms, now, member_out, out, err);
	m = calloc(1, sizeof(*m));
	member_t **mv = m ? realloc(gr->members, (gr->nmembers + 1) * sizeof(*mv)) : NULL;
	if (!m || !mv || !(m->topics = calloc(ntopics ? ntopics : 1, sizeof(char *)))) {
		if (mv)
			gr->members = mv;
		free(m);
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	gr->members = mv;
	for (uint32_t i = 0; i < ntopics; i++) {
		if (!(m->topics[i] = strdup(topics[i]))) {
			member_remove(gr, m);
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
		}
		m->ntopics++;
	}
	if (member[0]) {
		snprintf(m->id, sizeof(m->id), "%s", member);
	} else {
		uint32_t r = 0;
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (uint32_t)now;
		snprintf(m->id, sizeof(m->id), "m-%08x-%" PRIu64, r, ++g->next_member);
	}
	m->session_ms = session_ms > 0 ? session_ms : 10000;
	m->last_seen = now;
	gr->members[gr->nmembers++] = m;
	rebalance(g, gr);
	m->acked = gr->generation; /* a new member has nothing to give back */
	snprintf(member_out, MQ_MEMBER_MAX + 1, "%s", m->id);
	if (settle(gr, m, out))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	return 0;
}

int mq_groups_heartbeat(mq_groups_t *g, const char *group, const char *member, uint64_t acked, int64_t now,
			mq_assignment_t *out, mq_err_t *err)
{
	group_t *gr = group_find(g, group, 0);
	member_t *m = gr ? member_find(gr, member) : NULL;
	if (!m)
		return mq_err_set(err, MQ_ENOENT, "group '%s' has no member '%s' (its session expired: join again)",
				  group, member);
	m->last_seen = now;
	if (acked > m->acked && acked <= gr->generation)
		m->acked = acked;
	if (settle(gr, m, out))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	return 0;
}

int mq_groups_leave(mq_groups_t *g, const char *group, const char *member, mq_err_t *err)
{
	group_t *gr = group_find(g, group, 0);
	member_t *m = gr ? member_find(gr, member) : NULL;
	if (!m)
		return mq_err_set(err, MQ_ENOENT, "group '%s' has no member '%s'", group, member);
	member_remove(gr, m);
	rebalance(g, gr);
	return 0;
}

int mq_groups_owns(mq_groups_t *g, const char *group, const char *member, const char *topic, uint32_t p)
{
	if (!group || !group[0])
		return 1;
	group_t *gr = group_find(g, group, 0);
	gtopic_t *t = gr ? gtopic_find(gr, topic, 0) : NULL;
	return t && p < t->partitions && t->owner[p] && !strcmp(t->owner[p]->id, member ? member : "");
}

int mq_groups_tick(mq_groups_t *g, int64_t now)
{
	int moved = 0;
	for (uint32_t i = 0; i < g->ngroups; i++) {
		group_t *gr = &g->groups[i];
		int expired = 0;
		for (uint32_t k = 0; k < gr->nmembers;) {
			member_t *m = gr->members[k];
			if (now - m->last_seen > m->session_ms) {
				member_remove(gr, m);
				expired = 1;
			} else {
				k++;
			}
		}
		if (expired) {
			rebalance(g, gr);
			moved++;
		}
	}
	return moved;
}

int64_t mq_groups_next_expiry(const mq_groups_t *g)
{
	int64_t next = INT64_MAX;
	for (uint32_t i = 0; i < g->ngroups; i++)
		for (uint32_t k = 0; k < g->groups[i].nmembers; k++) {
			const member_t *m = g->groups[i].members[k];
			/* mq_groups_tick expires after session_ms, strictly */
			if (m->last_seen + m->session_ms + 1 < next)
				next = m->last_seen + m->session_ms + 1;
		}
	return next;
}

void mq_groups_topic_changed(mq_groups_t *g, const char *topic)
{
	for (uint32_t i = 0; i < g->ngroups; i++) {
		group_t *gr = &g->groups[i];
		for (uint32_t k = 0; k < gr->nmembers; k++)
			if (subscribes(gr->members[k], topic)) {
				rebalance(g, gr);
				break;
			}
	}
}

uint64_t mq_groups_generation(mq_groups_t *g, const char *group)
{
	group_t *gr = group && group[0] ? group_find(g, group, 0) : NULL;
	return gr ? gr->generation : 0;
}

/* ---- committed offsets ---- */

static int set_committed(mq_groups_t *g, const char *group, const char *topic, uint32_t p, uint64_t off)
{
	group_t *gr = group_find(g, group, 1);
	gtopic_t *t = gr ? gtopic_find(gr, topic, 1) : NULL;
	if (!t || gtopic_grow(t, p + 1))
		return -MQ_ENOMEM;
	if (t->committed[p] < 0)
		g->live_entries++;
	t->committed[p] = (int64_t)off;
	return 0;
}

int mq_groups_committed(mq_groups_t *g, const char *group, const char *topic, uint32_t p, uint64_t *offset)
{
	group_t *gr = group_find(g, group, 0);
	gtopic_t *t = gr ? gtopic_find(gr, topic, 0) : NULL;
	if (!t || p >= t->partitions || t->committed[p] < 0)
		return 0;
	*offset = (uint64_t)t->committed[p];
	return 1;
}

/* Append records "group\0topic\0p" = "offset" for the given entries. */
static int log_commits(mq_groups_t *g, const char *group, const char *topic, const uint32_t *parts,
		       const uint64_t *offsets, uint32_t n, mq_err_t *err)
{
	mq_batch_builder_t b;
	char key[2 * MQ_NAME_MAX + 16], val[24];
	size_t gl = strlen(group), tl = strlen(topic);
	int64_t now = mq_now_ms();
	g->buf.len = 0;
	mq_batch_begin(&b, &g->buf);
	for (uint32_t i = 0; i < n; i++) {
		memcpy(key, group, gl + 1);
		memcpy(key + gl + 1, topic, tl + 1);
		int kl = snprintf(key + gl + tl + 2, 12, "%u", parts[i]);
		int vl = snprintf(val, sizeof(val), "%" PRIu64, offsets[i]);
		if (mq_batch_add(&b, now, key, gl + tl + 2 + (size_t)kl, val, (size_t)vl, NULL, 0, NULL, 0))
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	if (!mq_batch_finish(&b))
		return 0;
	uint64_t base;
	return mq_log_append(g->log, g->buf.p, g->buf.len, &base, err);
}

/* A record that forgets one offset (replayed as "no commit"). */
static int log_tombstone(mq_groups_t *g, const char *group, const char *topic, uint32_t p, mq_err_t *err)
{
	mq_batch_builder_t b;
	char key[2 * MQ_NAME_MAX + 16];
	size_t gl = strlen(group), tl = strlen(topic);
	g->buf.len = 0;
	mq_batch_begin(&b, &g->buf);
	memcpy(key, group, gl + 1);
	memcpy(key + gl + 1, topic, tl + 1);
	int kl = snprintf(key + gl + tl + 2, 12, "%u", p);
	if (mq_batch_add(&b, mq_now_ms(), key, gl + tl + 2 + (size_t)kl, "-", 1, NULL, 0, NULL, 0))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	mq_batch_finish(&b);
	uint64_t base;
	return mq_log_append(g->log, g->buf.p, g->buf.len, &base, err);
}

/* Rewrite the live offsets into a fresh segment and drop the older ones. */
static int compact(mq_groups_t *g, mq_err_t *err)
{
	int rc = mq_log_roll(g->log, err);
	if (rc)
		return rc;
	uint64_t start = mq_log_end(g->log);
	for (uint32_t i = 0; i < g->ngroups; i++) {
		group_t *gr = &g->groups[i];
		for (uint32_t k = 0; k < gr->ntopics; k++) {
			gtopic_t *t = &gr->topics[k];
			for (uint32_t p = 0; p < t->partitions; p++) {
				if (t->committed[p] < 0)
					continue;
				uint64_t off = (uint64_t)t->committed[p];
				if ((rc = log_commits(g, gr->name, t->name, &p, &off, 1, err)))
					return rc;
			}
		}
	}
	if ((rc = mq_log_sync(g->log, err)))
		return rc;
	rc = mq_log_delete_before(g->log, start, err);
	return rc < 0 ? rc : 0;
}

int mq_groups_commit(mq_groups_t *g, const char *group, const char *member, const char *topic,
		     const uint32_t *parts, const uint64_t *offsets, uint32_t n, mq_err_t *err)
{
	for (uint32_t i = 0; i < n; i++)
		if (!mq_groups_owns(g, group, member, topic, parts[i]))
			return mq_err_set(err, MQ_EBUSY,
					  "member '%s' of group '%s' does not own partition %u of topic '%s'", member,
					  group, parts[i], topic);
	int rc = log_commits(g, group, topic, parts, offsets, n, err);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < n; i++)
		if (set_committed(g, group, topic, parts[i], offsets[i]))
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
	if (mq_log_bytes(g->log) > COMPACT_BYTES && mq_log_bytes(g->log) > g->live_entries * 256)
		return compact(g, err);
	return 0;
}

int mq_groups_commit_log(mq_groups_t *g, int64_t now_mono, mq_err_t *err)
{
	return mq_log_commit(g->log, now_mono, err);
}

/* ---- administration ---- */

void mq_groups_set_client(mq_groups_t *g, const char *group, const char *member, const char *client)
{
	group_t *gr = group_find(g, group, 0);
	member_t *m = gr ? member_find(gr, member) : NULL;
	if (m)
		snprintf(m->client, sizeof(m->client), "%s", client);
}

static int has_offsets(const group_t *gr)
{
	for (uint32_t k = 0; k < gr->ntopics; k++)
		for (uint32_t p = 0; p < gr->topics[k].partitions; p++)
			if (gr->topics[k].committed[p] >= 0)
				return 1;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int mq_groups_names(mq_groups_t *g, const char ***names, uint32_t *n)
{
	const char **v = malloc((g->ngroups ? g->ngroups : 1) * sizeof(*v));
	if (!v)
		return -MQ_ENOMEM;
	*n = 0;
	for (uint32_t i = 0; i < g->ngroups; i++)
		if (g->groups[i].nmembers || has_offsets(&g->groups[i]))
			v[(*n)++] = g->groups[i].name;
	qsort(v, *n, sizeof(*v), cmp_str);
	*names = v;
	return 0;
}

int mq_groups_exists(mq_groups_t *g, const char *group)
{
	group_t *gr = group_find(g, group, 0);
	return gr && (gr->nmembers || has_offsets(gr));
}

uint32_t mq_groups_live(mq_groups_t *g, const char *group)
{
	group_t *gr = group_find(g, group, 0);
	return gr ? gr->nmembers : 0;
}

int mq_groups_members(mq_groups_t *g, const char *group, int64_t now, mq_member_view_t **out, uint32_t *n)
{
	group_t *gr = group_find(g, group, 0);
	*n = 0;
	*out = malloc((gr && gr->nmembers ? gr->nmembers : 1) * sizeof(**out));
	if (!*out)
		return -MQ_ENOMEM;
	for (uint32_t i = 0; gr && i < gr->nmembers; i++) {
		member_t *m = gr->members[i];
		uint32_t owned = 0;
		for (uint32_t k = 0; k < gr->ntopics; k++)
			for (uint32_t p = 0; p < gr->topics[k].partitions; p++)
				owned += gr->topics[k].owner[p] == m;
		(*out)[(*n)++] = (mq_member_view_t){m->id, m->client, now - m->last_seen, owned};
	}
	return 0;
}

int mq_groups_topics(mq_groups_t *g, const char *group, const char ***out, uint32_t *n)
{
	group_t *gr = group_find(g, group, 0);
	*n = 0;
	*out = malloc((gr && gr->ntopics ? gr->ntopics : 1) * sizeof(**out));
	if (!*out)
		return -MQ_ENOMEM;
	for (uint32_t k = 0; gr && k < gr->ntopics; k++) {
		gtopic_t *t = &gr->topics[k];
		int used = 0;
		for (uint32_t i = 0; i < gr->nmembers && !used; i++)
			used = subscribes(gr->members[i], t->name);
		for (uint32_t p = 0; p < t->partitions && !used; p++)
			used = t->committed[p] >= 0;
		if (used)
			(*out)[(*n)++] = t->name;
	}
	qsort(*out, *n, sizeof(**out), cmp_str);
	return 0;
}

const char *mq_groups_owner(mq_groups_t *g, const char *group, const char *topic, uint32_t p)
{
	group_t *gr = group_find(g, group, 0);
	gtopic_t *t = gr ? gtopic_find(gr, topic, 0) : NULL;
	return t && p < t->partitions && t->owner[p] ? t->owner[p]->id : NULL;
}

uint32_t mq_groups_history(mq_groups_t *g, const char *group, const char *topic, uint32_t p, mq_lag_point_t *out)
{
	group_t *gr = group_find(g, group, 0);
	gtopic_t *t = gr ? gtopic_find(gr, topic, 0) : NULL;
	if (!t || p >= t->partitions)
		return 0;
	const hist_t *h = &t->hist[p];
	uint32_t first = (h->head + MQ_GROUP_HISTORY - h->n) % MQ_GROUP_HISTORY;
	for (uint32_t i = 0; i < h->n; i++)
		out[i] = h->pt[(first + i) % MQ_GROUP_HISTORY];
	return h->n;
}

static void history_push(gtopic_t *t, uint32_t p, const mq_lag_point_t *x)
{
	hist_t *h = &t->hist[p];
	h->pt[h->head] = *x;
	h->head = (h->head + 1) % MQ_GROUP_HISTORY;
	if (h->n < MQ_GROUP_HISTORY)
		h->n++;
}

void mq_groups_sample(mq_groups_t *g, int64_t now_ms, int64_t (*end)(void *ctx, const char *topic, uint32_t p),
		      void *ctx)
{
	for (uint32_t i = 0; i < g->ngroups; i++) {
		group_t *gr = &g->groups[i];
		for (uint32_t k = 0; k < gr->ntopics; k++) {
			gtopic_t *t = &gr->topics[k];
			mq_topic_meta_t meta;
			if (mq_store_topic_meta(g->store, t->name, &meta, NULL) == 0)
				gtopic_grow(t, meta.partitions);
			for (uint32_t p = 0; p < t->partitions; p++) {
				int64_t e = end(ctx, t->name, p);
				if (e < 0)
					continue;
				history_push(t, p, &(mq_lag_point_t){now_ms, t->committed[p], (uint64_t)e});
			}
		}
	}
}

int mq_groups_set_offsets(mq_groups_t *g, const char *group, const char *topic, const uint32_t *parts,
			  const uint64_t *offsets, uint32_t n, mq_err_t *err)
{
	uint32_t live = mq_groups_live(g, group);
	if (live)
		return mq_err_set(err, MQ_EBUSY, "group '%s' has %u live member%s: stop them first (offsets move only "
				  "while nobody reads)", group, live, live == 1 ? "" : "s");
	int rc = log_commits(g, group, topic, parts, offsets, n, err);
	for (uint32_t i = 0; rc == 0 && i < n; i++)
		if (set_committed(g, group, topic, parts[i], offsets[i]))
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	return rc;
}

/* Append tombstones ("group\0topic\0p" = "-") for every offset of gr on t. */
static int forget_offsets(mq_groups_t *g, group_t *gr, gtopic_t *t, mq_err_t *err)
{
	for (uint32_t p = 0; p < t->partitions; p++) {
		if (t->committed[p] < 0)
			continue;
		int rc = log_tombstone(g, gr->name, t->name, p, err);
		if (rc)
			return rc;
		t->committed[p] = -1;
		g->live_entries--;
	}
	return 0;
}

static void gtopic_free(gtopic_t *t)
{
	free(t->committed);
	free(t->owner);
	free(t->target);
	free(t->hist);
}

int mq_groups_delete(mq_groups_t *g, const char *group, mq_err_t *err)
{
	group_t *gr = group_find(g, group, 0);
	if (!mq_groups_exists(g, group))
		return mq_err_set(err, MQ_ENOENT, "no group '%s'", group);
	if (gr->nmembers)
		return mq_err_set(err, MQ_EBUSY, "group '%s' has %u live member%s: stop them first", group,
				  gr->nmembers, gr->nmembers == 1 ? "" : "s");
	for (uint32_t k = 0; k < gr->ntopics; k++) {
		int rc = forget_offsets(g, gr, &gr->topics[k], err);
		if (rc)
			return rc;
	}
	for (uint32_t k = 0; k < gr->ntopics; k++)
		gtopic_free(&gr->topics[k]);
	free(gr->topics);
	free(gr->members);
	*gr = g->groups[--g->ngroups];
	return 0;
}

uint32_t mq_groups_topic_readers(mq_groups_t *g, const char *topic, char *buf, size_t size)
{
	uint32_t n = 0;
	size_t len = 0;
	if (size)
		buf[0] = 0;
	for (uint32_t i = 0; i < g->ngroups; i++) {
		group_t *gr = &g->groups[i];
		int reads = 0;
		for (uint32_t k = 0; k < gr->nmembers && !reads; k++)
			reads = subscribes(gr->members[k], topic);
		if (!reads)
			continue;
		if (len < size)
			len += (size_t)snprintf(buf + len, size - len, "%s'%s'", n ? ", " : "", gr->name);
		n++;
	}
	return n;
}

int mq_groups_topic_deleted(mq_groups_t *g, const char *topic, mq_err_t *err)
{
	for (uint32_t i = 0; i < g->ngroups; i++) {
		group_t *gr = &g->groups[i];
		gtopic_t *t = gtopic_find(gr, topic, 0);
		if (!t)
			continue;
		int rc = forget_offsets(g, gr, t, err);
		if (rc)
			return rc;
		gtopic_free(t);
		*t = gr->topics[--gr->ntopics];
		rebalance(g, gr); /* members reading it give it up */
	}
	return 0;
}

/* ---- open / close ---- */

/* Replay of the offsets log, read with mq_log_scan before the log is
 * opened: opening cuts a damaged tail silently, and what was cut must be
 * reported.  Damage anywhere costs the commits in the rest of its file;
 * the first fault is what gets reported. */
typedef struct replay {
	mq_groups_t *g;
	uint64_t commits;       /* records replayed */
	uint64_t batches;
	uint64_t faults;
	uint64_t commits_before; /* records replayed before the first fault */
	char fault[1024];
} replay_t;

static void replay_record(mq_groups_t *g, const mq_record_t *r, int *nomem)
{
	if (!r->key)
		return; /* not ours: every commit has a key */
	const char *k = (const char *)r->key, *end = k + r->key_len;
	const char *t = memchr(k, 0, r->key_len);
	const char *pp = t ? memchr(t + 1, 0, (size_t)(end - t - 1)) : NULL;
	char num[24], grp[MQ_NAME_MAX + 1], top[MQ_NAME_MAX + 1];
	if (!pp || r->value_len >= sizeof(num) || (size_t)(t - k) > MQ_NAME_MAX || (size_t)(pp - t - 1) > MQ_NAME_MAX ||
	    (size_t)(end - pp - 1) >= sizeof(num))
		return; /* not ours: skip */
	memcpy(grp, k, (size_t)(t - k) + 1);
	memcpy(top, t + 1, (size_t)(pp - t));
	memcpy(num, pp + 1, (size_t)(end - pp - 1));
	num[end - pp - 1] = 0;
	uint32_t p = (uint32_t)strtoul(num, NULL, 10);
	memcpy(num, r->value, r->value_len);
	num[r->value_len] = 0;
	if (!strcmp(num, "-")) { /* tombstone */
		group_t *gr = group_find(g, grp, 0);
		gtopic_t *gt = gr ? gtopic_find(gr, top, 0) : NULL;
		if (gt && p < gt->partitions && gt->committed[p] >= 0) {
			gt->committed[p] = -1;
			g->live_entries--;
		}
		return;
	}
	if (set_committed(g, grp, top, p, strtoull(num, NULL, 10)))
		*nomem = 1;
}

static int replay_batch(void *ctx, const uint8_t *batch, size_t len, const char *seg, uint64_t pos)
{
	replay_t *rs = ctx;
	mq_batch_iter_t it;
	mq_record_t r;
	mq_err_t e;
	int nomem = 0;
	(void)seg;
	(void)pos;
	if (mq_batch_iter_init(&it, batch, len, &e))
		return 0; /* the scan checked it: cannot happen */
	while (!nomem && mq_batch_iter_next(&it, &r) > 0) {
		replay_record(rs->g, &r, &nomem);
		rs->commits++;
	}
	rs->batches++;
	return nomem ? -MQ_ENOMEM : 0;
}

static void replay_fault(void *ctx, const char *msg)
{
	replay_t *rs = ctx;
	if (!rs->faults++) {
		snprintf(rs->fault, sizeof(rs->fault), "%s", msg);
		rs->commits_before = rs->commits;
	}
}

static int replay(mq_groups_t *g, const char *dir, replay_t *rs, mq_err_t *err)
{
	struct stat st;
	memset(rs, 0, sizeof(*rs));
	rs->g = g;
	if (stat(dir, &st) < 0)
		return 0; /* first start: mq_log_open makes it */
	int rc = mq_log_scan(dir, 0, replay_batch, replay_fault, rs, err);
	if (rc == -MQ_ENOMEM)
		return mq_err_set(err, MQ_ENOMEM, "out of memory replaying the offsets log '%s'", dir);
	if (rc < 0)
		return rc;
	/* No batch at all: a log emptied (cut to 0 bytes) looks like a new
	 * one, but its index still remembers batches; the offline check
	 * tells the two apart. */
	if (rs->batches == 0 && rs->faults == 0)
		mq_log_verify(dir, replay_fault, rs, err); /* unreadable: mq_log_open will say so */
	return 0;
}

/* ---- lag history on disk ----
 *
 * DIR/state/lag-history, text: a line "mq-lag-history 2", then one line
 * per sample "GROUP TOPIC PARTITION MS COMMITTED END CRC", oldest first
 * per partition, then "end COUNT CRC", where CRC is the CRC-32C of the
 * line before the blank in front of it, in 8 lowercase hex digits.
 * Names hold no blanks (name rules).  Format 1 (no CRCs) is still read.
 * It is monitoring data: a damaged file keeps the samples before the
 * damage, and the loss is reported. */

#define HISTORY_FILE "lag-history"

/* line[0, len) gets " CRC\n" appended (room for 10 more bytes). */
static size_t history_seal(char *line, size_t len)
{
	return len + (size_t)snprintf(line + len, 11, " %08" PRIx32 "\n", mq_crc32c(0, line, len));
}

int mq_groups_history_save(mq_groups_t *g, mq_err_t *err)
{
	mq_buf_t b = {0};
	char line[2 * MQ_NAME_MAX + 112];
	uint64_t n = 0;
	int rc = mq_buf_append(&b, "mq-lag-history 2\n", 17);
	for (uint32_t i = 0; rc == 0 && i < g->ngroups; i++) {
		group_t *gr = &g->groups[i];
		for (uint32_t k = 0; rc == 0 && k < gr->ntopics; k++) {
			gtopic_t *t = &gr->topics[k];
			for (uint32_t p = 0; rc == 0 && p < t->partitions; p++) {
				const hist_t *h = &t->hist[p];
				uint32_t first = (h->head + MQ_GROUP_HISTORY - h->n) % MQ_GROUP_HISTORY;
				for (uint32_t j = 0; rc == 0 && j < h->n; j++) {
					const mq_lag_point_t *x = &h->pt[(first + j) % MQ_GROUP_HISTORY];
					int len = snprintf(line, sizeof(line) - 10, "%s %s %u %" PRId64 " %" PRId64 " %" PRIu64,
							   gr->name, t->name, p, x->ms, x->committed, x->end);
					rc = mq_buf_append(&b, line, history_seal(line, (size_t)len));
					n++;
				}
			}
		}
	}
	if (rc == 0) {
		int len = snprintf(line, sizeof(line) - 10, "end %" PRIu64, n);
		rc = mq_buf_append(&b, line, history_seal(line, (size_t)len));
	}
	if (rc)
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	else
		rc = mq_write_file_atomic(g->state_dir, HISTORY_FILE ".tmp", HISTORY_FILE, b.p, b.len, err);
	mq_buf_free(&b);
	return rc;
}

/* Format 2: strip and check the CRC at the end of line (len bytes, the
 * newline included); the line then ends at the blank before the CRC. */
static const char *history_unseal(char *line, size_t len)
{
	if (len < 11 || line[len - 1] != '\n' || line[len - 10] != ' ')
		return "a line without its checksum";
	char *end;
	unsigned long want = strtoul(line + len - 9, &end, 16);
	if (end != line + len - 1 || mq_crc32c(0, line, len - 10) != (uint32_t)want)
		return "a line that fails its checksum";
	line[len - 10] = '\n';
	line[len - 9] = 0;
	return NULL;
}

/* Samples are kept line by line up to the first bad one: a file cut
 * short or changed keeps what came before. */
static void history_load(mq_groups_t *g, mq_report_fn report, void *ctx)
{
	char path[4200], line[2 * MQ_NAME_MAX + 112];
	snprintf(path, sizeof(path), "%s/" HISTORY_FILE, g->state_dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	uint64_t n = 0, want = 0, at = 0, lineno = 1;
	const char *bad = NULL;
	int version = 0;
	if (!fgets(line, sizeof(line), f))
		bad = ferror(f) ? strerror(errno) : "an empty file";
	else if (!strcmp(line, "mq-lag-history 1\n") || !strcmp(line, "mq-lag-history 2\n"))
		version = line[15] - '0';
	else
		bad = "not a lag history file";
	at = bad ? 0 : strlen(line);
	while (!bad) {
		char gn[MQ_NAME_MAX + 1], tn[MQ_NAME_MAX + 1], tail;
		unsigned p;
		mq_lag_point_t x;
		lineno++;
		if (!fgets(line, sizeof(line), f)) {
			bad = "the file ends without its 'end' line (cut short)";
			break;
		}
		size_t len = strlen(line);
		if (version >= 2 && (bad = history_unseal(line, len)))
			break;
		if (sscanf(line, "end %" SCNu64 "%c", &want, &tail) == 2 && tail == '\n') {
			if (want != n)
				bad = "the count on the 'end' line does not match the samples above it";
			else if (fgetc(f) != EOF)
				bad = "more after the 'end' line";
			break;
		}
		if (sscanf(line, "%200s %200s %u %" SCNd64 " %" SCNd64 " %" SCNu64 "%c", gn, tn, &p, &x.ms,
			   &x.committed, &x.end, &tail) != 7 || tail != '\n' || p >= MQ_PARTITIONS_MAX) {
			bad = "a line that is not a sample";
			break;
		}
		group_t *gr = group_find(g, gn, 1);
		gtopic_t *t = gr ? gtopic_find(gr, tn, 1) : NULL;
		if (!t || gtopic_grow(t, p + 1))
			break; /* out of memory: monitoring data, not worth failing for */
		history_push(t, p, &x);
		n++;
		at += len;
	}
	fclose(f);
	if (bad && report) {
		char msg[4400];
		snprintf(msg, sizeof(msg),
			 "%s: damaged at byte %" PRIu64 " (line %" PRIu64 ": %s); kept the %" PRIu64
			 " samples before it, dropped the rest (mq-lag shows a shorter history until it fills again)",
			 path, at, lineno, bad, n);
		report(ctx, msg);
	}
	if (bad) { /* rewritten now, so the damage is reported once */
		mq_err_t e;
		mq_groups_history_save(g, &e);
	}
}

/* A commit past the end of its partition: a power cut (under --fsync
 * never or DURATION) took the tail it was made on and the offsets log
 * kept it.  The group has read everything that is left, so it resumes at
 * the end, where new messages go; left as it was, the group would skip
 * the messages published until the end passed the old commit again.
 * Only partitions with a commit are opened. */
static int clamp_past_end(mq_groups_t *g, mq_report_fn report, void *ctx, mq_err_t *err)
{
	int n = 0;
	for (uint32_t i = 0; g->store && i < g->ngroups; i++) {
		group_t *gr = &g->groups[i];
		for (uint32_t k = 0; k < gr->ntopics; k++) {
			gtopic_t *t = &gr->topics[k];
			for (uint32_t p = 0; p < t->partitions; p++) {
				mq_log_t *log;
				mq_err_t e;
				if (t->committed[p] < 0 || mq_store_log(g->store, t->name, p, &log, &e))
					continue; /* no commit, or no such partition: nothing to move */
				uint64_t end = mq_log_end(log);
				if ((uint64_t)t->committed[p] <= end)
					continue;
				if (report) {
					char line[1024];
					snprintf(line, sizeof(line),
						 "group '%s': the commit at offset %" PRId64 " of topic '%s' partition %u is "
						 "past the end of the partition (%" PRIu64 "; a power cut took its tail): "
						 "the group resumes at the end", gr->name, t->committed[p], t->name, p, end);
					report(ctx, line);
				}
				int rc = log_commits(g, gr->name, t->name, &p, &end, 1, err);
				if (rc)
					return rc;
				t->committed[p] = (int64_t)end;
				n++;
			}
		}
	}
	return n ? mq_log_sync(g->log, err) : 0;
}

int mq_groups_open(const char *state_dir, const mq_log_opts_t *log_opts, mq_store_t *store, mq_report_fn report,
		   void *ctx, mq_groups_t **out, mq_err_t *err)
{
	mq_groups_t *g = calloc(1, sizeof(*g));
	if (!g || !(g->state_dir = strdup(state_dir))) {
		free(g);
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	g->store = store;
	char path[4096];
	snprintf(path, sizeof(path), "%s/offsets", state_dir);
	mq_log_opts_t o = *log_opts;
	o.retention_ms = o.retention_bytes = 0;
	o.segment_bytes = 64u << 20;
	o.report = NULL; /* the replay says what it cut, in the groups' words */
	replay_t rs;
	int rc = replay(g, path, &rs, err);
	if (rc == 0)
		rc = mq_log_open(path, &o, 1, &g->log, err);
	if (rc == 0 && rs.faults) {
		/* What was read is all there is: write it afresh, so the log
		 * holds no damage and the next start says nothing. */
		if (report) {
			char line[1600];
			snprintf(line, sizeof(line),
				 "%s; kept the %" PRIu64 " commits before it, dropped the rest of that file (groups "
				 "resume from an older commit or from the start and may read messages again: "
				 "'mq-lag' shows where each group stands, 'mq-admin group reset' moves one)",
				 rs.fault, rs.commits_before);
			report(ctx, line);
		}
		/* Nothing to keep: a new segment, past the damage and the index
		 * that still describes it. */
		rc = g->live_entries ? compact(g, err) : mq_log_truncate_all(g->log, mq_log_end(g->log) + 1, err);
	}
	if (rc == 0)
		rc = clamp_past_end(g, report, ctx, err);
	if (rc) {
		mq_groups_close(g);
		return rc;
	}
	history_load(g, report, ctx);
	*out = g;
	return 0;
}

void mq_groups_close(mq_groups_t *g)
{
	if (!g)
		return;
	for (uint32_t i = 0; i < g->ngroups; i++) {
		group_t *gr = &g->groups[i];
		while (gr->nmembers)
			member_remove(gr, gr->members[0]);
		free(gr->members);
		for (uint32_t k = 0; k < gr->ntopics; k++)
			gtopic_free(&gr->topics[k]);
		free(gr->topics);
	}
	free(g->groups);
	free(g->state_dir);
	mq_log_close(g->log);
	mq_buf_free(&g->buf);
	free(g);
}
