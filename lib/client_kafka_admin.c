/*
 * client_kafka_admin.c -- the administration calls of client.h over a
 * Kafka cluster (kafka.h): topics, groups, committed offsets and lag,
 * shaped as mq-serve answers them, so that mq-admin and mq-lag print
 * them unchanged.
 *
 * What a Kafka cluster does not keep is left out, never made up: it has
 * no lag history (the rows come without samples; mq-lag samples itself,
 * see mq-lag(1)), no creation time and no byte counts per topic through
 * this API (topic describe says so), and a cluster that does not describe
 * groups (librdkafka's mock cluster) leaves the owners unknown ("?").
 */
#include "client_int.h"

#include "lag.h"

/* Every (topic, partition) of the topics named (one, or every topic of
 * the cluster when topic is NULL): parallel arrays, malloc'd. */
typedef struct tps {
	char **names; /* the topic list (mq_kafka_topics) */
	uint32_t *parts, nnames;
	const char **topic; /* per partition: into names */
	int32_t *part;
	uint32_t n;
} tps_t;

static void tps_free(tps_t *t)
{
	for (uint32_t i = 0; i < t->nnames; i++)
		free(t->names[i]);
	free(t->names), free(t->parts), free(t->topic), free(t->part);
	memset(t, 0, sizeof *t);
}

static int tps_load(mq_client_t *c, const char *topic, tps_t *t, mq_err_t *err)
{
	memset(t, 0, sizeof *t);
	int rc = mq_kafka_topics(c->kafka, &t->names, &t->parts, &t->nnames, err);
	if (rc)
		return rc;
	uint64_t total = 0;
	int found = 0;
	for (uint32_t i = 0; i < t->nnames; i++)
		if (!topic || !strcmp(topic, t->names[i]))
			total += t->parts[i], found = 1;
	if (topic && !found) {
		tps_free(t);
		return mq_err_set(err, MQ_ENOENT, "no topic '%s' at %.300s", topic, mq_client_endpoint(c));
	}
	t->topic = calloc(total + 1, sizeof *t->topic);
	t->part = calloc(total + 1, sizeof *t->part);
	if (!t->topic || !t->part) {
		tps_free(t);
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < t->nnames; i++)
		for (uint32_t p = 0; (!topic || !strcmp(topic, t->names[i])) && p < t->parts[i]; p++) {
			t->topic[t->n] = t->names[i];
			t->part[t->n++] = (int32_t)p;
		}
	return 0;
}

/* The member of g owning (topic, p), or NULL. */
static const mq_kafka_member_t *owner_of(const mq_kafka_group_t *g, const char *topic, int32_t p)
{
	for (uint32_t m = 0; m < g->nmembers; m++)
		for (uint32_t i = 0; i < g->members[m].nown; i++)
			if (g->members[m].own[i].partition == p && !strcmp(g->members[m].own[i].topic, topic))
				return &g->members[m];
	return NULL;
}

static int row_cmp(const void *a, const void *b)
{
	const mq_group_row_t *x = a, *y = b;
	int c = strcmp(x->topic, y->topic);
	return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* One group's rows over the partitions of t (with their start and end
 * offsets): every partition of each topic the group reads, as mq-serve
 * gives them (a topic it has a commit on, or a member is assigned a
 * partition of), so a partition never committed still counts its lag.
 * Owners the cluster would not tell are "?". */
