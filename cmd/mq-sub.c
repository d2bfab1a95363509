/*
 * mq-sub -- messages of a topic to standard output.
 *
 * One FETCH is always outstanding while records are written: as soon
 * as a reply arrives the next request goes out (its offsets are the
 * reply's `next`), and only then is the reply decoded and written, so
 * the broker prepares the next block while this one is formatted.
 *
 * Without -g every partition is read and nothing is committed.  With
 * -g GROUP the broker assigns partitions; a partition's committed offset
 * only ever moves to what was written AND flushed to standard output
 * (at least once), in batches: at most every COMMIT_MS, when the topic
 * goes quiet, before giving a partition up, and at exit.  With
 * --at-most-once the commit goes first and the output after.
 *
 * Per partition three offsets: pos (next to fetch), written (after the
 * last record formatted) and flushed (after the last record known to be
 * out of our buffer); records below `written` are skipped, since a
 * fetch returns whole stored batches.
 *
 * A reader that goes away (EPIPE, e.g. `mq-sub ... | head`) ends mq-sub
 * quietly with status 0, as the reader chose to stop; what was lost in
 * the pipe is not committed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_done.h"
#include "client.h"
#include "mq.h"
#include "record.h"

static const char *prog = "mq-sub";

#define FETCH_MAX_BYTES (8u << 20)
#define FOLLOW_WAIT_MS 1000
#define COMMIT_MS 500

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: mq-sub -t TOPIC [-g GROUP] [-o OFFSET] [-e] [-n COUNT] [-F FORMAT | -f FMT] [options]\n"
		"\n"
		"  -t, --topic NAME         topic to read\n"
		"  -g, --group GROUP        consumer group: share partitions, commit offsets\n"
		"  -o, --offset OFFSET      beginning (default), end, N, -N (per partition),\n"
		"                           @MS, @2026-11-24T10:00:00Z or @-1h; with -g only where\n"
		"                           the group has no committed offset\n"
		"  -e, --exit-at-end        exit once every assigned partition is read to its end\n"
		"  -n, --count COUNT        exit after COUNT messages\n"
		"  -0                       end each value with NUL instead of a newline\n"
		"  -f, --format FMT         lines, nul, json or msgpack (envelopes)\n"
		"  -F, --template FORMAT    printf-like: %%t %%p %%o %%k %%s %%T %%i %%h %%S, \\n \\t \\0 %%%%\n"
		"      --at-most-once       commit before output\n"
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
	MQ_CLI_LONGOPTS,
	{"exec", required_argument, NULL, OPT_LATER},
	{"check-seq", no_argument, NULL, OPT_LATER},
	{"max-attempts", required_argument, NULL, OPT_LATER},
	{"dlq", required_argument, NULL, OPT_LATER},
	{NULL, 0, NULL, 0},
};

typedef struct opts {
	mq_cli_t cli;
	const char *topic, *group, *template;
	mq_offset_spec_t start;
	int exit_at_end, at_most_once, nul, fmt_set;
	uint64_t count; /* 0: no limit */
	mq_fmt_t fmt;
	int64_t session_ms;
} opts_t;

static int check_opts(void *ctx, mq_err_t *err)
{
	opts_t *o = ctx;
	if (!o->topic)
		return mq_err_set(err, MQ_EINVAL, "no topic: give one with -t TOPIC");
	if (strpbrk(o->topic, "*?["))
		return mq_err_set(err, MQ_EINVAL, "topic '%.200s': patterns are not available in this version of mq-sub",
				  o->topic);
	if (mq_name_check("topic", o->topic, 0, err) || (o->group && mq_name_check("group", o->group, 0, err)))
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
		if (o->topic)
			return mq_err_set(err, MQ_EINVAL,
					  "one -t only: several topics are not available in this version of mq-sub");
		o->topic = arg;
		return 0;
	case 'g': o->group = arg; return 0;
	case 'e': o->exit_at_end = 1; return 0;
	case '0': o->nul = 1; return 0;
	case 'F': o->template = arg; return 0;
	case OPT_AMO: o->at_most_once = 1; return 0;
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
	int active, has_commit;
} part_t;

typedef struct sub {
	opts_t *o;
	mq_client_t *c;
	mq_writer_t *w;
	mq_member_t m;
	part_t *p;
	uint32_t np;
	mq_fetch_pos_t *fp;
	mq_fetch_reply_t r;
	uint64_t out, commits;
	int64_t next_hb, hb_ivl, last_commit;
	int hb_now, done, epipe;
	mq_err_t err;
} sub_t;

