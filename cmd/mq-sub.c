/*
 * mq-sub -- messages of a topic to standard output.
 *
 * One FETCH is always outstanding while records are written: as soon
 * as a reply arrives the next request goes out (its offsets are the
 * reply's `next`), and only then is the reply decoded and written, so
 * the broker prepares the next block while this one is formatted.
 *
 * Topics: every -t, and for a -t with a pattern (fnmatch: * ? [...])
 * every topic whose name matches, now and later: the topic list is
 * asked for again every REFRESH_MS while following, and so are the
 * partition counts, so partitions added later are read too.  A topic or
 * partition that appears after the start is read from its beginning
 * (everything in it is new); -o applies to those there at the start.
 *
 * Without -g every partition is read and nothing is committed.  With
 * -g GROUP the broker assigns partitions, and commits go out in batches:
 * at a commit tick (at most every COMMIT_MS, when the topic goes quiet),
 * before giving a partition up, and at exit.  A partition's committed
 * offset only ever moves to what reached the reader (at least once):
 * into a regular file or a terminal, what was written and flushed; into
 * a pipe or a socket, what the reader took out of it (written less what
 * the kernel says is unread) and then outlived, by the two-tick rule of
 * lib/outq.h: what it had taken at one tick is committed at the next if
 * it is still there.  So `mq-sub -g G | head -3`, where head reads a
 * whole block and exits, commits none of that block.  With
 * --at-most-once the commit goes first and the output after.
 *
 * Per partition three offsets: pos (next to fetch), written (after the
 * last record formatted) and flushed (after the last record known to be
 * out of our buffer); records below `written` are skipped, since a
 * fetch returns whole stored batches.  Into a pipe, each record's end
 * (its byte position in all we wrote) goes to the outq, under the
 * partition's slot.
 *
 * A reader that goes away (EPIPE, or the pipe's POLLERR, which the fetch
 * wait watches so that a quiet topic does not hide it) ends mq-sub
 * quietly with status 0, as the reader chose to stop; nothing it took
 * since the last commit is committed.
 */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "cli.h"
#include "cli_done.h"
#include "client.h"
#include "mq.h"
#include "outq.h"
#include "record.h"

static const char *prog = "mq-sub";

#define FETCH_MAX_BYTES (8u << 20)
#define FOLLOW_WAIT_MS 1000
#define COMMIT_MS 500
#define REFRESH_MS 1000
#define COMMIT_MAX_PARTS 4096 /* the broker's limit per COMMIT */
#define STOP_GRACE_MS 2000 /* on SIGTERM, how long a stuck reader gets */
#define MAX_TOPICS MQ_FETCH_MAX_TOPICS
#define MAX_PATTERNS 64

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = stop + 1; /* a second signal cuts the wait for the reader at exit */
}

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: mq-sub -t TOPIC [-g GROUP] [-o OFFSET] [-e] [-n COUNT] [-F FORMAT | -f FMT] [options]\n"
		"\n"
		"  -t, --topic NAME         topic to read; repeatable; a pattern such as 'logs.*'\n"
		"                           reads every matching topic, also ones created later\n"
		"  -g, --group GROUP        consumer group: share partitions, commit offsets of\n"
		"                           what reached the reader (see mq-sub(1), Commits)\n"
		"  -o, --offset OFFSET      beginning (default), end, N, -N (per partition),\n"
		"                           @MS, @2026-11-24T10:00:00Z or @-1h; with -g only where\n"
		"                           the group has no committed offset\n"
		"  -e, --exit-at-end        exit once every assigned partition is read to its end\n"
		"  -n, --count COUNT        exit after COUNT messages\n"
		"  -0                       end each value with NUL instead of a newline\n"
		"  -f, --format FMT         lines, nul, json or msgpack (envelopes)\n"
		"  -F, --template FORMAT    printf-like: %%t %%p %%o %%k %%s %%T %%i %%h %%S, \\n \\t \\0 %%%%\n"
		"      --at-most-once       commit before output\n"
		"      --skip-damaged       report offsets damaged on the broker and go on\n"
		"                           (default: stop there with status 1)\n"
		"      --session-timeout D  group session timeout (default 10s)\n"
		"  -b, --broker ENDPOINT    broker (default $MQ_BROKER, else tcp://127.0.0.1:7733)\n"
		"  -w, --timeout DURATION   give up after the broker is silent this long (default 10s)\n"
		"  -v, --verbose            counts on stderr at the end\n"
		"  -q, --quiet              only errors on stderr\n"
		"  -h, --help               this help;  -V, --version  the version\n");
}

enum {
	OPT_AMO = 256,
	OPT_SESSION,
	OPT_SKIP_DAMAGED,
	OPT_LATER,
};

static const struct option longopts[] = {
	{"topic", required_argument, NULL, 't'},
	{"group", required_argument, NULL, 'g'},
	{"offset", required_argument, NULL, 'o'},
	{"exit-at-end", no_argument, NULL, 'e'},
	{"count", required_argument, NULL, 'n'},
	{"format", required_argument, NULL, 'f'},
	{"template", required_argument, NULL, 'F'},
	{"at-most-once", no_argument, NULL, OPT_AMO},
	{"session-timeout", required_argument, NULL, OPT_SESSION},
	{"skip-damaged", no_argument, NULL, OPT_SKIP_DAMAGED},
	MQ_CLI_LONGOPTS,
	{"exec", required_argument, NULL, OPT_LATER},
	{"check-seq", no_argument, NULL, OPT_LATER},
	{"max-attempts", required_argument, NULL, OPT_LATER},
	{"dlq", required_argument, NULL, OPT_LATER},
	{NULL, 0, NULL, 0},
};