static int one_group(mq_client_t *c, const char *name, const char *topic, const tps_t *t, const int64_t *start,
		     const int64_t *end, mq_group_info_t *g, mq_err_t *err)
{
	memset(g, 0, sizeof *g);
	snprintf(g->name, sizeof g->name, "%s", name);
	int64_t *off = calloc(t->n + 1, sizeof *off);
	if (!off)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	int rc = mq_kafka_group_offsets(c->kafka, name, t->topic, t->part, t->n, off, err);
	mq_kafka_group_t d;
	mq_err_t derr;
	int known = rc == 0 && mq_kafka_group_describe(c->kafka, name, &d, &derr) == 0;
	if (!known)
		memset(&d, 0, sizeof d);
	uint32_t commits = 0;
	for (uint32_t i = 0; !rc && i < t->n; i++)
		commits += off[i] >= 0;
	/* Without a topic, nothing anywhere is no group; with one, only its
	 * offsets were asked for: no rows, "does not read it" (mq-lag). */
	if (!rc && !commits && (!known || !d.nmembers) && !topic)
		rc = mq_err_set(err, MQ_ENOENT, "no group '%s' at %.300s (it has no members and no committed offsets)",
				name, mq_client_endpoint(c));
	/* reads[i]: partition i's topic is read by the group (the list
	 * holds each topic's partitions one after another) */
	uint8_t *reads = rc ? NULL : calloc(t->n + 1, 1);
	if (!rc && (!reads || !(g->rows = calloc(t->n + 1, sizeof *g->rows)) ||
		    !(g->members = calloc(d.nmembers + 1, sizeof *g->members))))
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	for (uint32_t i = 0, from = 0; !rc && i <= t->n; i++) {
		if (i < t->n && i > from && !strcmp(t->topic[i], t->topic[from]))
			continue;
		int read = 0; /* partitions [from, i) are one topic's */
		for (uint32_t j = from; j < i && !read; j++)
			read = off[j] >= 0 || (known && owner_of(&d, t->topic[j], t->part[j]));
		memset(reads + from, read, i - from);
		from = i;
	}
	for (uint32_t i = 0; !rc && i < t->n; i++) {
		const mq_kafka_member_t *m = known ? owner_of(&d, t->topic[i], t->part[i]) : NULL;
		if (!reads[i])
			continue;
		mq_group_row_t *w = &g->rows[g->nrows++];
		snprintf(w->topic, sizeof w->topic, "%s", t->topic[i]);
		w->partition = (uint32_t)t->part[i];
		w->committed = off[i];
		w->start = start[i] < 0 ? 0 : (uint64_t)start[i];
		w->end = end[i] < 0 ? w->start : (uint64_t)end[i];
		/* unknown owners count as read, so no row is called STOPPED on a guess */
		snprintf(w->owner, sizeof w->owner, "%.200s", m ? m->id : known ? "" : "?");
		w->since_ms = -1;
	}
	g->no_members = !known;
	for (uint32_t i = 0; !rc && i < d.nmembers; i++) {
		mq_group_member_info_t *m = &g->members[g->nmembers++];
		snprintf(m->id, sizeof m->id, "%.200s", d.members[i].id);
		snprintf(m->client, sizeof m->client, "%.63s", d.members[i].client);
		m->idle_ms = -1;
		m->nowned = d.members[i].nown;
	}
	if (!rc) {
		qsort(g->rows, g->nrows, sizeof *g->rows, row_cmp);
	} else {
		free(g->rows), free(g->members);
		g->rows = NULL, g->members = NULL, g->nrows = g->nmembers = 0;
	}
	mq_kafka_group_free(&d);
	free(reads);
	free(off);
	return rc;
}