static int grow_parts(sub_t *s, uint32_t n)
{
	if (n <= s->np)
		return 0;
	part_t *p = realloc(s->p, n * sizeof *p);
	mq_fetch_pos_t *fp = p ? realloc(s->fp, n * sizeof *fp) : NULL;
	if (p)
		s->p = p;
	if (!p || !fp)
		return mq_err_set(&s->err, MQ_ENOMEM, "out of memory");
	s->fp = fp;
	memset(s->p + s->np, 0, (n - s->np) * sizeof *p);
	s->np = n;
	return 0;
}

/* Write out what is buffered; on success everything written is flushed. */
static int flush_out(sub_t *s)
{
	if (s->epipe)
		return -1;
	if (mq_writer_flush(s->w, &s->err)) {
		if (s->err.sys == EPIPE) {
			s->epipe = 1;
			s->done = 1;
		}
		return -1;
	}
	for (uint32_t i = 0; i < s->np; i++)
		s->p[i].flushed = s->p[i].written;
	return 0;
}

/* Commit the flushed (amo: the about-to-be-written) offsets of the
 * active partitions, or (revoked_only) of those being given up
 * (active == 2).  A commit never moves back. */
static int commit(sub_t *s, int revoked_only, int amo)
{
	if (!s->o->group || !s->m.member[0])
		return 0;
	uint32_t *parts = malloc((s->np ? s->np : 1) * sizeof *parts);
	uint64_t *offs = malloc((s->np ? s->np : 1) * sizeof *offs);
	uint32_t n = 0;
	for (uint32_t i = 0; parts && offs && i < s->np; i++) {
		part_t *p = &s->p[i];
		uint64_t at = amo ? p->amo : p->flushed;
		if ((revoked_only ? p->active != 2 : p->active != 1) || (p->has_commit && at <= p->committed))
			continue;
		parts[n] = i;
		offs[n++] = at;
	}
	int rc = 0;
	if (!parts || !offs)
		rc = mq_err_set(&s->err, MQ_ENOMEM, "out of memory");
	else if (n)
		rc = mq_client_commit(s->c, s->o->group, s->m.member, s->o->topic, parts, offs, n, &s->err);
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		s->p[parts[i]].committed = offs[i];
		s->p[parts[i]].has_commit = 1;
	}
	if (rc == 0 && n)
		s->commits++;
	s->last_commit = mq_mono_ms();
	free(parts);
	free(offs);
	if (rc == -MQ_EBUSY || rc == -MQ_ENOENT) {
		/* We lost a partition meanwhile: its new owner starts from the
		 * last commit, so those records are delivered again (at least once). */
		s->hb_now = 1;
		if (!s->o->cli.quiet)
			fprintf(stderr, "%s: commit refused: %s\n", prog, s->err.msg);
		return 0;
	}
	return rc;
}

/* Start positions of the partitions in v[0..n): committed offset, else -o. */
static int start_positions(sub_t *s, const uint32_t *v, uint32_t n)
{
	if (!n)
		return 0;
	uint32_t max = 0;
	for (uint32_t i = 0; i < n; i++)
		if (v[i] + 1 > max)
			max = v[i] + 1;
	if (grow_parts(s, max))
		return -1;
	int64_t *com = calloc(max, sizeof *com);
	uint64_t *off = calloc(max, sizeof *off);
	mq_part_offsets_t *po = calloc(max, sizeof *po);
	int rc = !com || !off || !po ? mq_err_set(&s->err, MQ_ENOMEM, "out of memory") : 0;
	for (uint32_t i = 0; !rc && i < max; i++)
		com[i] = -1;
	if (!rc && s->o->group)
		rc = mq_client_committed(s->c, s->o->group, s->o->topic, com, max, &s->err);
	if (!rc)
		rc = mq_client_resolve(s->c, s->o->topic, &s->o->start, off, max, &s->err);
	if (!rc)
		rc = mq_client_offsets(s->c, s->o->topic, -1, po, max, &s->err);
	for (uint32_t i = 0; !rc && i < n; i++) {
		part_t *p = &s->p[v[i]];
		int has = com[v[i]] >= 0;
		uint64_t at = has ? (uint64_t)com[v[i]] : off[v[i]];
		*p = (part_t){.pos = at, .written = at, .flushed = at, .committed = has ? at : 0,
			      .end = po[v[i]].end, .active = 1, .has_commit = has};
	}
	free(com);
	free(off);
	free(po);
	return rc;
}

/* Apply the member's current assignment: give up what was taken away
 * (after writing out and committing it), start what was added. */