typedef struct opts {
	mq_cli_t cli;
	const char *topics[MAX_PATTERNS];
	uint32_t ntopics;
	const char *group, *template;
	mq_offset_spec_t start;
	int exit_at_end, at_most_once, nul, fmt_set, skip_damaged;
	uint64_t count; /* 0: no limit */
	mq_fmt_t fmt;
	int64_t session_ms;
} opts_t;

static int is_pattern(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* A pattern may hold only name characters and * ? [ ] ! ^ (so it can
 * never match a name that is not valid). */
static int check_pattern(const char *s, mq_err_t *err)
{
	size_t n = strlen(s);
	if (n == 0 || n > MQ_NAME_MAX || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-*?[]!^") != n)
		return mq_err_set(err, MQ_EINVAL,
				  "topic pattern '%.200s': invalid (use A-Z a-z 0-9 . _ - and the wildcards * ? [...])", s);
	return 0;
}

static int check_opts(void *ctx, mq_err_t *err)
{
	opts_t *o = ctx;
	if (!o->ntopics)
		return mq_err_set(err, MQ_EINVAL, "no topic: give one with -t TOPIC");
	if (o->group && mq_name_check("group", o->group, 0, err))
		return -MQ_EINVAL;
	if (o->template && o->fmt_set)
		return mq_err_set(err, MQ_EINVAL, "-F and -f do not go together");
	if (o->nul) {
		if (o->template || (o->fmt_set && o->fmt != MQ_FMT_NUL && o->fmt != MQ_FMT_LINES))
			return mq_err_set(err, MQ_EINVAL, "-0 does not go with -F or -f json|msgpack");
		o->fmt = MQ_FMT_NUL;
	}
	if (o->template)
		o->fmt = MQ_FMT_TEMPLATE;
	if (o->at_most_once && !o->group)
		return mq_err_set(err, MQ_EINVAL, "--at-most-once needs a group (-g GROUP)");
	return 0;
}

/* The options of mq-sub itself: 0 or -MQ_EINVAL. */
static int own_option(void *ctx, int c, const char *arg, int idx, mq_err_t *err)
{
	opts_t *o = ctx;
	switch (c) {
	case 't':
		if (o->ntopics == MAX_PATTERNS)
			return mq_err_set(err, MQ_EINVAL, "-t '%.200s': at most %d -t options", arg, MAX_PATTERNS);
		if (is_pattern(arg) ? check_pattern(arg, err) : mq_name_check("topic", arg, 0, err))
			return -MQ_EINVAL;
		o->topics[o->ntopics++] = arg;
		return 0;
	case 'g': o->group = arg; return 0;
	case 'e': o->exit_at_end = 1; return 0;
	case '0': o->nul = 1; return 0;
	case 'F': o->template = arg; return 0;
	case OPT_AMO: o->at_most_once = 1; return 0;
	case OPT_SKIP_DAMAGED: o->skip_damaged = 1; return 0;
	case 'o':
		return mq_offset_spec_parse(arg, mq_now_ms(), &o->start, err);
	case 'n':
		if (mq_parse_u64(arg, &o->count, err) || o->count == 0)
			return mq_err_set(err, MQ_EINVAL, "-n '%.200s': expected a count of 1 or more", arg);
		return 0;
	case 'f':
		if (mq_fmt_parse(arg, &o->fmt, err) || o->fmt == MQ_FMT_TEMPLATE)
			return mq_err_set(err, MQ_EINVAL, "-f '%.200s': unknown format (use lines, nul, json or msgpack)",
					  arg);
		o->fmt_set = 1;
		return 0;
	case OPT_SESSION:
		if (mq_parse_duration_ms(arg, &o->session_ms, err) || o->session_ms < 100)
			return mq_err_set(err, MQ_EINVAL,
					  "--session-timeout '%.200s': expected a duration of 100ms or more", arg);
		return 0;
	case OPT_LATER:
		return mq_cli_later(prog, longopts[idx].name, err);
	default:
		return mq_err_set(err, MQ_EINVAL, "option '-%c' is not handled", c);
	}
}

/* 0 to go on, 1 to exit 0 (help, version), 2 usage error. */
static int parse_opts(int argc, char **argv, opts_t *o)
{
	mq_err_t err;
	int r = mq_cli_parse(argc, argv, ":t:g:o:en:0f:F:" MQ_CLI_SHORTOPTS, longopts, &o->cli, own_option, check_opts, o, &err);
	return mq_cli_done(r, prog, usage, &err);
}

/* ---- consuming ---- */

typedef struct part {
	uint64_t pos, written, flushed, committed, end;
	uint64_t amo; /* --at-most-once: where the records being written end */
	uint32_t slot; /* in the outq */
	int active, has_commit;
	int gone; /* the broker said no such partition: read it again if it comes back */
} part_t;

/* One topic being read (topics are only ever added: indexes stay). */
typedef struct tsub {
	part_t *p;
	uint32_t np;
	uint32_t initial; /* partitions at the start: -o applies to these only; the
			   * others (all, for a topic found later) start at their beginning */
} tsub_t;

typedef struct sub {
	opts_t *o;
	mq_client_t *c;
	mq_writer_t *w;
	mq_member_t m;
	char **names; /* topic names, parallel to t[] */
	tsub_t *t;
	uint32_t nt;
	int started;  /* the first set of topics is in */
	int patterns; /* some -t is a pattern */
	mq_fetch_pos_t *fp;
	uint32_t fp_cap, fetch_rot;
	mq_fetch_reply_t r;
	uint64_t out, commits;
	int64_t next_hb, hb_ivl, last_commit, next_refresh;
	int64_t stop_at; /* when a stop signal was seen while the reader was stuck */
	int hb_now, done, epipe;
	int out_pipe; /* standard output is a pipe (1) or a socket (2) */
	int track;    /* out_pipe, a group and no --at-most-once: commit what the outq says */
	mq_outq_t q;
	uint32_t nslots;
	mq_err_t err;
} sub_t;

static int nomem(sub_t *s)
{
	return mq_err_set(&s->err, MQ_ENOMEM, "out of memory");
}

static int grow_parts(sub_t *s, uint32_t ti, uint32_t n)
{
	tsub_t *t = &s->t[ti];
	if (n <= t->np)
		return 0;
	part_t *p = realloc(t->p, n * sizeof *p);
	if (!p)
		return nomem(s);
	memset(p + t->np, 0, (n - t->np) * sizeof *p);
	for (uint32_t i = t->np; i < n; i++)
		p[i].slot = s->nslots++;
	t->p = p;
	t->np = n;
	return 0;
}

static int64_t topic_index(const sub_t *s, const char *name)
{
	for (uint32_t i = 0; i < s->nt; i++)
		if (!strcmp(s->names[i], name))
			return i;
	return -1;
}

/* Add topic name (if new) that has `parts` partitions now: its index, or
 * -1 with s->err. */
static int64_t add_topic(sub_t *s, const char *name, uint32_t parts)
{
	int64_t i = topic_index(s, name);
	if (i >= 0)
		return i;
	if (s->nt == MAX_TOPICS)
		return mq_err_set(&s->err, MQ_EINVAL, "topic '%s': more than %d topics to read; narrow the -t patterns",
				  name, MAX_TOPICS), -1;
	char **nv = realloc(s->names, (s->nt + 1) * sizeof *nv);
	if (nv)
		s->names = nv;
	tsub_t *tv = nv ? realloc(s->t, (s->nt + 1) * sizeof *tv) : NULL;
	if (tv)
		s->t = tv;
	char *dup = tv ? strdup(name) : NULL;
	if (!dup)
		return nomem(s), -1;
	s->names[s->nt] = dup;
	s->t[s->nt] = (tsub_t){.initial = s->started ? 0 : parts};
	return s->nt++;
}

/* After a failed write: did the output end (the reader went away, or is
 * stuck and we were told to stop)?  Then mq-sub ends quietly, and what
 * was not written is not committed. */
static int output_ended(sub_t *s)
{
	if (s->err.sys == EPIPE || (stop && s->err.code == MQ_EAGAIN))
		s->epipe = s->done = 1;
	return s->epipe;
}

/* Has the reader of standard output (a pipe or socket) gone away? */
static int reader_gone(const sub_t *s)
{
	struct pollfd pfd = {.fd = 1};
	return s->out_pipe && poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL));
}