int mq_cl_kafka_ages(mq_client_t *c, mq_group_info_t *g, uint32_t n, mq_err_t *err)
{
	uint32_t total = 0, k = 0;
	for (uint32_t i = 0; i < n; i++)
		total += g[i].nrows;
	const char **topics = calloc(total + 1, sizeof *topics);
	int32_t *parts = calloc(total + 1, sizeof *parts);
	int64_t *offs = calloc(total + 1, sizeof *offs), *ts = calloc(total + 1, sizeof *ts);
	int rc = !topics || !parts || !offs || !ts ? mq_err_set(err, MQ_ENOMEM, "out of memory") : 0;
	for (uint32_t i = 0; !rc && i < n; i++)
		for (uint32_t j = 0; j < g[i].nrows; j++) {
			const mq_group_row_t *w = &g[i].rows[j];
			/* the next unconsumed record: at the commit, or where the log starts */
			uint64_t next = w->committed >= 0 && (uint64_t)w->committed > w->start ? (uint64_t)w->committed
												 : w->start;
			topics[k] = w->topic;
			parts[k] = (int32_t)w->partition;
			offs[k++] = next < w->end ? (int64_t)next : -1;
		}
	if (!rc && k)
		rc = mq_kafka_record_times(c->kafka, topics, parts, offs, k, ts, err);
	for (uint32_t i = 0, x = 0; !rc && i < n; i++)
		for (uint32_t j = 0; j < g[i].nrows; j++, x++)
			g[i].rows[j].since_ms = ts[x];
	free(topics), free(parts), free(offs), free(ts);
	return rc;
}

static int group_cmp(const void *a, const void *b)
{
	return strcmp(((const mq_group_info_t *)a)->name, ((const mq_group_info_t *)b)->name);
}

int mq_cl_kafka_groups(mq_client_t *c, const char *group, const char *topic, mq_group_info_t **out, uint32_t *n,
		       mq_err_t *err)
{
	*out = NULL, *n = 0;
	char **names = NULL;
	uint32_t nnames = 0;
	tps_t t;
	int rc = tps_load(c, topic, &t, err);
	if (rc)
		return rc;
	if (group) {
		if (!(names = calloc(1, sizeof *names)) || !(names[0] = strdup(group)))
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
		else
			nnames = 1;
	} else {
		rc = mq_kafka_group_list(c->kafka, &names, &nnames, err);
	}
	int64_t *start = calloc(t.n + 1, sizeof *start), *end = calloc(t.n + 1, sizeof *end);
	mq_group_info_t *v = calloc(nnames + 1, sizeof *v);
	if (!rc && (!start || !end || !v))
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	if (!rc)
		rc = mq_kafka_watermarks(c->kafka, t.topic, t.part, t.n, start, end, err);
	uint32_t got = 0;
	for (uint32_t i = 0; !rc && i < nnames; i++) {
		int r = one_group(c, names[i], topic, &t, start, end, &v[got], err);
		if (r == 0)
			got++;
		else if (r != -MQ_ENOENT || group) /* listed but holding nothing here: left out */
			rc = r;
		else {
			free(v[got].members), free(v[got].rows);
			memset(&v[got], 0, sizeof v[got]);
		}
	}
	if (!rc)
		qsort(v, got, sizeof *v, group_cmp); /* by name, as mq-serve lists them */
	if (rc) {
		for (uint32_t i = 0; i < got; i++) {
			free(v[i].members);
			free(v[i].rows);
		}
		free(v);
	} else {
		*out = v, *n = got;
	}
	for (uint32_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names), free(start), free(end);
	tps_free(&t);
	return rc;
}

int mq_cl_kafka_topic_describe(mq_client_t *c, const char *topic, mq_topic_info_t *out, mq_err_t *err)
{
	memset(out, 0, sizeof *out);
	snprintf(out->name, sizeof out->name, "%s", topic);
	tps_t t;
	int rc = tps_load(c, topic, &t, err);
	if (rc)
		return rc;
	out->partitions = t.n;
	int64_t *start = calloc(t.n + 1, sizeof *start), *end = calloc(t.n + 1, sizeof *end);
	if (!start || !end)
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	if (!rc)
		rc = mq_kafka_watermarks(c->kafka, t.topic, t.part, t.n, start, end, err);
	for (uint32_t i = 0; !rc && i < t.n; i++)
		out->messages += end[i] > start[i] && start[i] >= 0 ? (uint64_t)(end[i] - start[i]) : 0;
	/* Kafka's -1 is "keep everything"; a cluster that will not tell
	 * (mq_kafka_topic_retention failing) leaves them "not told". */
	int64_t ms, bytes;
	mq_err_t rerr;
	out->default_retention_ms = out->default_retention_bytes = -1;
	if (!rc && mq_kafka_topic_retention(c->kafka, topic, &ms, &bytes, &rerr) == 0) {
		out->retention_ms = ms > 0 ? ms : 0;
		out->retention_bytes = bytes > 0 ? bytes : 0;
		out->default_retention_ms = out->default_retention_bytes = 0;
	}
	out->no_bytes = 1;
	free(start), free(end);
	tps_free(&t);
	return rc;
}

