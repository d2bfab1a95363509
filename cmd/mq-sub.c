/*
 * mq-sub -- messages of a topic to standard output.
 *
 * The consumer engine (lib/consumer.h) finds the topics, keeps the group
 * membership and the positions, fetches and commits; this file is its
 * sink: records are formatted into standard output, and the engine is
 * told what reached the reader, which is all it may commit.  Into a
 * regular file or a terminal, that is what was written and flushed;
 * into a pipe or a socket, what the reader took out of it (written less
 * what the kernel says is unread) and then outlived, by the two-tick
 * rule of lib/outq.h: what it had taken at one tick is committed at the
 * next if it is still there.  So `mq-sub -g G | head -3`, where head
 * reads a whole block and exits, commits none of that block.  With
 * --at-most-once the commit goes first and the output after.
 *
 * Into a pipe, each record's end (its byte position in all we wrote)
 * goes to the outq, under the partition's slot.
 *
 * A reader that goes away (EPIPE, or the pipe's POLLERR, which every
 * wait watches so that a quiet topic does not hide it) ends mq-sub
 * quietly with status 0, as the reader chose to stop; nothing it took
 * since the last commit is committed.
 */
#include <errno.h>
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
#include "consumer.h"
#include "mq.h"
#include "outq.h"
#include "record.h"

static const char *prog = "mq-sub";

#define COMMIT_MS 500
#define STOP_GRACE_MS 2000 /* on SIGTERM, how long a stuck reader gets */
#define MAX_PATTERNS MQ_CONSUMER_MAX_PATTERNS

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
		if (mq_consumer_is_pattern(arg) ? mq_consumer_check_pattern(arg, err)
						: mq_name_check("topic", arg, 0, err))
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

/* ---- the output sink ---- */

typedef struct out {
	opts_t *o;
	mq_consumer_t *k;
	mq_writer_t *w;
	int64_t stop_at; /* when a stop signal was seen while the reader was stuck */
	int epipe;
	int out_pipe; /* standard output is a pipe (1) or a socket (2) */
	int track;    /* out_pipe, a group and no --at-most-once: commit what the outq says */
	mq_outq_t q;
	mq_err_t err;
} out_t;

/* After a failed write: did the output end (the reader went away, or is
 * stuck and we were told to stop)?  Then mq-sub ends quietly, and what
 * was not written is not committed. */
static int output_ended(out_t *u, const mq_err_t *err)
{
	if (err->sys == EPIPE || (stop && err->code == MQ_EAGAIN))
		u->epipe = 1;
	return u->epipe;
}

/* Has the reader of standard output (a pipe or socket) gone away? */
static int reader_gone(const out_t *u)
{
	struct pollfd pfd = {.fd = 1};
	return u->out_pipe && poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL));
}

/* Tell the outq how much the reader took: what we wrote less what is
 * still unread in the pipe (FIONREAD) or in the socket's send queue
 * (SIOCOUTQ; over TCP that is what the peer's kernel acknowledged).
 * Bytes that others wrote into the pipe only make it count less. */
static void measure(out_t *u)
{
	int unread = 0;
	if (ioctl(1, u->out_pipe == 2 ? SIOCOUTQ : FIONREAD, &unread) < 0 || unread < 0)
		return; /* cannot tell: nothing more counts as taken */
	uint64_t w = mq_writer_written(u->w);
	mq_outq_taken(&u->q, w > (uint64_t)unread ? w - (uint64_t)unread : 0);
}

static int out_put(void *ctx, uint32_t ti, const char *topic, uint32_t p, const mq_consumer_part_t *part,
		   const mq_record_t *rec, mq_err_t *err)
{
	out_t *u = ctx;
	(void)ti;
	if (u->epipe)
		return 1;
	if (mq_writer_put(u->w, topic, p, rec, err))
		return output_ended(u, err) ? 1 : -1;
	if (u->track && mq_outq_mark(&u->q, mq_writer_written(u->w) + mq_writer_pending(u->w), part->slot,
				     rec->offset + 1, err))
		return -1;
	if (u->track && (rec->offset & 1023) == 0)
		measure(u); /* keeps the outq to what is in the pipe */
	return 0;
}

/* Write out what is buffered; on success everything written is acked. */
static int out_flush(void *ctx, mq_consumer_t *k, mq_err_t *err)
{
	out_t *u = ctx;
	if (u->epipe)
		return 1;
	if (mq_writer_flush(u->w, err))
		return output_ended(u, err) ? 1 : -1;
	mq_consumer_ack_all(k);
	if (u->track)
		measure(u);
	return 0;
}

static uint64_t out_bound(void *ctx, const mq_consumer_part_t *p)
{
	out_t *u = ctx;
	return u->track ? mq_outq_ready(&u->q, p->slot) : UINT64_MAX;
}

static int out_start(void *ctx, uint32_t ti, uint32_t p, const mq_consumer_part_t *part, mq_err_t *err)
{
	out_t *u = ctx;
	(void)ti;
	(void)p;
	return u->track ? mq_outq_reset(&u->q, part->slot, part->written, err) : 0;
}

/* A commit tick: what the reader had taken at the last one becomes
 * committable if it is still there now. */
static int out_tick(void *ctx)
{
	out_t *u = ctx;
	if (!u->track || u->epipe)
		return u->epipe;
	measure(u);
	if (reader_gone(u))
		return u->epipe = 1;
	mq_outq_tick(&u->q, mq_mono_ms());
	return 0;
}