/* Tell the outq how much the reader took: what we wrote less what is
 * still unread in the pipe (FIONREAD) or in the socket's send queue
 * (SIOCOUTQ; over TCP that is what the peer's kernel acknowledged).
 * Bytes that others wrote into the pipe only make it count less. */
static void measure(sub_t *s)
{
	int unread = 0;
	if (ioctl(1, s->out_pipe == 2 ? SIOCOUTQ : FIONREAD, &unread) < 0 || unread < 0)
		return; /* cannot tell: nothing more counts as taken */
	uint64_t w = mq_writer_written(s->w);
	mq_outq_taken(&s->q, w > (uint64_t)unread ? w - (uint64_t)unread : 0);
}

/* A commit tick: what the reader had taken at the last one becomes
 * committable if it is still there now. */
static void tick(sub_t *s)
{
	if (!s->track || s->epipe)
		return;
	measure(s);
	if (reader_gone(s)) {
		s->epipe = s->done = 1;
		return;
	}
	mq_outq_tick(&s->q, mq_mono_ms());
}

/* Write out what is buffered; on success everything written is flushed. */
static int flush_out(sub_t *s)
{
	if (s->epipe)
		return -1;
	if (mq_writer_flush(s->w, &s->err)) {
		output_ended(s);
		return -1;
	}
	for (uint32_t t = 0; t < s->nt; t++)
		for (uint32_t i = 0; i < s->t[t].np; i++)
			s->t[t].p[i].flushed = s->t[t].p[i].written;
	if (s->track)
		measure(s);
	return 0;
}

/* Commit one topic's flushed (into a pipe: taken and outlived; amo:
 * about-to-be-written) offsets of the active partitions, or
 * (revoked_only) of those being given up (active == 2).  A commit never
 * moves back. */