/* Whether group has a committed offset on any topic (*rc: an error). */
static int group_has_offsets(mq_client_t *c, const char *group, int *rc, mq_err_t *err)
{
	tps_t t;
	int64_t *off = NULL;
	uint32_t commits = 0;
	if ((*rc = tps_load(c, NULL, &t, err)))
		return 0;
	if (!(off = calloc(t.n + 1, sizeof *off)))
		*rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	else
		*rc = mq_kafka_group_offsets(c->kafka, group, t.topic, t.part, t.n, off, err);
	for (uint32_t i = 0; !*rc && i < t.n; i++)
		commits += off[i] >= 0;
	free(off);
	tps_free(&t);
	return commits > 0;
}

int mq_cl_kafka_group_reset(mq_client_t *c, const char *group, const char *topic, const mq_offset_spec_t *to,
			    unsigned flags, mq_reset_entry_t **out, uint32_t *n, mq_err_t *err)
{
	*out = NULL, *n = 0;
	tps_t t;
	int rc = tps_load(c, topic, &t, err);
	if (rc)
		return rc;
	int64_t *old = calloc(t.n + 1, sizeof *old), *set = calloc(t.n + 1, sizeof *set);
	uint64_t *want = calloc(t.n + 1, sizeof *want);
	mq_reset_entry_t *v = calloc(t.n + 1, sizeof *v);
	if (!old || !set || !want || !v)
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	if (!rc)
		rc = mq_kafka_group_offsets(c->kafka, group, t.topic, t.part, t.n, old, err);
	uint32_t commits = 0;
	for (uint32_t i = 0; !rc && i < t.n; i++)
		commits += old[i] >= 0;
	/* as with mq-serve: a mistyped name never becomes a group */
	mq_kafka_group_t d;
	mq_err_t derr;
	int known = !rc && mq_kafka_group_describe(c->kafka, group, &d, &derr) == 0;
	if (!rc && known && d.nmembers)
		rc = mq_err_set(err, MQ_EBUSY, "group '%s' has %u live member%s: stop them first (offsets move only "
				"while nobody reads)", group, d.nmembers, d.nmembers == 1 ? "" : "s");
	if (known)
		mq_kafka_group_free(&d);
	/* as mq-serve: a group is one with offsets anywhere, not only on topic */
	if (!rc && !commits && !(flags & MQ_RESET_CREATE) && !group_has_offsets(c, group, &rc, err))
		rc = rc ? rc : mq_err_set(err, MQ_ENOENT, "no group '%s' (it has no members and no committed offsets) at "
					  "%.300s: check the name with 'mq-admin group list', or add --create to make it "
					  "with these offsets", group, mq_client_endpoint(c));
	if (!rc)
		rc = mq_client_resolve(c, topic, to, want, t.n, err);
	for (uint32_t i = 0; !rc && i < t.n; i++) {
		set[i] = (int64_t)want[i];
		v[i] = (mq_reset_entry_t){(uint32_t)t.part[i], old[i], want[i]};
	}
	if (!rc && !(flags & MQ_RESET_DRY_RUN))
		rc = mq_kafka_group_alter(c->kafka, group, t.topic, t.part, set, t.n, err);
	if (!rc) {
		*out = v, *n = t.n;
		v = NULL;
	}
	free(old), free(set), free(want), free(v);
	tps_free(&t);
	return rc;
}