static int out_wake(void *ctx, mq_consumer_t *k, mq_err_t *err)
{
	out_t *u = ctx;
	(void)k;
	(void)err;
	if (reader_gone(u))
		u->epipe = 1;
	return u->epipe;
}

static const mq_consumer_sink_t out_sink = {
	.put = out_put,
	.flush = out_flush,
	.bound = out_bound,
	.start = out_start,
	.tick = out_tick,
	.wake = out_wake,
};

/* While standing behind a full pipe: keep the group session alive and
 * commit what a reader that takes slowly took and outlived; on a stop
 * signal give the reader STOP_GRACE_MS, then leave it. */
static int keep_alive(void *ctx)
{
	out_t *u = ctx;
	if (stop) {
		if (!u->stop_at)
			u->stop_at = mq_mono_ms();
		if (mq_mono_ms() - u->stop_at >= STOP_GRACE_MS)
			return 1;
	}
	if (u->k)
		mq_consumer_keep_alive(u->k, &u->err);
	return 0;
}

/* At exit into a pipe: let the reader take what is in it and outlive
 * taking it, so that it is committed.  Waits from tick to tick (and
 * heartbeat to heartbeat), ending early when the reader goes, for as
 * long as the reader keeps taking: that is bounded by what the pipe
 * holds.  Stops once all it took is committable and it took nothing
 * more for a whole tick (or nothing is left unread).  A second signal
 * cuts it. */
static void wait_for_reader(out_t *u)
{
	uint64_t seen = 0;
	int64_t since = mq_mono_ms(); /* when the reader last took something */
	while (!u->epipe && stop < 2) {
		out_tick(u);
		int64_t now = mq_mono_ms(), due = mq_outq_due(&u->q);
		if (u->q.taken != seen) {
			seen = u->q.taken;
			since = now;
		}
		if (u->epipe || (!due && (seen >= mq_writer_written(u->w) || now - since >= COMMIT_MS)))
			break;
		int64_t ms = due ? due - now : since + COMMIT_MS - now;
		if (ms > 1000)
			ms = 1000;
		struct pollfd pfd = {.fd = 1};
		poll(&pfd, 1, (int)(ms > 1 ? ms : 1));
		keep_alive(u);
	}
}

static void on_notice(void *ctx, const char *msg)
{
	opts_t *o = ctx;
	if (!o->cli.quiet)
		fprintf(stderr, "%s: %s\n", prog, msg);
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
	out_t u = {.o = &o};
	mq_writer_opts_t wo = {.fmt = o.fmt, .template = o.template};
	if (mq_writer_new(1, &wo, &u.w, &u.err)) {
		fprintf(stderr, "%s: %s\n", prog, u.err.msg);
		return 2;
	}
	struct stat st;
	if (fstat(1, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		u.out_pipe = S_ISSOCK(st.st_mode) ? 2 : 1;
	u.track = u.out_pipe && o.group && !o.at_most_once;
	mq_outq_init(&u.q, COMMIT_MS);
	mq_cli_signals(on_signal);

	mq_client_t *c = NULL;
	mq_client_opts_t co = {.endpoint = o.cli.broker, .timeout_ms = o.cli.timeout_ms, .name = prog, .interrupt = &stop};
	mq_consumer_opts_t ko = {.topics = o.topics, .ntopics = o.ntopics, .group = o.group, .start = o.start,
				 .exit_at_end = o.exit_at_end, .at_most_once = o.at_most_once,
				 .skip_damaged = o.skip_damaged, .verbose = o.cli.verbose, .count = o.count,
				 .session_ms = o.session_ms, .commit_ms = COMMIT_MS, .report = on_notice,
				 .report_ctx = &o, .sink = &out_sink, .sink_ctx = &u,
				 .watch_fd = u.out_pipe ? 1 : -1, .interrupt = &stop};
	mq_hello_t h;
	int failed = 0;
	mq_err_t err = {0};
	/* While a write waits on the reader: heartbeats on time. */
	int64_t hb = o.session_ms / 3 < 1000 ? o.session_ms / 3 : 1000;
	mq_writer_on_wait(u.w, o.group ? (int)hb : 500, keep_alive, &u);
	if (mq_client_open(&co, &c, &err) || mq_client_hello(c, &h, &err) || mq_consumer_open(c, &ko, &u.k, &err)) {
		if (!(stop && err.code == MQ_EAGAIN)) {
			fprintf(stderr, "%s: %s\n", prog, err.msg);
			failed = 1;
		}
	} else {
		while (!stop && (rc = mq_consumer_step(u.k, &err)) == 0)
			;
		if (rc < 0 && !(stop && err.code == MQ_EAGAIN)) {
			fprintf(stderr, "%s: %s\n", prog, err.msg);
			failed = 1;
		}
	}
	/* Flush, let a pipe's reader take what is in it, commit, leave. */
	if (u.k && !u.epipe && out_flush(&u, u.k, &err) < 0 && !u.epipe) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		failed = 1;
	}
	if (u.k && u.track && mq_consumer_in_group(u.k))
		wait_for_reader(&u);
	if (u.k && mq_consumer_finish(u.k, &err)) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		failed = 1;
	}
	if (o.cli.verbose && u.k)
		fprintf(stderr, "%s: %" PRIu64 " messages written, %" PRIu64 " commits, %" PRIu64 " expired skipped\n",
			prog, mq_consumer_delivered(u.k), mq_consumer_commits(u.k), mq_client_expired(c));
	mq_consumer_close(u.k);
	mq_writer_free(u.w);
	mq_client_close(c);
	mq_outq_free(&u.q);
	return failed;
}