static int commit_topic(sub_t *s, uint32_t ti, int revoked_only, int amo)
{
	tsub_t *t = &s->t[ti];
	uint32_t *parts = malloc((t->np ? t->np : 1) * sizeof *parts);
	uint64_t *offs = malloc((t->np ? t->np : 1) * sizeof *offs);
	uint32_t n = 0;
	for (uint32_t i = 0; parts && offs && i < t->np; i++) {
		part_t *p = &t->p[i];
		uint64_t at = amo ? p->amo : s->track ? mq_outq_ready(&s->q, p->slot) : p->flushed;
		if ((revoked_only ? p->active != 2 : p->active != 1) || (p->has_commit && at <= p->committed))
			continue;
		parts[n] = i;
		offs[n++] = at;
	}
	int rc = 0;
	if (!parts || !offs)
		rc = nomem(s);
	for (uint32_t k = 0; rc == 0 && k < n; k += COMMIT_MAX_PARTS)
		rc = mq_client_commit(s->c, s->o->group, s->m.member, s->names[ti], parts + k, offs + k,
				      n - k < COMMIT_MAX_PARTS ? n - k : COMMIT_MAX_PARTS, &s->err);
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		t->p[parts[i]].committed = offs[i];
		t->p[parts[i]].has_commit = 1;
	}
	if (rc == 0 && n)
		s->commits++;
	free(parts);
	free(offs);
	if (rc == -MQ_EBUSY || rc == -MQ_ENOENT || rc == -MQ_ERANGE) {
		/* We lost a partition meanwhile: its new owner starts from the
		 * last commit, so those records are delivered again (at least once). */
		s->hb_now = 1;
		if (!s->o->cli.quiet)
			fprintf(stderr, "%s: commit refused: %s\n", prog, s->err.msg);
		return 0;
	}
	return rc;
}

static int commit(sub_t *s, int revoked_only, int amo)
{
	if (!s->o->group || !s->m.member[0])
		return 0;
	s->last_commit = mq_mono_ms();
	if (!amo)
		tick(s);
	for (uint32_t t = 0; t < s->nt; t++)
		if (commit_topic(s, t, revoked_only, amo))
			return -1;
	return 0;
}

/* Start positions of partitions v[0..n) of topic ti: the committed
 * offset, else -o (or the beginning for what appeared after the start). */
static int start_positions(sub_t *s, uint32_t ti, const uint32_t *v, uint32_t n)
{
	if (!n)
		return 0;
	const char *topic = s->names[ti];
	uint32_t max = 0;
	for (uint32_t i = 0; i < n; i++)
		if (v[i] + 1 > max)
			max = v[i] + 1;
	if (grow_parts(s, ti, max))
		return -1;
	int64_t *com = calloc(max, sizeof *com);
	uint64_t *off = calloc(max, sizeof *off);
	mq_part_offsets_t *po = calloc(max, sizeof *po);
	int rc = !com || !off || !po ? nomem(s) : 0;
	for (uint32_t i = 0; !rc && i < max; i++)
		com[i] = -1;
	if (!rc && s->o->group)
		rc = mq_client_committed(s->c, s->o->group, topic, com, max, &s->err);
	if (!rc)
		rc = mq_client_resolve(s->c, topic, &s->o->start, off, max, &s->err);
	if (!rc)
		rc = mq_client_offsets(s->c, topic, -1, po, max, &s->err);
	for (uint32_t i = 0; !rc && i < n; i++) {
		part_t *p = &s->t[ti].p[v[i]];
		int has = com[v[i]] >= 0;
		/* a partition added after the start: everything in it is new */
		uint64_t at = has ? (uint64_t)com[v[i]] : v[i] >= s->t[ti].initial ? po[v[i]].start : off[v[i]];
		*p = (part_t){.pos = at, .written = at, .flushed = at, .committed = has ? at : 0,
			      .end = po[v[i]].end, .slot = p->slot, .active = 1, .has_commit = has};
		if (s->track)
			rc = mq_outq_reset(&s->q, p->slot, at, &s->err);
	}
	free(com);
	free(off);
	free(po);
	return rc;
}

/* Without a group: read partitions [from, n) of topic ti. */
static int start_all(sub_t *s, uint32_t ti, uint32_t n)
{
	tsub_t *t = &s->t[ti];
	uint32_t *v = malloc((n ? n : 1) * sizeof *v), k = 0;
	if (!v)
		return nomem(s);
	for (uint32_t i = 0; i < n; i++)
		if (i >= t->np || (!t->p[i].active && (t->p[i].gone || !s->started)))
			v[k++] = i;
	if (s->started)
		t->initial = 0; /* what comes back, or is new, since the start: from its beginning */
	int rc = start_positions(s, ti, v, k);
	free(v);
	return rc;
}

/* Apply the member's current assignment: give up what was taken away
 * (after writing out and committing it), start what was added. */
static int apply_assignment(sub_t *s)
{
	int revoked = 0;
	for (uint32_t t = 0; t < s->nt; t++)
		for (uint32_t i = 0; i < s->t[t].np; i++)
			if (s->t[t].p[i].active == 1 && !mq_member_owns(&s->m, t, i)) {
				s->t[t].p[i].active = 2;
				revoked = 1;
			}
	if (revoked) {
		flush_out(s);
		if (commit(s, 1, 0))
			return -1;
		for (uint32_t t = 0; t < s->nt; t++)
			for (uint32_t i = 0; i < s->t[t].np; i++)
				if (s->t[t].p[i].active == 2)
					s->t[t].p[i].active = 0;
	}
	uint32_t *add = malloc((s->m.nowned ? s->m.nowned : 1) * sizeof *add);
	if (!add)
		return nomem(s);
	int rc = 0;
	for (uint32_t t = 0; !rc && t < s->nt; t++) {
		uint32_t n = 0;
		for (uint32_t i = 0; i < s->m.nowned; i++) {
			mq_owned_t q = s->m.owned[i];
			if (q.topic == t && (q.partition >= s->t[t].np || !s->t[t].p[q.partition].active))
				add[n++] = q.partition;
		}
		rc = start_positions(s, t, add, n);
	}
	free(add);
	if (rc)
		return rc;
	if (s->m.acked != s->m.generation) {
		s->m.acked = s->m.generation;
		s->hb_now = revoked; /* let the next owner start at once */
	}
	return 0;
}

