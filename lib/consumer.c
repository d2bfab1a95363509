/*
 * consumer.c -- the consumer engine of consumer.h.
 *
 * A FETCH is outstanding while a large block of records is handed over:
 * as soon as such a reply arrives the next request goes out (its
 * offsets are the reply's `next`), and only then is the reply decoded
 * and handed to the sink, so the broker prepares the next block
 * meanwhile.  A small reply (a follower's few records) is handed over
 * first and the next request goes out after: for it what counts is how
 * soon the records reach the output.
 *
 * Commits go out in batches: at a commit tick (at most every commit_ms,
 * or when the topics go quiet), before giving a partition up, and at
 * the end; each moves a partition to min(acked, bound) and never back.
 * A commit the broker refuses because the partition moved on meanwhile
 * is not an error: its new owner starts from the last commit and reads
 * those records again (at least once).
 */
#include "consumer.h"

#include <fnmatch.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "seqcheck.h"
#include "store.h"

#define FETCH_MAX_BYTES (8u << 20)
#define OVERLAP_MIN_BYTES (64u << 10) /* a reply this large has the next fetch sent before it is handed over */
/* How long the broker holds a fetch with nothing to answer.  It answers
 * as soon as there is data, the group moves or the topic list changes,
 * and a consumer whose plan changes meanwhile sends a new fetch in its
 * place: this is only how often an idle consumer shows it is alive. */
#define FOLLOW_WAIT_MS 30000
#define REFRESH_MS 1000   /* a broker that tells no topic-list epoch is asked this often */
#define REFRESH_MIN_MS 100 /* at most this often when topics keep changing */
#define COMMIT_MAX_PARTS 4096 /* the broker's limit per COMMIT */
#define FETCH_MAX_PARTS 4096  /* the broker's limit per FETCH */
#define MAX_TOPICS MQ_FETCH_MAX_TOPICS

#define STOPPED(k) ((k)->o.interrupt && *(k)->o.interrupt)

/* One topic being read (topics are only ever added: indexes stay). */
typedef struct tsub {
	mq_consumer_part_t *p;
	uint32_t np;
	uint32_t initial; /* partitions at the start: the start offset applies to these only;
			   * the others (all, for a topic found later) start at their beginning */
} tsub_t;

struct mq_consumer {
	mq_consumer_opts_t o;
	const mq_consumer_sink_t *sink;
	void *sctx;
	mq_client_t *c;
	mq_member_t m;
	char **names; /* topic names, parallel to t[] */
	tsub_t *t;
	uint32_t nt, nslots;
	int started;  /* the first set of topics is in */
	int patterns; /* some topic is a pattern */
	mq_fetch_pos_t *fp;
	uint32_t fp_cap, fetch_rot;
	uint64_t fetch_sig; /* of the plan the outstanding fetch was sent for */
	mq_fetch_reply_t r;
	uint64_t out, commits;
	int64_t next_hb, hb_ivl, last_commit, next_refresh, last_refresh, wake_at;
	uint64_t epoch; /* of the topic list as last read, when has_epoch: fetches */
	int has_epoch;  /* carry it, and the broker answers once the list changed */
	int hb_now, done;
	int releasing; /* partitions being given up wait for the sink */
	uint32_t waiting; /* plain topics that do not exist (yet): looked for every refresh */
	mq_seqcheck_t *sc; /* check_seq */
	mq_consumer_seq_counts_t seq;
	mq_err_t err;
};