static int apply_assignment(sub_t *s)
{
	int revoked = 0;
	for (uint32_t i = 0; i < s->np; i++)
		if (s->p[i].active == 1 && !mq_member_owns(&s->m, i)) {
			s->p[i].active = 2;
			revoked = 1;
		}
	if (revoked) {
		flush_out(s);
		if (commit(s, 1, 0))
			return -1;
		for (uint32_t i = 0; i < s->np; i++)
			if (s->p[i].active == 2)
				s->p[i].active = 0;
	}
	uint32_t *add = malloc((s->m.nowned ? s->m.nowned : 1) * sizeof *add);
	if (!add)
		return mq_err_set(&s->err, MQ_ENOMEM, "out of memory");
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->m.nowned; i++) {
		uint32_t q = s->m.owned[i];
		if (q >= s->np || !s->p[q].active)
			add[n++] = q;
	}
	int rc = start_positions(s, add, n);
	free(add);
	if (rc)
		return rc;
	if (s->m.acked != s->m.generation) {
		s->m.acked = s->m.generation;
		s->hb_now = revoked; /* let the next owner start at once */
	}
	return 0;
}

static int heartbeat(sub_t *s)
{
	int rc = s->m.member[0] ? mq_client_heartbeat(s->c, &s->m, &s->err) : -MQ_ENOENT;
	if (rc == -MQ_ENOENT) {
		if (s->o->cli.verbose && s->m.member[0])
			fprintf(stderr, "%s: group '%s': %s; joining again\n", prog, s->o->group, s->err.msg);
		s->m.member[0] = 0;
		rc = mq_client_join(s->c, &s->m, &s->err);
	}
	s->hb_now = 0;
	s->next_hb = mq_mono_ms() + s->hb_ivl;
	if (rc)
		return rc;
	return apply_assignment(s);
}

static int send_fetch(sub_t *s)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->np; i++) {
		if (s->p[i].active != 1)
			continue;
		if (s->o->exit_at_end && s->p[i].pos >= s->p[i].end)
			continue;
		s->fp[n++] = (mq_fetch_pos_t){i, s->p[i].pos};
	}
	if (!n)
		return 0;
	uint32_t wait = s->o->exit_at_end ? 100 : FOLLOW_WAIT_MS;
	return mq_client_fetch_send(s->c, s->o->topic, s->fp, n, FETCH_MAX_BYTES, wait, s->o->group, s->m.member,
				    &s->err);
}

static int all_at_end(const sub_t *s)
{
	for (uint32_t i = 0; i < s->np; i++)
		if (s->p[i].active == 1 && s->p[i].pos < s->p[i].end)
			return 0;
	return 1;
}

/* Write the records of one entry's raw batches. */
static int write_entry(sub_t *s, const mq_fetch_entry_t *e)
{
	part_t *p = &s->p[e->partition];
	const uint8_t *d = e->data, *end = e->data + e->nbytes;
	while ((size_t)(end - d) >= MQ_BATCH_HEADER && !s->done) {
		mq_batch_hdr_t h;
		mq_batch_iter_t it;
		if (mq_batch_hdr_decode(d, (size_t)(end - d), &h, &s->err) || h.length > (size_t)(end - d))
			break; /* a cut-off last batch: the next fetch starts there */
		if (!(h.flags & MQ_BF_CONTROL) && h.base_offset + h.count > p->written &&
		    mq_batch_iter_init(&it, d, h.length, &s->err) == 0) {
			mq_record_t rec;
			while (mq_batch_iter_next(&it, &rec) > 0) {
				if (rec.offset < p->written)
					continue;
				if (mq_writer_put(s->w, s->o->topic, e->partition, &rec, &s->err)) {
					if (s->err.sys == EPIPE)
						s->epipe = s->done = 1;
					return s->epipe ? 0 : -1;
				}
				p->written = rec.offset + 1;
				if (++s->out == s->o->count) {
					s->done = 1;
					break;
				}
			}
		}
		d += h.length;
	}
	if (p->pos < p->written)
		p->pos = p->written;
	return 0;
}

/* Positions from a reply, before its records are written. */
static void advance(sub_t *s)
{
	for (uint32_t i = 0; i < s->r.n; i++) {
		const mq_fetch_entry_t *e = &s->r.e[i];
		if (e->partition >= s->np || s->p[e->partition].active != 1)
			continue;
		part_t *p = &s->p[e->partition];
		p->end = e->end;
		if (e->err == MQ_EBUSY) {
			s->hb_now = 1;
		} else if (e->err == MQ_ERANGE) {
			p->pos = p->written = p->pos < e->start ? e->start : e->end;
		} else if (e->err == 0 && e->next > p->pos) {
			p->pos = e->next;
		} else if (e->err == MQ_ENOENT) {
			p->active = 0;
		}
	}
}