static int join(sub_t *s)
{
	if (mq_member_set_topics(&s->m, (const char *const *)s->names, s->nt, &s->err))
		return -1;
	return mq_client_join(s->c, &s->m, &s->err);
}

/* While standing behind a full pipe: keep the group session alive.  The
 * assignment is only looked at (hb_now) once the write is done, and
 * nothing is acknowledged meanwhile, so the broker keeps every partition
 * ours until then.  What a reader that takes slowly (a worker busy with
 * one message) took and outlived is committed meanwhile. */
static int keep_alive(void *ctx)
{
	sub_t *s = ctx;
	if (stop) { /* give the reader STOP_GRACE_MS, then leave it */
		if (!s->stop_at)
			s->stop_at = mq_mono_ms();
		if (mq_mono_ms() - s->stop_at >= STOP_GRACE_MS)
			return 1;
	}
	if (s->track && s->m.member[0] && mq_mono_ms() - s->last_commit >= COMMIT_MS) {
		mq_err_t keep = s->err; /* a failure shows again at the next commit */
		commit(s, 0, 0);
		s->err = keep;
	}
	if (!s->m.member[0] || mq_mono_ms() < s->next_hb)
		return 0;
	/* A copy: the assignment being applied (if any) must not change under it. */
	mq_member_t m = s->m;
	m.owned = NULL;
	m.nowned = m.cap = 0;
	mq_err_t e;
	if (mq_client_heartbeat(s->c, &m, &e) || m.generation != s->m.generation)
		s->hb_now = 1;
	free(m.owned);
	s->next_hb = mq_mono_ms() + s->hb_ivl;
	return 0;
}

static int heartbeat(sub_t *s)
{
	int rc = s->m.member[0] ? mq_client_heartbeat(s->c, &s->m, &s->err) : -MQ_ENOENT;
	if (rc == -MQ_ENOENT) {
		if (s->o->cli.verbose && s->m.member[0])
			fprintf(stderr, "%s: group '%s': %s; joining again\n", prog, s->o->group, s->err.msg);
		s->m.member[0] = 0;
		rc = join(s);
	}
	s->hb_now = 0;
	s->next_hb = mq_mono_ms() + s->hb_ivl;
	if (rc)
		return rc;
	return apply_assignment(s);
}

/* Find topics and partitions: every plain -t (created when following),
 * every topic matching a pattern, partition counts.  New topics join
 * the group (or are read in full without one). */
static int refresh(sub_t *s)
{
	opts_t *o = s->o;
	uint32_t before = s->nt;
	mq_topic_list_t l = {0};
	s->next_refresh = mq_mono_ms() + REFRESH_MS;
	if (!s->started) {
		for (uint32_t i = 0; i < o->ntopics; i++) {
			uint32_t n;
			if (is_pattern(o->topics[i]))
				continue;
			if (mq_client_meta(s->c, o->topics[i], !o->exit_at_end, &n, &s->err))
				return -1;
			if (add_topic(s, o->topics[i], n) < 0)
				return -1;
		}
	}
	if ((s->patterns || !o->group) && mq_client_topics(s->c, &l, &s->err))
		return -1;
	int rc = 0;
	for (uint32_t k = 0; !rc && k < l.n; k++) {
		int64_t ti = topic_index(s, l.names[k]);
		for (uint32_t i = 0; ti < 0 && i < o->ntopics; i++)
			if (is_pattern(o->topics[i]) && fnmatch(o->topics[i], l.names[k], 0) == 0 &&
			    (ti = add_topic(s, l.names[k], l.parts[k])) < 0)
				rc = -1;
		if (!rc && ti >= 0 && !o->group && (l.parts[k] > s->t[ti].np || !s->started))
			rc = start_all(s, (uint32_t)ti, l.parts[k]);
		else if (!rc && ti >= 0 && !o->group) {
			for (uint32_t p = 0; p < s->t[ti].np && p < l.parts[k]; p++)
				if (s->t[ti].p[p].gone) {
					rc = start_all(s, (uint32_t)ti, l.parts[k]);
					break;
				}
		}
	}
	mq_topic_list_free(&l);
	if (rc)
		return -1;
	s->started = 1;
	if (o->group && s->nt != before) {
		if (o->cli.verbose && before)
			fprintf(stderr, "%s: %u new topic%s to read\n", prog, s->nt - before, s->nt - before == 1 ? "" : "s");
		s->hb_now = 1;
		if (s->m.member[0]) { /* tell the broker the new topics */
			if (join(s))
				return -1;
			s->next_hb = mq_mono_ms() + s->hb_ivl;
			s->hb_now = 0;
			return apply_assignment(s);
		}
	}
	return 0;
}