static void notice(mq_consumer_t *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(mq_consumer_t *k, const char *fmt, ...)
{
	char line[1200];
	va_list ap;
	if (!k->o.report)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	k->o.report(k->o.report_ctx, line);
}

static int nomem(mq_consumer_t *k)
{
	return mq_err_set(&k->err, MQ_ENOMEM, "out of memory");
}

int mq_consumer_is_pattern(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* A pattern may hold only name characters and * ? [ ] ! ^ (so it can
 * never match a name that is not valid). */
int mq_consumer_check_pattern(const char *s, mq_err_t *err)
{
	size_t n = strlen(s);
	if (n == 0 || n > MQ_NAME_MAX ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-*?[]!^") != n)
		return mq_err_set(err, MQ_EINVAL,
				  "topic pattern '%.200s': invalid (use A-Z a-z 0-9 . _ - and the wildcards * ? [...])", s);
	return 0;
}

static int grow_parts(mq_consumer_t *k, uint32_t ti, uint32_t n)
{
	tsub_t *t = &k->t[ti];
	if (n <= t->np)
		return 0;
	mq_consumer_part_t *p = realloc(t->p, n * sizeof *p);
	if (!p)
		return nomem(k);
	memset(p + t->np, 0, (n - t->np) * sizeof *p);
	for (uint32_t i = t->np; i < n; i++)
		p[i].slot = k->nslots++;
	t->p = p;
	t->np = n;
	return 0;
}

static int64_t topic_index(const mq_consumer_t *k, const char *name)
{
	for (uint32_t i = 0; i < k->nt; i++)
		if (!strcmp(k->names[i], name))
			return i;
	return -1;
}

/* Add topic name (if new) that has `parts` partitions now: its index, or
 * -1 with k->err. */
static int64_t add_topic(mq_consumer_t *k, const char *name, uint32_t parts)
{
	int64_t i = topic_index(k, name);
	if (i >= 0)
		return i;
	if (k->nt == MAX_TOPICS)
		return mq_err_set(&k->err, MQ_EINVAL, "topic '%s': more than %d topics to read; narrow the -t patterns",
				  name, MAX_TOPICS), -1;
	char **nv = realloc(k->names, (k->nt + 1) * sizeof *nv);
	if (nv)
		k->names = nv;
	tsub_t *tv = nv ? realloc(k->t, (k->nt + 1) * sizeof *tv) : NULL;
	if (tv)
		k->t = tv;
	char *dup = tv ? strdup(name) : NULL;
	if (!dup)
		return nomem(k), -1;
	k->names[k->nt] = dup;
	k->t[k->nt] = (tsub_t){.initial = k->started ? 0 : parts};
	return k->nt++;
}

/* ---- the sink ---- */

/* The sink's flush: 0, or -1 (k->done set when the output ended). */
static int sink_flush(mq_consumer_t *k)
{
	int rc = k->sink->flush ? k->sink->flush(k->sctx, k, &k->err) : 0;
	if (rc > 0)
		k->done = 1;
	return rc ? -1 : 0;
}

static int sink_tick(mq_consumer_t *k)
{
	if (k->sink->tick && k->sink->tick(k->sctx) > 0)
		k->done = 1;
	return k->done;
}

/* A watched descriptor woke a wait.  0, or -1 with k->err. */
static int sink_wake(mq_consumer_t *k)
{
	int rc = k->sink->wake ? k->sink->wake(k->sctx, k, &k->err) : 0;
	if (rc > 0)
		k->done = 1;
	return rc < 0 ? -1 : 0;
}

int mq_consumer_ack(mq_consumer_t *k, uint32_t ti, uint32_t p, uint64_t upto)
{
	if (ti >= k->nt || p >= k->t[ti].np)
		return -MQ_EINVAL;
	mq_consumer_part_t *q = &k->t[ti].p[p];
	if (upto > q->written)
		return -MQ_EINVAL;
	if (upto > q->acked)
		q->acked = upto;
	return 0;
}

void mq_consumer_ack_all(mq_consumer_t *k)
{
	for (uint32_t t = 0; t < k->nt; t++)
		for (uint32_t i = 0; i < k->t[t].np; i++)
			k->t[t].p[i].acked = k->t[t].p[i].written;
}

void mq_consumer_hold(mq_consumer_t *k, uint32_t ti, uint32_t p, int held)
{
	if (ti < k->nt && p < k->t[ti].np)
		k->t[ti].p[p].held = held;
}

void mq_consumer_wake_at(mq_consumer_t *k, int64_t mono_ms)
{
	k->wake_at = mono_ms;
}

/* ---- commits ---- */

/* What partition p may commit now: the commit rule. */
static uint64_t commit_point(const mq_consumer_t *k, const mq_consumer_part_t *p, int amo)
{
	if (amo)
		return p->amo;
	uint64_t at = p->acked;
	if (k->sink->bound) {
		uint64_t b = k->sink->bound(k->sctx, p);
		if (b < at)
			at = b;
	}
	return at;
}

/* Commit one topic's partitions that are active (or, revoked_only,
 * being given up: active == 2).  A commit never moves back. */
static int commit_topic(mq_consumer_t *k, uint32_t ti, int revoked_only, int amo)
{
	tsub_t *t = &k->t[ti];
	uint32_t *parts = malloc((t->np ? t->np : 1) * sizeof *parts);
	uint64_t *offs = malloc((t->np ? t->np : 1) * sizeof *offs);
	uint32_t n = 0;
	for (uint32_t i = 0; parts && offs && i < t->np; i++) {
		mq_consumer_part_t *p = &t->p[i];
		uint64_t at = commit_point(k, p, amo);
		if ((revoked_only ? p->active != 2 : p->active != 1) || (p->has_commit && at <= p->committed))
			continue;
		parts[n] = i;
		offs[n++] = at;
	}
	int rc = 0;
	if (!parts || !offs)
		rc = nomem(k);
	for (uint32_t j = 0; rc == 0 && j < n; j += COMMIT_MAX_PARTS)
		rc = mq_client_commit(k->c, k->o.group, k->m.member, k->names[ti], parts + j, offs + j,
				      n - j < COMMIT_MAX_PARTS ? n - j : COMMIT_MAX_PARTS, &k->err);
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		t->p[parts[i]].committed = offs[i];
		t->p[parts[i]].has_commit = 1;
	}
	if (rc == 0 && n)
		k->commits++;
	free(parts);
	free(offs);
	if (rc == -MQ_EBUSY || rc == -MQ_ENOENT || rc == -MQ_ERANGE) {
		/* We lost a partition meanwhile: its new owner starts from the
		 * last commit, so those records are delivered again (at least once). */
		k->hb_now = 1;
		notice(k, "commit refused: %s", k->err.msg);
		return 0;
	}
	return rc;
}

static int commit(mq_consumer_t *k, int revoked_only, int amo)
{
	if (!k->o.group || !k->m.member[0])
		return 0;
	k->last_commit = mq_mono_ms();
	if (!amo)
		sink_tick(k); /* an output that ended keeps what it had outlived before */
	for (uint32_t t = 0; t < k->nt; t++)
		if (commit_topic(k, t, revoked_only, amo))
			return -1;
	return 0;
}

/* ---- positions and assignment ---- */

/* Start positions of partitions v[0..n) of topic ti: the committed
 * offset, else the start offset (or the beginning for what appeared
 * after the start). */
static int start_positions(mq_consumer_t *k, uint32_t ti, const uint32_t *v, uint32_t n)
{
	if (!n)
		return 0;
	const char *topic = k->names[ti];
	uint32_t max = 0;
	for (uint32_t i = 0; i < n; i++)
		if (v[i] + 1 > max)
			max = v[i] + 1;
	if (grow_parts(k, ti, max))
		return -1;
	int64_t *com = calloc(max, sizeof *com);
	uint64_t *off = calloc(max, sizeof *off);
	mq_part_offsets_t *po = calloc(max, sizeof *po);
	int rc = !com || !off || !po ? nomem(k) : 0;
	for (uint32_t i = 0; !rc && i < max; i++)
		com[i] = -1;
	if (!rc && k->o.group)
		rc = mq_client_committed(k->c, k->o.group, topic, com, max, &k->err);
	if (!rc)
		rc = mq_client_resolve(k->c, topic, &k->o.start, off, max, &k->err);
	if (!rc)
		rc = mq_client_offsets(k->c, topic, -1, po, max, &k->err);
	for (uint32_t i = 0; !rc && i < n; i++) {
		mq_consumer_part_t *p = &k->t[ti].p[v[i]];
		int has = com[v[i]] >= 0;
		/* a partition added after the start: everything in it is new */
		uint64_t at = has ? (uint64_t)com[v[i]] : v[i] >= k->t[ti].initial ? po[v[i]].start : off[v[i]];
		*p = (mq_consumer_part_t){.pos = at, .written = at, .acked = at, .committed = has ? at : 0,
					  .end = po[v[i]].end, .slot = p->slot, .active = 1, .has_commit = has};
		if (k->sink->start)
			rc = k->sink->start(k->sctx, ti, v[i], p, &k->err);
	}
	free(com);
	free(off);
	free(po);
	return rc;
}

/* Without a group: read the partitions [0, n) of topic ti not read yet. */
static int start_all(mq_consumer_t *k, uint32_t ti, uint32_t n)
{
	tsub_t *t = &k->t[ti];
	uint32_t *v = malloc((n ? n : 1) * sizeof *v), j = 0;
	if (!v)
		return nomem(k);
	for (uint32_t i = 0; i < n; i++)
		if (i >= t->np || (!t->p[i].active && (t->p[i].gone || !k->started)))
			v[j++] = i;
	if (k->started)
		t->initial = 0; /* what comes back, or is new, since the start: from its beginning */
	int rc = start_positions(k, ti, v, j);
	free(v);
	return rc;
}

/* Partitions being given up (active == 2): once the sink let go of
 * each, flush, commit them and give them up.  1 when none is left. */
static int release_revoked(mq_consumer_t *k)
{
	int waiting = 0;
	for (uint32_t t = 0; t < k->nt; t++)
		for (uint32_t i = 0; i < k->t[t].np; i++)
			if (k->t[t].p[i].active == 2 && k->sink->release) {
				int rc = k->sink->release(k->sctx, k, t, i, &k->err);
				if (rc < 0)
					return -1;
				waiting |= rc == 0;
			}
	if (waiting)
		return 0;
	sink_flush(k); /* an output that ended commits what it had taken */
	if (commit(k, 1, 0))
		return -1;
	for (uint32_t t = 0; t < k->nt; t++)
		for (uint32_t i = 0; i < k->t[t].np; i++)
			if (k->t[t].p[i].active == 2)
				k->t[t].p[i].active = 0;
	k->releasing = 0;
	return 1;
}

/* Apply the member's current assignment: give up what was taken away
 * (after the sink let go of it and it was committed), start what was
 * added. */
static int apply_assignment(mq_consumer_t *k)
{
	int revoked = 0;
	for (uint32_t t = 0; t < k->nt; t++)
		for (uint32_t i = 0; i < k->t[t].np; i++)
			if (k->t[t].p[i].active == 1 && !mq_member_owns(&k->m, t, i)) {
				k->t[t].p[i].active = 2;
				revoked = 1;
			}
	if (revoked || k->releasing) {
		k->releasing = 1;
		int rc = release_revoked(k);
		if (rc < 0)
			return -1;
		if (rc == 0)
			return 0; /* not acknowledged yet: the broker keeps them ours */
	}
	uint32_t *add = malloc((k->m.nowned ? k->m.nowned : 1) * sizeof *add);
	if (!add)
		return nomem(k);
	int rc = 0;
	for (uint32_t t = 0; !rc && t < k->nt; t++) {
		uint32_t n = 0;
		for (uint32_t i = 0; i < k->m.nowned; i++) {
			mq_owned_t q = k->m.owned[i];
			if (q.topic == t && (q.partition >= k->t[t].np || !k->t[t].p[q.partition].active))
				add[n++] = q.partition;
		}
		rc = start_positions(k, t, add, n);
	}
	free(add);
	if (rc)
		return rc;
	if (k->m.acked != k->m.generation) {
		k->m.acked = k->m.generation;
		k->hb_now = revoked; /* let the next owner start at once */
	}
	return 0;
}

static int join(mq_consumer_t *k)
{
	if (mq_member_set_topics(&k->m, (const char *const *)k->names, k->nt, &k->err))
		return -1;
	return mq_client_join(k->c, &k->m, &k->err);
}

int mq_consumer_keep_alive(mq_consumer_t *k, mq_err_t *err)
{
	(void)err;
	if (k->m.member[0] && !k->o.at_most_once && mq_mono_ms() - k->last_commit >= k->o.commit_ms) {
		mq_err_t keep = k->err; /* a failure shows again at the next commit */
		commit(k, 0, 0);
		k->err = keep;
	}
	if (!k->m.member[0] || mq_mono_ms() < k->next_hb)
		return 0;
	/* A copy: the assignment being applied (if any) must not change under
	 * it.  Nothing is acknowledged here, so the broker keeps every
	 * partition ours until the caller's step looks at it (hb_now). */
	mq_member_t m = k->m;
	m.owned = NULL;
	m.nowned = m.cap = 0;
	mq_err_t e;
	if (mq_client_heartbeat(k->c, &m, &e) || m.generation != k->m.generation)
		k->hb_now = 1;
	free(m.owned);
	k->next_hb = mq_mono_ms() + k->hb_ivl;
	return 0;
}

static int heartbeat(mq_consumer_t *k)
{
	int rc = k->m.member[0] ? mq_client_heartbeat(k->c, &k->m, &k->err) : -MQ_ENOENT;
	if (rc == -MQ_ENOENT) {
		if (k->o.verbose && k->m.member[0])
			notice(k, "group '%s': %s; joining again", k->o.group, k->err.msg);
		k->m.member[0] = 0;
		rc = join(k);
	}
	k->hb_now = 0;
	k->next_hb = mq_mono_ms() + k->hb_ivl;
	if (rc)
		return rc;
	return apply_assignment(k);
}

/* Find topics and partitions: every plain name (created when following),
 * every topic matching a pattern, partition counts.  New topics join the
 * group (or are read in full without one). */
static int refresh(mq_consumer_t *k)
{
	const mq_consumer_opts_t *o = &k->o;
	uint32_t before = k->nt;
	mq_topic_list_t l = {0};
	k->last_refresh = mq_mono_ms();
	k->next_refresh = k->last_refresh + REFRESH_MS;
	if (!k->started) {
		/* Reading never creates a topic: a follower of one that does not
		 * exist waits for it to appear; with exit_at_end it is an error. */
		for (uint32_t i = 0; i < o->ntopics; i++) {
			uint32_t n;
			if (mq_consumer_is_pattern(o->topics[i]))
				continue;
			if (mq_client_meta(k->c, o->topics[i], 0, &n, &k->err)) {
				if (k->err.code != MQ_ENOENT || o->exit_at_end)
					return -1;
				k->waiting++;
				if (o->announce_waiting)
					notice(k, "topic '%s' does not exist yet: waiting for it (reading creates nothing)",
					       o->topics[i]);
				continue;
			}
			if (add_topic(k, o->topics[i], n) < 0)
				return -1;
		}
	}
	if ((k->patterns || !o->group || k->waiting) && mq_client_topics(k->c, &l, &k->err))
		return -1;
	/* A broker that tells the list's epoch answers a fetch carrying it
	 * once the list changed: no need to look on a timer. */
	if ((k->has_epoch = l.has_epoch)) {
		k->epoch = l.epoch;
		k->next_refresh = INT64_MAX;
	}
	int rc = 0;
	for (uint32_t j = 0; !rc && j < l.n; j++) {
		int64_t ti = topic_index(k, l.names[j]);
		for (uint32_t i = 0; ti < 0 && i < o->ntopics; i++)
			if ((mq_consumer_is_pattern(o->topics[i]) ? fnmatch(o->topics[i], l.names[j], 0) == 0
								    : k->waiting && strcmp(o->topics[i], l.names[j]) == 0) &&
			    (ti = add_topic(k, l.names[j], l.parts[j])) < 0)
				rc = -1;
		if (!rc && ti >= 0 && !o->group && (l.parts[j] > k->t[ti].np || !k->started))
			rc = start_all(k, (uint32_t)ti, l.parts[j]);
		else if (!rc && ti >= 0 && !o->group) {
			for (uint32_t p = 0; p < k->t[ti].np && p < l.parts[j]; p++)
				if (k->t[ti].p[p].gone) {
					rc = start_all(k, (uint32_t)ti, l.parts[j]);
					break;
				}
		}
	}
	mq_topic_list_free(&l);
	if (rc)
		return -1;
	if (k->waiting) {
		k->waiting = 0;
		for (uint32_t i = 0; i < o->ntopics; i++)
			k->waiting += !mq_consumer_is_pattern(o->topics[i]) && topic_index(k, o->topics[i]) < 0;
	}
	k->started = 1;
	if (o->group && k->nt != before) {
		if (o->verbose && before)
			notice(k, "%u new topic%s to read", k->nt - before, k->nt - before == 1 ? "" : "s");
		k->hb_now = 1;
		if (k->m.member[0]) { /* tell the broker the new topics */
			if (join(k))
				return -1;
			k->next_hb = mq_mono_ms() + k->hb_ivl;
			k->hb_now = 0;
			return apply_assignment(k);
		}
	}
	return 0;
}

/* ---- fetching ---- */

/* Does the consumer follow the topic list (patterns, topics not there
 * yet, partitions added, without a group)? */
static int looks_at_list(const mq_consumer_t *k)
{
	return !k->o.exit_at_end && (k->patterns || !k->o.group || k->waiting);
}

/* What to fetch now, into k->fp: n entries, whether to carry the epoch,
 * and a signature of it all (a fetch outstanding for another plan is
 * replaced).  -1 out of memory. */
static int64_t fetch_plan(mq_consumer_t *k, int *follow, uint64_t *sig)
{
	uint32_t total = 0;
	for (uint32_t t = 0; t < k->nt; t++)
		total += k->t[t].np;
	if (total > k->fp_cap) {
		mq_fetch_pos_t *fp = realloc(k->fp, total * sizeof *fp);
		if (!fp)
			return nomem(k);
		k->fp = fp;
		k->fp_cap = total;
	}
	uint32_t n = 0, held = 0;
	uint64_t h = 1469598103934665603ull; /* FNV-1a over the plan */
	for (uint32_t t = 0; t < k->nt; t++)
		for (uint32_t i = 0; i < k->t[t].np; i++) {
			mq_consumer_part_t *p = &k->t[t].p[i];
			held += p->active == 1 && p->held;
			if (p->active != 1 || p->held || (k->o.exit_at_end && p->pos >= p->end))
				continue;
			k->fp[n++] = (mq_fetch_pos_t){t, i, p->pos};
			uint64_t v[3] = {t, i, p->pos};
			for (int j = 0; j < 3; j++)
				h = (h ^ v[j]) * 1099511628211ull;
		}
	/* Carry the epoch only while following the list (the broker answers
	 * at once a fetch whose epoch is old) and not with a look at the list
	 * already due: it would come back at once, again and again.  With
	 * nothing to fetch, a fetch that only waits for the list is sent when
	 * no partition is held by the sink: one that is would be fetched as
	 * soon as the sink lets go, not after that wait. */
	*follow = k->has_epoch && looks_at_list(k) && k->next_refresh == INT64_MAX;
	if (!n && (!*follow || held))
		*follow = 0;
	*sig = (h ^ (uint64_t)*follow ^ (*follow ? k->epoch : 0)) * 1099511628211ull;
	return n;
}

/* Send a fetch for the plan (none when there is nothing to ask for). */
static int send_fetch(mq_consumer_t *k)
{
	int follow;
	int64_t got = fetch_plan(k, &follow, &k->fetch_sig);
	if (got < 0)
		return -1;
	uint32_t n = (uint32_t)got;
	if (!n && !follow)
		return 0;
	if (n > FETCH_MAX_PARTS) { /* take turns */
		uint32_t from = k->fetch_rot++ % n;
		for (uint32_t j = 0; j < FETCH_MAX_PARTS; j++) { /* rotate in place */
			mq_fetch_pos_t x = k->fp[j];
			k->fp[j] = k->fp[(from + j) % n];
			k->fp[(from + j) % n] = x;
		}
		n = FETCH_MAX_PARTS;
	}
	uint32_t wait = k->o.exit_at_end ? 100 : FOLLOW_WAIT_MS;
	return mq_client_fetch_send(k->c, (const char *const *)k->names, n ? k->nt : 0, k->fp, n, FETCH_MAX_BYTES,
				    wait, k->o.group, k->m.member, follow ? &k->epoch : NULL, &k->err);
}

/* An outstanding fetch asks for what the consumer no longer wants (a
 * partition the sink let go of, one assigned or found since, a position
 * moved back): send one for the plan now in its place. */
static int refetch_if_stale(mq_consumer_t *k)
{
	int follow;
	uint64_t sig;
	int64_t n = fetch_plan(k, &follow, &sig);
	if (n < 0)
		return -1;
	if (sig == k->fetch_sig)
		return 0;
	return send_fetch(k);
}

/* Every active partition read to its end, and (exit_at_end) acked: the
 * sink may still be working on what it took. */
static int all_at_end(const mq_consumer_t *k)
{
	for (uint32_t t = 0; t < k->nt; t++)
		for (uint32_t i = 0; i < k->t[t].np; i++)
			if (k->t[t].p[i].active == 1 && k->t[t].p[i].pos < k->t[t].p[i].end)
				return 0;
	return 1;
}

/* The partition an entry names, if we are reading it. */
static mq_consumer_part_t *entry_part(mq_consumer_t *k, const mq_fetch_entry_t *e)
{
	if (e->topic >= k->nt || e->partition >= k->t[e->topic].np)
		return NULL;
	mq_consumer_part_t *p = &k->t[e->topic].p[e->partition];
	return p->active == 1 ? p : NULL;
}

/* check_seq: the record's sequence against its producer's stream (the
 * origin headers' when it has them, else its batch's; records of no
 * producer are not checked).  0, or -1 with k->err. */
static int check_seq(mq_consumer_t *k, const mq_fetch_entry_t *e, mq_consumer_part_t *p, const mq_batch_hdr_t *h,
		     const mq_record_t *rec)
{
	const uint8_t *prod;
	size_t plen;
	uint64_t seq;
	int src = MQ_SEQ_ENVELOPE;
	char num[24];
	uint8_t id[8];
	p->checked = rec->offset + 1;
	k->seq.seen++;
	if (!mq_record_origin(rec, &prod, &plen, &seq)) {
		if (!rec->producer_id) {
			k->seq.unnumbered++;
			return 0;
		}
		memcpy(id, &rec->producer_id, 8);
		prod = id;
		plen = 8;
		seq = rec->seq;
		src = MQ_SEQ_BATCH;
	}
	mq_seq_finding_t f;
	int rc = mq_seqcheck_see(k->sc, e->topic, e->partition, src, prod, plen, seq, &f, &k->err);
	if (rc <= 0)
		return rc < 0 ? -1 : 0;
	if (src == MQ_SEQ_BATCH) {
		snprintf(num, sizeof num, "%" PRIu64, rec->producer_id);
		prod = (const uint8_t *)num;
		plen = strlen(num);
	}
	mq_report_fn said = k->o.report;
	if (k->o.seq_report)
		k->o.report = k->o.seq_report;
	char pname[80];
	mq_printable(pname, sizeof pname, prod, plen);
	const char *topic = k->names[e->topic];
	if (rc == MQ_SEQ_REPEAT) {
		k->seq.repeats++;
		notice(k, "sequence repeat: producer %s, topic '%s' partition %u: expected %" PRIu64 ", got %" PRIu64
		       " again (offset %" PRIu64 ")", pname, topic, e->partition, f.expected, f.got, rec->offset);
	} else if (h->expire_at) {
		k->seq.ttl_gaps++;
		notice(k, "sequence gap: producer %s, topic '%s' partition %u: expected %" PRIu64 ", got %" PRIu64
		       " (offset %" PRIu64 "): %" PRIu64 " missing, which the producer's TTL may have expired",
		       pname, topic, e->partition, f.expected, f.got, rec->offset, f.missing);
	} else {
		k->seq.gaps++;
		k->seq.missing += f.missing;
		notice(k, "sequence gap: producer %s, topic '%s' partition %u: expected %" PRIu64 ", got %" PRIu64
		       " (offset %" PRIu64 "): %" PRIu64 " missing", pname, topic, e->partition, f.expected, f.got,
		       rec->offset, f.missing);
	}
	k->o.report = said;
	return 0;
}

/* Hand the records of one entry's raw batches to the sink. */
static int put_entry(mq_consumer_t *k, const mq_fetch_entry_t *e, mq_consumer_part_t *p)
{
	const uint8_t *d = e->data, *end = e->data + e->nbytes;
	const char *topic = k->names[e->topic];
	while ((size_t)(end - d) >= MQ_BATCH_HEADER && !k->done && !p->held && !STOPPED(k)) {
		mq_batch_hdr_t h;
		mq_batch_iter_t it;
		if (mq_batch_hdr_decode(d, (size_t)(end - d), &h, &k->err) || h.length > (size_t)(end - d))
			break; /* a cut-off last batch: the next fetch starts there */
		if (!(h.flags & MQ_BF_CONTROL) && h.base_offset + h.count > p->written &&
		    mq_batch_iter_init(&it, d, h.length, &k->err) == 0) {
			mq_record_t rec;
			while (!p->held && !STOPPED(k) && mq_batch_iter_next(&it, &rec) > 0) {
				if (rec.offset < p->written)
					continue;
				int rc = k->sink->put(k->sctx, e->topic, topic, e->partition, p, &rec, &k->err);
				if (rc > 0) {
					k->done = 1;
					return 0;
				}
				if (rc < 0)
					return -1;
				p->written = rec.offset + 1;
				if (k->sc && rec.offset >= p->checked && check_seq(k, e, p, &h, &rec))
					return -1;
				if (++k->out == k->o.count) {
					k->done = 1;
					break;
				}
				/* A large reply to a slow reader: commit as it goes. */
				if ((k->out & 1023) == 0 && k->o.group && !k->o.at_most_once &&
				    mq_mono_ms() - k->last_commit >= k->o.commit_ms) {
					if (sink_flush(k))
						return k->done ? 0 : -1;
					if (commit(k, 0, 0))
						return -1;
				}
			}
		}
		d += h.length;
	}
	/* What a held partition did not take is fetched again from written. */
	p->pos = p->written > p->pos || p->held ? p->written : p->pos;
	return 0;
}

/* Offsets [p->pos, e->next) the broker found damaged: a failure, or
 * with skip_damaged a notice and a jump past them (which a group then
 * commits).  0, or -1 with k->err. */
static int damaged(mq_consumer_t *k, const mq_fetch_entry_t *e, mq_consumer_part_t *p)
{
	const char *topic = k->names[e->topic];
	if (!k->o.skip_damaged)
		return mq_err_set(&k->err, MQ_ECORRUPT, "topic '%s' partition %u: offsets %" PRIu64 " to %" PRIu64
				  " are damaged on the broker and were not read (its log names the file; "
				  "--skip-damaged reads past them)", topic, e->partition, p->pos, e->next - 1), -1;
	notice(k, "topic '%s' partition %u: skipped offsets %" PRIu64 " to %" PRIu64 ", damaged on the broker",
	       topic, e->partition, p->pos, e->next - 1);
	if (p->acked == p->written)
		p->acked = e->next; /* nothing of it pending in the sink */
	p->pos = p->written = e->next;
	return 0;
}

/* Positions from a reply, before its records are handed over.  0, or -1
 * with k->err. */
static int advance(mq_consumer_t *k)
{
	for (uint32_t i = 0; i < k->r.n; i++) {
		const mq_fetch_entry_t *e = &k->r.e[i];
		mq_consumer_part_t *p = entry_part(k, e);
		if (!p)
			continue;
		p->end = e->end;
		if (e->err == MQ_EBUSY) {
			k->hb_now = 1;
		} else if (e->err == MQ_ERANGE) {
			/* Below the start: retention took it.  Above the end: the
			 * topic was deleted and made again.  Either way what is
			 * there now is read from its start (again, rather than lost). */
			if (p->pos > e->end)
				p->has_commit = 0, p->checked = e->start;
			else
				notice(k, "topic '%s' partition %u: offsets %" PRIu64 " to %" PRIu64 " were deleted "
				       "(retention) before they were read; reading on from %" PRIu64,
				       k->names[e->topic], e->partition, p->pos, e->start - 1, e->start);
			p->pos = p->written = p->acked = e->start;
			if (k->sink->start && k->sink->start(k->sctx, e->topic, e->partition, p, &k->err))
				return -1;
		} else if (e->err == 0 && e->next > p->pos && !p->held) {
			p->pos = e->next;
		} else if (e->err == MQ_ENOENT) {
			p->active = 0;
			p->gone = 1;
		} else if (e->err == MQ_ECORRUPT && e->next > p->pos) {
			if (damaged(k, e, p))
				return -1;
		} else if (e->err) {
			return mq_err_set(&k->err, e->err, "topic '%s' partition %u: the broker cannot serve offset %"
					  PRIu64 " (error %d)", k->names[e->topic], e->partition, p->pos, e->err), -1;
		}
	}
	return 0;
}

/* at_most_once: commit the end of what this reply will hand over (up to
 * the count, since offsets are dense) before handing it over. */
static int commit_ahead(mq_consumer_t *k)
{
	uint64_t left = k->o.count ? k->o.count - k->out : UINT64_MAX;
	for (uint32_t t = 0; t < k->nt; t++)
		for (uint32_t i = 0; i < k->t[t].np; i++)
			k->t[t].p[i].amo = k->t[t].p[i].written;
	for (uint32_t i = 0; i < k->r.n; i++) {
		const mq_fetch_entry_t *e = &k->r.e[i];
		mq_consumer_part_t *p = entry_part(k, e);
		if (!e->nbytes || e->err || !p)
			continue;
		uint64_t avail = e->next > p->amo ? e->next - p->amo : 0;
		uint64_t take = avail < left ? avail : left;
		p->amo += take;
		left -= take;
	}
	return commit(k, 0, 1);
}

static int handle_reply(mq_consumer_t *k)
{
	if (advance(k))
		return -1;
	int data = 0;
	for (uint32_t i = 0; i < k->r.n; i++)
		data |= k->r.e[i].nbytes > 0;
	if (k->o.at_most_once && data && commit_ahead(k))
		return -1;
	/* Overlap: the broker works on the next block while a large one is
	 * handed over.  A small one is handed over first: the next request
	 * costs a system call that would come before the records reach the
	 * output, and there is little to overlap with. */
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < k->r.n; i++)
		bytes += k->r.e[i].nbytes;
	int overlap = bytes >= OVERLAP_MIN_BYTES;
	if (overlap && !k->done && !STOPPED(k) && !(k->o.exit_at_end && all_at_end(k)) && send_fetch(k))
		return -1;
	for (uint32_t i = 0; i < k->r.n && !k->done; i++) {
		const mq_fetch_entry_t *e = &k->r.e[i];
		mq_consumer_part_t *p = entry_part(k, e);
		if (e->nbytes && e->err == 0 && p &&
		    (mq_fetch_entry_check(e, k->names[e->topic], &k->err) || put_entry(k, e, p)))
			return -1;
	}
	if (data && sink_flush(k) && !k->done)
		return -1;
	if (!overlap && !k->done && !STOPPED(k) && !(k->o.exit_at_end && all_at_end(k)) &&
	    !mq_client_fetch_pending(k->c) && send_fetch(k))
		return -1;
	if (!k->o.at_most_once && (!data || mq_mono_ms() - k->last_commit >= k->o.commit_ms) && commit(k, 0, 0))
		return -1;
	return 0;
}

/* When the next commit is due: commit_ms after the last one while some
 * partition has records handed over and not committed (what the sink
 * lets be committed may grow without an event: a pipe reader taking),
 * INT64_MAX when nothing waits. */
static int64_t commit_due(const mq_consumer_t *k)
{
	if (!k->o.group || !k->m.member[0] || k->o.at_most_once)
		return INT64_MAX;
	for (uint32_t t = 0; t < k->nt; t++)
		for (uint32_t i = 0; i < k->t[t].np; i++) {
			const mq_consumer_part_t *p = &k->t[t].p[i];
			if (p->active == 1 && p->acked > (p->has_commit ? p->committed : 0))
				return k->last_commit + k->o.commit_ms;
		}
	return INT64_MAX;
}

/* Sleep until the next heartbeat, refresh, commit or the caller's
 * deadline (nothing to fetch), or until the watched descriptor is
 * ready; at most FOLLOW_WAIT_MS, as a fetch would. */
static int idle(mq_consumer_t *k)
{
	int64_t now = mq_mono_ms(), ms = FOLLOW_WAIT_MS, due = commit_due(k);
	if (due - now < ms)
		ms = due - now;
	if (k->o.group && k->next_hb - now < ms)
		ms = k->next_hb - now;
	if (!k->o.exit_at_end && k->next_refresh - now < ms)
		ms = k->next_refresh - now;
	if (k->wake_at && k->wake_at - now < ms)
		ms = k->wake_at - now;
	struct pollfd pfd[2] = {{.fd = k->o.watch_fd, .events = k->o.watch_events},
				{.fd = mq_client_wake_fd(k->c), .events = POLLIN}};
	if (poll(pfd, 2, (int)(ms > 0 ? ms : 0)) > 0 && pfd[1].revents)
		mq_drain_fd(pfd[1].fd); /* a signal: the caller looks at its flag */
	return sink_wake(k);
}

/* A call cut short by a signal (the client's -MQ_EAGAIN): 0, the caller
 * looks at its flag; anything else fails. */
static int failed(mq_consumer_t *k, mq_err_t *err)
{
	*err = k->err;
	return k->err.code == MQ_EAGAIN ? 0 : -1;
}

int mq_consumer_step(mq_consumer_t *k, mq_err_t *err)
{
	if (k->done)
		return 1;
	int64_t now = mq_mono_ms();
	int looks = looks_at_list(k);
	if (looks && now >= k->next_refresh && refresh(k))
		return failed(k, err);
	if (k->o.group && k->releasing && !k->hb_now) {
		int rc = release_revoked(k);
		if (rc < 0)
			return failed(k, err);
		k->hb_now = rc; /* let go of: apply the rest and acknowledge it */
	}
	if (k->o.group && (k->hb_now || mq_mono_ms() >= k->next_hb) && heartbeat(k))
		return failed(k, err);
	if (k->done)
		return 1;
	if (k->o.exit_at_end && all_at_end(k))
		return 1;
	if (mq_mono_ms() >= commit_due(k) && commit(k, 0, 0))
		return failed(k, err);
	if (mq_client_fetch_pending(k->c) && refetch_if_stale(k))
		return failed(k, err);
	if (!mq_client_fetch_pending(k->c)) {
		if (send_fetch(k))
			return failed(k, err);
		if (!mq_client_fetch_pending(k->c)) {
			if (idle(k))
				return failed(k, err);
			return k->done;
		}
	}
	now = mq_mono_ms();
	int64_t wait = k->o.group ? k->next_hb - now : INT32_MAX; /* the reply ends it */
	if (looks && k->next_refresh - now < wait)
		wait = k->next_refresh - now;
	if (k->wake_at && k->wake_at - now < wait)
		wait = k->wake_at - now;
	int64_t due = commit_due(k);
	if (due - now < wait)
		wait = due - now;
	int rc = mq_client_fetch_recv(k->c, &k->r, wait < 0 ? 0 : (int)wait, &k->err);
	if (rc == -MQ_EAGAIN) { /* a deadline, a signal, or the watched descriptor */
		if (sink_wake(k))
			return failed(k, err);
		return k->done;
	}
	if (rc) {
		*err = k->err;
		return rc;
	}
	if (looks_at_list(k) && k->has_epoch && k->r.has_epoch && k->r.epoch != k->epoch &&
	    k->next_refresh == INT64_MAX) {
		/* The topic list changed: look at it now, or soon if it keeps changing. */
		k->next_refresh = k->last_refresh + REFRESH_MIN_MS;
	}
	if (handle_reply(k))
		return failed(k, err);
	return k->done;
}

int mq_consumer_open(mq_client_t *c, const mq_consumer_opts_t *o, mq_consumer_t **out, mq_err_t *err)
{
	mq_consumer_t *k = calloc(1, sizeof(*k));
	if (!k)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	k->o = *o;
	k->c = c;
	k->sink = o->sink;
	k->sctx = o->sink_ctx;
	if (k->o.session_ms <= 0)
		k->o.session_ms = 10000;
	if (k->o.commit_ms <= 0)
		k->o.commit_ms = 500;
	for (uint32_t i = 0; i < o->ntopics; i++)
		k->patterns |= mq_consumer_is_pattern(o->topics[i]);
	if (o->watch_fd >= 0)
		mq_client_watch(c, o->watch_fd, o->watch_events);
	*out = k;
	if (o->check_seq && mq_seqcheck_new(0, &k->sc, err))
		return -1;
	if (refresh(k)) {
		*err = k->err;
		return -1;
	}
	if (o->exit_at_end && k->nt == 0)
		notice(k, "no topic matches %s%s", o->topics[0], o->ntopics > 1 ? " (or the other -t)" : "");
	if (o->group) {
		snprintf(k->m.group, sizeof k->m.group, "%s", o->group);
		k->m.session_ms = k->o.session_ms;
		k->hb_ivl = k->o.session_ms / 3 < 1000 ? k->o.session_ms / 3 : 1000;
		if (heartbeat(k))
			return failed(k, err) ? -1 : 0;
	}
	return 0;
}

int mq_consumer_finish(mq_consumer_t *k, mq_err_t *err)
{
	int rc = 0;
	if (!k->done && sink_flush(k) && !k->done) {
		*err = k->err;
		rc = -1;
	}
	if (k->o.group && k->m.member[0] && !k->o.at_most_once && commit(k, 0, 0)) {
		if (!rc)
			*err = k->err;
		rc = -1;
	}
	if (k->o.group && k->m.member[0] && mq_client_leave(k->c, &k->m, &k->err) && k->o.verbose)
		notice(k, "leaving group '%s': %s", k->o.group, k->err.msg);
	return rc;
}

void mq_consumer_close(mq_consumer_t *k)
{
	if (!k)
		return;
	for (uint32_t t = 0; t < k->nt; t++) {
		free(k->names[t]);
		free(k->t[t].p);
	}
	free(k->names);
	free(k->t);
	free(k->fp);
	mq_fetch_reply_free(&k->r);
	mq_member_free(&k->m);
	mq_seqcheck_free(k->sc);
	free(k);
}

mq_consumer_seq_counts_t mq_consumer_seq_counts(const mq_consumer_t *k)
{
	return k->seq;
}

uint32_t mq_consumer_topics(const mq_consumer_t *k)
{
	return k->nt;
}

const char *mq_consumer_topic(const mq_consumer_t *k, uint32_t ti)
{
	return ti < k->nt ? k->names[ti] : NULL;
}

uint32_t mq_consumer_partitions(const mq_consumer_t *k, uint32_t ti)
{
	return ti < k->nt ? k->t[ti].np : 0;
}

const mq_consumer_part_t *mq_consumer_part(const mq_consumer_t *k, uint32_t ti, uint32_t p)
{
	return ti < k->nt && p < k->t[ti].np ? &k->t[ti].p[p] : NULL;
}

uint64_t mq_consumer_delivered(const mq_consumer_t *k)
{
	return k->out;
}

uint64_t mq_consumer_commits(const mq_consumer_t *k)
{
	return k->commits;
}

int mq_consumer_in_group(const mq_consumer_t *k)
{
	return k->m.member[0] != 0;
}