/* --at-most-once: commit the end of what this reply will write (up to
 * -n COUNT, since offsets are dense) before writing it. */
static int commit_ahead(sub_t *s)
{
	uint64_t left = s->o->count ? s->o->count - s->out : UINT64_MAX;
	for (uint32_t i = 0; i < s->np; i++)
		s->p[i].amo = s->p[i].written;
	for (uint32_t i = 0; i < s->r.n; i++) {
		const mq_fetch_entry_t *e = &s->r.e[i];
		if (!e->nbytes || e->err || e->partition >= s->np || s->p[e->partition].active != 1)
			continue;
		part_t *p = &s->p[e->partition];
		uint64_t avail = e->next > p->amo ? e->next - p->amo : 0;
		uint64_t take = avail < left ? avail : left;
		p->amo += take;
		left -= take;
	}
	return commit(s, 0, 1);
}

static int handle_reply(sub_t *s)
{
	advance(s);
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
		if (e->nbytes && e->err == 0 && e->partition < s->np && s->p[e->partition].active == 1 &&
		    write_entry(s, e))
			return -1;
	}
	if (data && flush_out(s) && !s->epipe)
		return -1;
	if (!s->o->at_most_once && (!data || mq_mono_ms() - s->last_commit >= COMMIT_MS) && commit(s, 0, 0))
		return -1;
	return 0;
}

/* Sleep until the next heartbeat (no partition to read). */
static void idle(sub_t *s)
{
	int64_t ms = s->next_hb - mq_mono_ms();
	if (!s->o->group)
		ms = 100;
	if (ms > 0)
		poll(NULL, 0, (int)(ms > 1000 ? 1000 : ms));
}

static int run(sub_t *s)
{
	while (!stop && !s->done) {
		if (s->o->group && (s->hb_now || mq_mono_ms() >= s->next_hb) && heartbeat(s))
			return -1;
		if (s->o->exit_at_end && all_at_end(s))
			break;
		if (!mq_client_fetch_pending(s->c)) {
			if (send_fetch(s))
				return -1;
			if (!mq_client_fetch_pending(s->c)) {
				idle(s);
				continue;
			}
		}
		int wait = s->o->group ? (int)(s->next_hb - mq_mono_ms()) : 1000;
		int rc = mq_client_fetch_recv(s->c, &s->r, wait < 0 ? 0 : wait, &s->err);
		if (rc == -MQ_EAGAIN)
			continue;
		if (rc)
			return rc;
		if (handle_reply(s))
			return -1;
	}
	return 0;
}

static int setup(sub_t *s)
{
	opts_t *o = s->o;
	mq_client_opts_t co = {.endpoint = o->cli.broker, .timeout_ms = o->cli.timeout_ms, .name = prog, .interrupt = &stop};
	mq_hello_t h;
	uint32_t n;
	if (mq_client_open(&co, &s->c, &s->err) || mq_client_hello(s->c, &h, &s->err) ||
	    mq_client_meta(s->c, o->topic, !o->exit_at_end, &n, &s->err) || grow_parts(s, n))
		return -1;
	if (o->group) {
		snprintf(s->m.group, sizeof s->m.group, "%s", o->group);
		snprintf(s->m.topic, sizeof s->m.topic, "%s", o->topic);
		s->m.session_ms = o->session_ms;
		s->hb_ivl = o->session_ms / 3 < 1000 ? o->session_ms / 3 : 1000;
		return heartbeat(s);
	}
	uint32_t *all = malloc(n * sizeof *all);
	if (!all)
		return mq_err_set(&s->err, MQ_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++)
		all[i] = i;
	int rc = start_positions(s, all, n);
	free(all);
	return rc;
}

/* Flush, commit, leave; 0 or 1 (exit status). */
static int finish(sub_t *s, int failed)
{
	if (s->w && !s->epipe && flush_out(s) && !s->epipe) {
		fprintf(stderr, "%s: %s\n", prog, s->err.msg);
		failed = 1;
	}
	if (s->o->group && s->m.member[0] && !s->o->at_most_once && commit(s, 0, 0)) {
		fprintf(stderr, "%s: %s\n", prog, s->err.msg);
		failed = 1;
	}
	if (s->o->group && s->m.member[0] && mq_client_leave(s->c, &s->m, &s->err) && s->o->cli.verbose)
		fprintf(stderr, "%s: leaving group '%s': %s\n", prog, s->o->group, s->err.msg);
	if (s->o->cli.verbose)
		fprintf(stderr, "%s: %" PRIu64 " messages written, %" PRIu64 " commits\n", prog, s->out, s->commits);
	return failed;
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
	free(s.p);
	free(s.fp);
	return failed;
}