static int send_fetch(sub_t *s)
{
	uint32_t total = 0;
	for (uint32_t t = 0; t < s->nt; t++)
		total += s->t[t].np;
	if (total > s->fp_cap) {
		mq_fetch_pos_t *fp = realloc(s->fp, total * sizeof *fp);
		if (!fp)
			return nomem(s);
		s->fp = fp;
		s->fp_cap = total;
	}
	uint32_t n = 0;
	for (uint32_t t = 0; t < s->nt; t++)
		for (uint32_t i = 0; i < s->t[t].np; i++) {
			part_t *p = &s->t[t].p[i];
			if (p->active != 1 || (s->o->exit_at_end && p->pos >= p->end))
				continue;
			s->fp[n++] = (mq_fetch_pos_t){t, i, p->pos};
		}
	if (!n)
		return 0;
	const mq_fetch_pos_t *fp = s->fp;
	if (n > 4096) { /* the broker's limit per fetch: take turns */
		uint32_t from = s->fetch_rot++ % n;
		for (uint32_t k = 0; k < 4096; k++) { /* rotate in place */
			mq_fetch_pos_t x = s->fp[k];
			s->fp[k] = s->fp[(from + k) % n];
			s->fp[(from + k) % n] = x;
		}
		n = 4096;
	}
	uint32_t wait = s->o->exit_at_end ? 100 : FOLLOW_WAIT_MS;
	return mq_client_fetch_send(s->c, (const char *const *)s->names, s->nt, fp, n, FETCH_MAX_BYTES, wait,
				    s->o->group, s->m.member, &s->err);
}

static int all_at_end(const sub_t *s)
{
	for (uint32_t t = 0; t < s->nt; t++)
		for (uint32_t i = 0; i < s->t[t].np; i++)
			if (s->t[t].p[i].active == 1 && s->t[t].p[i].pos < s->t[t].p[i].end)
				return 0;
	return 1;
}

/* The partition an entry names, if we are reading it. */
static part_t *entry_part(sub_t *s, const mq_fetch_entry_t *e)
{
	if (e->topic >= s->nt || e->partition >= s->t[e->topic].np)
		return NULL;
	part_t *p = &s->t[e->topic].p[e->partition];
	return p->active == 1 ? p : NULL;
}

/* Write the records of one entry's raw batches. */
static int write_entry(sub_t *s, const mq_fetch_entry_t *e, part_t *p)
{
	const uint8_t *d = e->data, *end = e->data + e->nbytes;
	const char *topic = s->names[e->topic];
	while ((size_t)(end - d) >= MQ_BATCH_HEADER && !s->done && !stop) {
		mq_batch_hdr_t h;
		mq_batch_iter_t it;
		if (mq_batch_hdr_decode(d, (size_t)(end - d), &h, &s->err) || h.length > (size_t)(end - d))
			break; /* a cut-off last batch: the next fetch starts there */
		if (!(h.flags & MQ_BF_CONTROL) && h.base_offset + h.count > p->written &&
		    mq_batch_iter_init(&it, d, h.length, &s->err) == 0) {
			mq_record_t rec;
			while (!stop && mq_batch_iter_next(&it, &rec) > 0) {
				if (rec.offset < p->written)
					continue;
				if (mq_writer_put(s->w, topic, e->partition, &rec, &s->err))
					return output_ended(s) ? 0 : -1;
				p->written = rec.offset + 1;
				if (s->track && mq_outq_mark(&s->q, mq_writer_written(s->w) + mq_writer_pending(s->w),
							     p->slot, p->written, &s->err))
					return -1;
				if (++s->out == s->o->count) {
					s->done = 1;
					break;
				}
				if ((s->out & 1023) == 0 && s->track)
					measure(s); /* keeps the outq to what is in the pipe */
				/* A large reply to a slow reader: commit as it goes. */
				if ((s->out & 1023) == 0 && s->o->group && !s->o->at_most_once &&
				    mq_mono_ms() - s->last_commit >= COMMIT_MS) {
					if (flush_out(s))
						return output_ended(s) ? 0 : -1;
					if (commit(s, 0, 0))
						return -1;
				}
			}
		}
		d += h.length;
	}
	if (p->pos < p->written)
		p->pos = p->written;
	return 0;
}

/* Offsets [p->pos, e->next) the broker found damaged: a failure, or
 * with --skip-damaged a line on stderr and a jump past them (which a
 * group then commits).  0, or -1 with s->err. */
static int damaged(sub_t *s, const mq_fetch_entry_t *e, part_t *p)
{
	const char *topic = s->names[e->topic];
	if (!s->o->skip_damaged)
		return mq_err_set(&s->err, MQ_ECORRUPT, "topic '%s' partition %u: offsets %" PRIu64 " to %" PRIu64
				  " are damaged on the broker and were not read (its log names the file; "
				  "--skip-damaged reads past them)", topic, e->partition, p->pos, e->next - 1), -1;
	fprintf(stderr, "%s: topic '%s' partition %u: skipped offsets %" PRIu64 " to %" PRIu64
		", damaged on the broker\n", prog, topic, e->partition, p->pos, e->next - 1);
	p->pos = p->written = e->next;
	return 0;
}

/* Positions from a reply, before its records are written.  0, or -1
 * with s->err. */
static int advance(sub_t *s)
{
	for (uint32_t i = 0; i < s->r.n; i++) {
		const mq_fetch_entry_t *e = &s->r.e[i];
		part_t *p = entry_part(s, e);
		if (!p)
			continue;
		p->end = e->end;
		if (e->err == MQ_EBUSY) {
			s->hb_now = 1;
		} else if (e->err == MQ_ERANGE) {
			/* Below the start: retention took it.  Above the end: the
			 * topic was deleted and made again.  Either way what is
			 * there now is read from its start (again, rather than lost). */
			if (p->pos > e->end)
				p->has_commit = 0;
			p->pos = p->written = p->flushed = e->start;
			if (s->track) /* the slot exists: this cannot fail */
				mq_outq_reset(&s->q, p->slot, e->start, NULL);
		} else if (e->err == 0 && e->next > p->pos) {
			p->pos = e->next;
		} else if (e->err == MQ_ENOENT) {
			p->active = 0;
			p->gone = 1;
		} else if (e->err == MQ_ECORRUPT && e->next > p->pos) {
			if (damaged(s, e, p))
				return -1;
		} else if (e->err) {
			return mq_err_set(&s->err, e->err, "topic '%s' partition %u: the broker cannot serve offset %"
					  PRIu64 " (error %d)", s->names[e->topic], e->partition, p->pos, e->err), -1;
		}
	}
	return 0;
}

/* --at-most-once: commit the end of what this reply will write (up to
 * -n COUNT, since offsets are dense) before writing it. */
static int commit_ahead(sub_t *s)
{
	uint64_t left = s->o->count ? s->o->count - s->out : UINT64_MAX;
	for (uint32_t t = 0; t < s->nt; t++)
		for (uint32_t i = 0; i < s->t[t].np; i++)
			s->t[t].p[i].amo = s->t[t].p[i].written;
	for (uint32_t i = 0; i < s->r.n; i++) {
		const mq_fetch_entry_t *e = &s->r.e[i];
		part_t *p = entry_part(s, e);
		if (!e->nbytes || e->err || !p)
			continue;
		uint64_t avail = e->next > p->amo ? e->next - p->amo : 0;
		uint64_t take = avail < left ? avail : left;
		p->amo += take;
		left -= take;
	}
	return commit(s, 0, 1);
}

static int handle_reply(sub_t *s)
{
	if (advance(s))
		return -1;
	int data = 0;
	for (uint32_t i = 0; i < s->r.n; i++)
		data |= s->r.e[i].nbytes > 0;
	if (s->o->at_most_once && data && commit_ahead(s))
		return -1;
	/* Overlap: the broker works on the next block while we write this one. */
	if (!s->done && !stop && !(s->o->exit_at_end && all_at_end(s)) && send_fetch(s))
		return -1;
	for (uint32_t i = 0; i < s->r.n && !s->done; i++) {
		const mq_fetch_entry_t *e = &s->r.e[i];
		part_t *p = entry_part(s, e);
		if (e->nbytes && e->err == 0 && p && (mq_fetch_entry_check(e, s->names[e->topic], &s->err) || write_entry(s, e, p)))
			return -1;
	}
	if (data && flush_out(s) && !s->epipe)
		return -1;
	if (!s->o->at_most_once && (!data || mq_mono_ms() - s->last_commit >= COMMIT_MS) && commit(s, 0, 0))
		return -1;
	return 0;
}

/* Sleep until the next heartbeat or look at the topics (nothing to
 * read), or until the reader of standard output goes away. */
static void idle(sub_t *s)
{
	int64_t now = mq_mono_ms(), ms = 100;
	if (s->o->group)
		ms = s->next_hb - now;
	if (!s->o->exit_at_end && s->next_refresh - now < ms)
		ms = s->next_refresh - now;
	struct pollfd pfd = {.fd = s->out_pipe ? 1 : -1};
	if (ms > 0)
		poll(&pfd, 1, (int)(ms > 1000 ? 1000 : ms));
	if (reader_gone(s))
		s->epipe = s->done = 1;
}

/* A call that failed: -1, unless a signal cut a control call short (the
 * client's -MQ_EAGAIN once stop is set): then 0, and the loop ends on
 * stop into the usual flush, commit and leave, exit 0. */
static int failed(const sub_t *s)
{
	return stop && s->err.code == MQ_EAGAIN ? 0 : -1;
}

static int run(sub_t *s)
{
	while (!stop && !s->done) {
		int64_t now = mq_mono_ms();
		int looks = !s->o->exit_at_end && (s->patterns || !s->o->group);
		if (looks && now >= s->next_refresh && refresh(s))
			return failed(s);
		if (s->o->group && (s->hb_now || mq_mono_ms() >= s->next_hb) && heartbeat(s))
			return failed(s);
		if (s->o->exit_at_end && all_at_end(s))
			break;
		if (!mq_client_fetch_pending(s->c)) {
			if (send_fetch(s))
				return failed(s);
			if (!mq_client_fetch_pending(s->c)) {
				idle(s);
				continue;
			}
		}
		now = mq_mono_ms();
		int64_t wait = s->o->group ? s->next_hb - now : 1000;
		if (looks && s->next_refresh - now < wait)
			wait = s->next_refresh - now;
		int rc = mq_client_fetch_recv(s->c, &s->r, wait < 0 ? 0 : (int)wait, &s->err);
		if (rc == -MQ_EAGAIN) { /* a deadline, a signal, or the reader went away */
			if (reader_gone(s))
				s->epipe = s->done = 1;
			continue;
		}
		if (rc)
			return rc;
		if (handle_reply(s))
			return failed(s);
	}
	return 0;
}

static int setup(sub_t *s)
{
	opts_t *o = s->o;
	mq_client_opts_t co = {.endpoint = o->cli.broker, .timeout_ms = o->cli.timeout_ms, .name = prog, .interrupt = &stop};
	mq_hello_t h;
	for (uint32_t i = 0; i < o->ntopics; i++)
		s->patterns |= is_pattern(o->topics[i]);
	if (mq_client_open(&co, &s->c, &s->err))
		return -1;
	if (s->out_pipe)
		mq_client_watch_fd(s->c, 1);
	if (mq_client_hello(s->c, &h, &s->err) || refresh(s))
		return -1;
	if (o->exit_at_end && s->nt == 0 && !o->cli.quiet)
		fprintf(stderr, "%s: no topic matches %s%s\n", prog, o->topics[0], o->ntopics > 1 ? " (or the other -t)" : "");
	if (o->group) {
		snprintf(s->m.group, sizeof s->m.group, "%s", o->group);
		s->m.session_ms = o->session_ms;
		s->hb_ivl = o->session_ms / 3 < 1000 ? o->session_ms / 3 : 1000;
		mq_writer_on_wait(s->w, (int)s->hb_ivl, keep_alive, s);
		return heartbeat(s);
	}
	mq_writer_on_wait(s->w, 500, keep_alive, s);
	return 0;
}

/* At exit into a pipe: let the reader take what is in it and outlive
 * taking it, so that it is committed.  Waits from tick to tick (and
 * heartbeat to heartbeat), ending early when the reader goes, for as
 * long as the reader keeps taking: that is bounded by what the pipe
 * holds.  Stops once all it took is committable and it took nothing
 * more for a whole tick (or nothing is left unread).  A second signal
 * cuts it. */
static void wait_for_reader(sub_t *s)
{
	uint64_t seen = 0;
	int64_t since = mq_mono_ms(); /* when the reader last took something */
	while (!s->epipe && stop < 2) {
		tick(s);
		int64_t now = mq_mono_ms(), due = mq_outq_due(&s->q);
		if (s->q.taken != seen) {
			seen = s->q.taken;
			since = now;
		}
		if (s->epipe || (!due && (seen >= mq_writer_written(s->w) || now - since >= COMMIT_MS)))
			break;
		int64_t ms = due ? due - now : since + COMMIT_MS - now;
		if (s->next_hb - now < ms)
			ms = s->next_hb - now;
		struct pollfd pfd = {.fd = 1};
		poll(&pfd, 1, (int)(ms > 1 ? ms : 1));
		keep_alive(s);
	}
}

/* Flush, commit, leave; 0 or 1 (exit status). */
static int finish(sub_t *s, int failed)
{
	if (s->w && !s->epipe && flush_out(s) && !s->epipe) {
		fprintf(stderr, "%s: %s\n", prog, s->err.msg);
		failed = 1;
	}
	if (s->track && s->m.member[0])
		wait_for_reader(s);
	if (s->o->group && s->m.member[0] && !s->o->at_most_once && commit(s, 0, 0)) {
		fprintf(stderr, "%s: %s\n", prog, s->err.msg);
		failed = 1;
	}
	if (s->o->group && s->m.member[0] && mq_client_leave(s->c, &s->m, &s->err) && s->o->cli.verbose)
		fprintf(stderr, "%s: leaving group '%s': %s\n", prog, s->o->group, s->err.msg);
	if (s->o->cli.verbose)
		fprintf(stderr, "%s: %" PRIu64 " messages written, %" PRIu64 " commits, %" PRIu64 " expired skipped\n",
			prog, s->out, s->commits, mq_client_expired(s->c));
	return failed;
}

static void sub_free(sub_t *s)
{
	for (uint32_t t = 0; t < s->nt; t++) {
		free(s->names[t]);
		free(s->t[t].p);
	}
	free(s->names);
	free(s->t);
	free(s->fp);
	mq_outq_free(&s->q);
}

int main(int argc, char **argv)
{
	opts_t o = {.session_ms = 10000, .start = {MQ_OFF_BEGINNING, 0}};
	mq_cli_init(&o.cli);
	int rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (o.cli.quiet)
		o.cli.verbose = 0;
	sub_t s = {.o = &o};
	mq_writer_opts_t wo = {.fmt = o.fmt, .template = o.template};
	if (mq_writer_new(1, &wo, &s.w, &s.err)) {
		fprintf(stderr, "%s: %s\n", prog, s.err.msg);
		return 2;
	}
	struct stat st;
	if (fstat(1, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		s.out_pipe = S_ISSOCK(st.st_mode) ? 2 : 1;
	s.track = s.out_pipe && o.group && !o.at_most_once;
	mq_outq_init(&s.q, COMMIT_MS);
	mq_cli_signals(on_signal);

	int failed = 0;
	if (setup(&s) || run(&s)) {
		fprintf(stderr, "%s: %s\n", prog, s.err.msg);
		failed = 1;
	}
	failed = finish(&s, failed);
	mq_fetch_reply_free(&s.r);
	mq_member_free(&s.m);
	mq_writer_free(s.w);
	mq_client_close(s.c);
	sub_free(&s);
	return failed;
}
