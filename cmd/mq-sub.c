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
#include "kafka.h"
#include "consumer.h"
#include "exec.h"
#include "mq.h"
#include "outq.h"
#include "record.h"

static const char *prog = "mq-sub";

#define COMMIT_MS 500
#define STOP_GRACE_MS 2000 /* on SIGTERM, how long a stuck reader gets */
#define MAX_PATTERNS MQ_CONSUMER_MAX_PATTERNS

static volatile sig_atomic_t stop; /* signals so far (mq_cli_signals): a second one cuts the wait for the reader at exit */

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
		"                           @SECONDS, @MS (below 10^11: seconds), @2026-11-24,\n"
		"                           @2026-11-24T10:00 (local), @2026-11-24T10:00:00Z or\n"
		"                           @-1h30m; with -g only where the group has no\n"
		"                           committed offset\n"
		"  -e, --exit-at-end        exit once every assigned partition is read to its end\n"
		"  -n, --count COUNT        exit after COUNT messages\n"
		"      --max-wait DURATION  stop after DURATION at most; exit 1 if -n was given\n"
		"                           and not reached\n"
		"  -0                       end each value with NUL instead of a newline\n"
		"  -f, --format FMT         lines, nul, json or msgpack (envelopes)\n"
		"  -F, --template FORMAT    printf-like: %%t %%p %%o %%k %%s %%T %%D %%i %%h %%S, \\n \\t \\0 %%%%\n"
		"      --at-most-once       commit before output\n"
		"      --exec CMD           run CMD (sh -c) once per message, value on stdin,\n"
		"                           MQ_TOPIC MQ_PARTITION MQ_OFFSET MQ_KEY MQ_ID ... set;\n"
		"                           exit 0 commits, a failure is retried, then dead-lettered\n"
		"      --max-attempts N     runs of CMD per message before the dead letter (default 5)\n"
		"      --backoff MIN[,MAX]  wait between runs, doubling (default 1s,1m)\n"
		"      --exec-timeout D     kill a run of CMD after D (default: never)\n"
		"      --dlq NAME           dead-letter topic (default TOPIC.dlq)\n"
		"      --concurrency N      partitions run at once (default 1)\n"
		"      --with-seq           envelopes (-f json|msgpack) carry each message's\n"
		"                           producer and seq, kept when published again\n"
		"      --check-seq          report each gap and repeat in a producer's sequence\n"
		"                           numbers on stderr; exit status 1 if there was any\n"
		"      --skip-damaged       report offsets damaged on the broker and go on\n"
		"                           (default: stop there with status 1)\n"
		"      --session-timeout D  group session timeout (default 10s)\n"
		MQ_CLI_HELP_BROKER
		"  -v, --verbose            counts on stderr at the end\n"
		"  -q, --quiet              only errors on stderr\n"
		"  -h, --help               this help;  -V, --version  the version\n");
}

enum {
	OPT_AMO = 256,
	OPT_SESSION,
	OPT_SKIP_DAMAGED,
	OPT_EXEC,
	OPT_MAX_ATTEMPTS,
	OPT_BACKOFF,
	OPT_EXEC_TIMEOUT,
	OPT_DLQ,
	OPT_CONCURRENCY,
	OPT_CHECK_SEQ,
	OPT_WITH_SEQ,
	OPT_MAX_WAIT,
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
	{"exec", required_argument, NULL, OPT_EXEC},
	{"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
	{"backoff", required_argument, NULL, OPT_BACKOFF},
	{"exec-timeout", required_argument, NULL, OPT_EXEC_TIMEOUT},
	{"dlq", required_argument, NULL, OPT_DLQ},
	{"concurrency", required_argument, NULL, OPT_CONCURRENCY},
	{"check-seq", no_argument, NULL, OPT_CHECK_SEQ},
	{"with-seq", no_argument, NULL, OPT_WITH_SEQ},
	{"max-wait", required_argument, NULL, OPT_MAX_WAIT},
	{NULL, 0, NULL, 0},
};

typedef struct opts {
	mq_cli_t cli;
	const char *topics[MAX_PATTERNS];
	uint32_t ntopics;
	const char *group, *template;
	mq_offset_spec_t start;
	int exit_at_end, at_most_once, nul, fmt_set, skip_damaged, check_seq, with_seq;
	int64_t max_wait; /* --max-wait, with max_wait_set */
	int max_wait_set;
	const char *max_wait_arg;
	uint64_t count; /* 0: no limit */
	mq_fmt_t fmt;
	int64_t session_ms;
	/* --exec */
	const char *exec, *dlq;
	uint64_t max_attempts, concurrency;
	int64_t backoff_min, backoff_max, exec_timeout;
	int exec_opt; /* some --exec option was given */
} opts_t;

static int check_opts(void *ctx, mq_err_t *err)
{
	opts_t *o = ctx;
	if (mq_cli_check_broker(&o->cli, err))
		return -MQ_EINVAL;
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
	if (o->with_seq && o->fmt != MQ_FMT_JSON && o->fmt != MQ_FMT_MSGPACK)
		return mq_err_set(err, MQ_EINVAL, "--with-seq goes with -f json or -f msgpack (envelopes)");
	if (o->at_most_once && !o->group)
		return mq_err_set(err, MQ_EINVAL, "--at-most-once needs a group (-g GROUP)");
	if (o->exec_opt && !o->exec)
		return mq_err_set(err, MQ_EINVAL, "--max-attempts, --backoff, --exec-timeout, --dlq and --concurrency "
				  "go with --exec CMD");
	if (o->exec && (o->template || o->fmt_set || o->nul))
		return mq_err_set(err, MQ_EINVAL, "--exec does not go with -F, -f or -0 (the command writes the output)");
	if (o->exec && o->at_most_once)
		return mq_err_set(err, MQ_EINVAL, "--exec does not go with --at-most-once (a message counts once its "
				  "command succeeded)");
	if (o->dlq && mq_name_check("dead-letter topic", o->dlq, 0, err))
		return -MQ_EINVAL;
	return 0;
}

/* The options of mq-sub itself: 0 or -MQ_EINVAL. */
static int own_option(void *ctx, int c, const char *arg, int idx, mq_err_t *err)
{
	opts_t *o = ctx;
	(void)idx;
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
	case OPT_EXEC:
		if (!*arg)
			return mq_err_set(err, MQ_EINVAL, "--exec: expected a command");
		o->exec = arg;
		return 0;
	case OPT_MAX_ATTEMPTS:
		o->exec_opt = 1;
		if (mq_parse_u64(arg, &o->max_attempts, err) || o->max_attempts < 1 || o->max_attempts > 1000)
			return mq_err_set(err, MQ_EINVAL, "--max-attempts '%.200s': expected 1 to 1000", arg);
		return 0;
	case OPT_BACKOFF:
		o->exec_opt = 1;
		return mq_exec_parse_backoff(arg, &o->backoff_min, &o->backoff_max, err);
	case OPT_EXEC_TIMEOUT:
		o->exec_opt = 1;
		if (mq_parse_duration_ms(arg, &o->exec_timeout, err) || o->exec_timeout < 1)
			return mq_err_set(err, MQ_EINVAL, "--exec-timeout '%.200s': expected a duration such as 30s", arg);
		return 0;
	case OPT_DLQ:
		o->exec_opt = 1;
		o->dlq = arg;
		return 0;
	case OPT_CONCURRENCY:
		o->exec_opt = 1;
		if (mq_parse_u64(arg, &o->concurrency, err) || o->concurrency < 1 || o->concurrency > 1024)
			return mq_err_set(err, MQ_EINVAL, "--concurrency '%.200s': expected 1 to 1024", arg);
		return 0;
	case OPT_CHECK_SEQ:
		o->check_seq = 1;
		return 0;
	case OPT_WITH_SEQ:
		o->with_seq = 1;
		return 0;
	case OPT_MAX_WAIT:
		if (mq_parse_duration_ms(arg, &o->max_wait, err))
			return -MQ_EINVAL;
		o->max_wait_set = 1;
		o->max_wait_arg = arg;
		return 0;
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
		int64_t ms = due ? due - now : since + COMMIT_MS - now; /* both within a commit window */
		struct pollfd pfd = {.fd = 1};
		poll(&pfd, 1, (int)(ms > 1 ? ms : 1));
		keep_alive(u);
	}
}

static void on_notice(void *ctx, const char *msg);

/* --max-wait: the monotonic deadline (0: none), and whether it passed. */
static int64_t max_wait_until;
static int max_wait_passed(void)
{
	return max_wait_until && mq_mono_ms() >= max_wait_until;
}

/* At the end: with --max-wait and -n not reached, 1 and a message. */
static int max_wait_verdict(const opts_t *o, uint64_t got)
{
	if (!max_wait_passed() || !o->count || got >= o->count)
		return 0;
	fprintf(stderr, "%s: --max-wait %s passed with %" PRIu64 " of %" PRIu64 " messages\n", prog,
		o->max_wait_arg, got, o->count);
	return 1;
}
static void on_finding(void *ctx, const char *msg);
static int seq_summary(const opts_t *o, const mq_consumer_t *k);

/* ---- --exec: the command sink ---- */

#define EXEC_QUEUE_MAX 1024          /* messages of one partition queued before its fetches wait */
#define EXEC_QUEUE_BYTES (8u << 20)
#define EXEC_STOP_GRACE_MS 30000     /* on SIGTERM, how long running commands get */

typedef struct xsink {
	opts_t *o;
	mq_consumer_t *k;
	mq_exec_t *x;
	mq_client_t *dlq_c; /* a client of its own: the consumer's data socket is busy fetching */
	uint32_t *slot_ti;  /* slot -> topic index */
	uint32_t nslot;
	uint64_t ok, dead;
} xsink_t;

static int x_put(void *ctx, uint32_t ti, const char *topic, uint32_t p, const mq_consumer_part_t *part,
		 const mq_record_t *rec, mq_err_t *err)
{
	xsink_t *u = ctx;
	if (part->slot >= u->nslot) {
		uint32_t n = u->nslot ? u->nslot : 64;
		while (n <= part->slot)
			n *= 2;
		uint32_t *v = realloc(u->slot_ti, n * sizeof(*v));
		if (!v)
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
		u->slot_ti = v;
		u->nslot = n;
	}
	u->slot_ti[part->slot] = ti;
	int rc = mq_exec_push(u->x, part->slot, topic, p, rec, err);
	if (rc)
		return rc;
	if (mq_exec_queued(u->x, part->slot) >= EXEC_QUEUE_MAX ||
	    mq_exec_queued_bytes(u->x, part->slot) >= EXEC_QUEUE_BYTES)
		mq_consumer_hold(u->k, ti, p, 1);
	return 0;
}

/* Start the runs of what was just queued. */
static int x_flush(void *ctx, mq_consumer_t *k, mq_err_t *err)
{
	xsink_t *u = ctx;
	(void)k;
	return mq_exec_poll(u->x, 0, err);
}

static int x_start(void *ctx, uint32_t ti, uint32_t p, const mq_consumer_part_t *part, mq_err_t *err)
{
	xsink_t *u = ctx;
	(void)ti;
	(void)p;
	(void)err;
	mq_exec_drop(u->x, part->slot); /* (re)started there: what was queued is read again */
	return 0;
}

/* A partition taken away: what waits is dropped (its new owner reads it
 * from the last commit); a run going on is waited for. */
static int x_release(void *ctx, mq_consumer_t *k, uint32_t ti, uint32_t p, mq_err_t *err)
{
	xsink_t *u = ctx;
	(void)err;
	const mq_consumer_part_t *part = mq_consumer_part(k, ti, p);
	mq_exec_drop(u->x, part->slot);
	return !mq_exec_running(u->x, part->slot);
}

static int x_wake(void *ctx, mq_consumer_t *k, mq_err_t *err)
{
	xsink_t *u = ctx;
	(void)k;
	return mq_exec_poll(u->x, 0, err);
}

static const mq_consumer_sink_t exec_sink = {
	.put = x_put,
	.flush = x_flush,
	.start = x_start,
	.release = x_release,
	.wake = x_wake,
};

/* Publish a dead message to the dead-letter topic, with why in its
 * headers; 0 once the broker acknowledged it. */
static int dead_letter(xsink_t *u, const mq_exec_result_t *r, mq_err_t *err)
{
	char dlq[MQ_NAME_MAX + 1];
	if ((size_t)snprintf(dlq, sizeof(dlq), "%s", u->o->dlq ? u->o->dlq : r->topic) >= sizeof(dlq) ||
	    (!u->o->dlq && strlen(r->topic) + 4 > MQ_NAME_MAX))
		return mq_err_set(err, MQ_EINVAL, "topic '%s': its dead-letter topic '%s.dlq' would be a name too "
				  "long; give one with --dlq NAME", r->topic, r->topic);
	if (!u->o->dlq)
		strcat(dlq, ".dlq");
	if (!u->dlq_c) {
		mq_client_opts_t co = {.endpoint = u->o->cli.broker, .verbose = u->o->cli.verbose, .curve_server = u->o->cli.curve_server, .curve_secret = u->o->cli.curve_secret, .timeout_ms = mq_cli_timeout(&u->o->cli), .name = prog,
				       .lite = 1};
		if (mq_cli_client_open(&co, &u->dlq_c, err))
			return -1;
	}
	uint32_t n = 0;
	int rc = mq_client_meta(u->dlq_c, dlq, 1, &n, err);
	mq_producer_t *pr = NULL;
	if (rc == 0)
		rc = mq_producer_new(u->dlq_c, dlq, n, 1, &pr, err);
	if (rc)
		return mq_err_set(err, err->code ? err->code : MQ_EIO, "dead-letter topic '%s': %s", dlq, err->msg);
	/* The message's headers, then why. */
	char part[16], off[24], att[16];
	snprintf(part, sizeof(part), "%u", r->partition);
	snprintf(off, sizeof(off), "%" PRIu64, r->offset);
	snprintf(att, sizeof(att), "%u", r->attempts);
	const char *why[][2] = {{"mq.dlq.topic", r->topic}, {"mq.dlq.partition", part}, {"mq.dlq.offset", off},
				{"mq.dlq.attempts", att}, {"mq.dlq.status", r->status},
				{"mq.dlq.stderr", r->first_err}};
	uint32_t nh = r->rec->header_count, k = 0;
	mq_header_t *hv = calloc(nh + 6, sizeof(*hv));
	if (!hv) {
		mq_producer_free(pr);
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	const uint8_t *hp = r->rec->headers;
	while (k < nh && mq_header_next(&hp, r->rec->headers_end, &hv[k]))
		k++;
	for (int i = 0; i < 6; i++, k++)
		hv[k] = (mq_header_t){(const uint8_t *)why[i][0], strlen(why[i][0]), (const uint8_t *)why[i][1],
				      strlen(why[i][1])};
	mq_buf_t buf = {0};
	mq_batch_builder_t b;
	uint32_t dp = r->partition % n;
	mq_producer_begin(pr, dp, &b, &buf);
	rc = mq_batch_add(&b, r->rec->timestamp, r->rec->key, r->rec->key_len, r->rec->value, r->rec->value_len,
			  r->rec->id, r->rec->id_len, hv, k)
		     ? mq_err_set(err, MQ_ENOMEM, "out of memory")
		     : 0;
	free(hv);
	if (rc == 0)
		rc = mq_producer_send(pr, &b, dp, err);
	if (rc == 0)
		rc = mq_producer_flush(pr, err);
	mq_producer_stats_t st;
	mq_producer_stats(pr, &st);
	if (rc == 0 && st.acked != 1) {
		const char *why2 = mq_producer_take_error(pr);
		rc = mq_err_set(err, MQ_EIO, "dead-letter topic '%s': not acknowledged (%s)", dlq,
				why2 ? why2 : "no answer");
	}
	mq_producer_free(pr);
	mq_buf_free(&buf);
	return rc;
}

static int x_done(void *ctx, const mq_exec_result_t *r, mq_err_t *err)
{
	xsink_t *u = ctx;
	if (!r->ok) {
		if (dead_letter(u, r, err)) {
			mq_err_t e = *err;
			return mq_err_set(err, e.code ? e.code : MQ_EIO, "topic '%s' partition %u offset %" PRIu64
					  ": failed %u time%s (%s) and could not be dead-lettered, so it is not "
					  "committed: %s", r->topic, r->partition, r->offset, r->attempts,
					  r->attempts == 1 ? "" : "s", r->status, e.msg);
		}
		u->dead++;
		if (!u->o->cli.quiet)
			fprintf(stderr, "%s: topic '%s' partition %u offset %" PRIu64 ": failed %u time%s (%s); "
				"dead-lettered to '%s%s'\n", prog, r->topic, r->partition, r->offset, r->attempts,
				r->attempts == 1 ? "" : "s", r->status, u->o->dlq ? u->o->dlq : r->topic,
				u->o->dlq ? "" : ".dlq");
	} else {
		u->ok++;
	}
	uint32_t ti = r->slot < u->nslot ? u->slot_ti[r->slot] : 0;
	mq_consumer_ack(u->k, ti, r->partition, r->offset + 1); /* refused only for a partition reset since */
	const mq_consumer_part_t *part = mq_consumer_part(u->k, ti, r->partition);
	if (part && part->held && mq_exec_queued(u->x, r->slot) <= EXEC_QUEUE_MAX / 2 &&
	    mq_exec_queued_bytes(u->x, r->slot) <= EXEC_QUEUE_BYTES / 2)
		mq_consumer_hold(u->k, ti, r->partition, 0);
	return 0;
}

/* Wait for the runs still going on (all queued ones too, unless a stop
 * came), keeping the group session and committing as they finish.  On a
 * stop nothing new starts; after the grace the runs are ended (SIGTERM,
 * a second signal: SIGKILL) and what they did not finish is not
 * committed. */
static int exec_drain(xsink_t *u, mq_err_t *err)
{
	int64_t stop_at = 0, killed = 0;
	while (mq_exec_nrunning(u->x) || (!stop && mq_exec_total(u->x))) {
		int64_t now = mq_mono_ms();
		if (stop && !stop_at) {
			stop_at = now;
			mq_exec_stop_starting(u->x);
		}
		if (stop_at && (stop >= 2 || now - stop_at >= EXEC_STOP_GRACE_MS) && killed < 2) {
			mq_exec_kill(u->x, killed || stop >= 2);
			killed++;
			stop_at = now - EXEC_STOP_GRACE_MS + 2000; /* SIGKILL 2 s after SIGTERM */
		}
		int64_t d = mq_exec_deadline(u->x), ms = 500;
		if (d && d - now < ms)
			ms = d - now;
		if (mq_exec_poll(u->x, (int)(ms > 0 ? ms : 0), err))
			return -1;
		mq_consumer_keep_alive(u->k, err);
	}
	return 0;
}

static int exec_main(opts_t *o)
{
	xsink_t u = {.o = o};
	mq_err_t err = {0};
	mq_exec_opts_t xo = {.cmd = o->exec, .concurrency = (uint32_t)o->concurrency,
			     .max_attempts = (uint32_t)o->max_attempts, .backoff_min_ms = o->backoff_min,
			     .backoff_max_ms = o->backoff_max, .timeout_ms = o->exec_timeout, .out_fd = 1, .err_fd = 2};
	if (mq_exec_new(&xo, x_done, &u, &u.x, &err)) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return 1;
	}
	mq_cli_signals(&stop);
	mq_client_t *c = NULL;
	mq_client_opts_t co = {.endpoint = o->cli.broker, .verbose = o->cli.verbose, .curve_server = o->cli.curve_server, .curve_secret = o->cli.curve_secret, .timeout_ms = mq_cli_timeout(&o->cli), .name = prog, .interrupt = &stop,
			       .lite = 1};
	mq_consumer_opts_t ko = {.topics = o->topics, .ntopics = o->ntopics, .group = o->group, .start = o->start,
				 .exit_at_end = o->exit_at_end, .skip_damaged = o->skip_damaged,
				 .verbose = o->cli.verbose, .count = o->count, .session_ms = o->session_ms,
				 .commit_ms = COMMIT_MS, .report = on_notice, .report_ctx = o, .sink = &exec_sink,
				 .check_seq = o->check_seq, .seq_report = on_finding,
				 .announce_waiting = o->cli.verbose || isatty(2),
				 .sink_ctx = &u, .watch_fd = mq_exec_fd(u.x), .watch_events = POLLIN, .interrupt = &stop};
	mq_hello_t h;
	int failed = 0, rc = 0;
	if (mq_cli_client_open(&co, &c, &err) || mq_client_hello(c, &h, &err) || mq_consumer_open(c, &ko, &u.k, &err)) {
		if (!(stop && err.code == MQ_EAGAIN)) {
			fprintf(stderr, "%s: %s\n", prog, err.msg);
			failed = 1;
		}
	} else {
		while (!stop && !max_wait_passed()) {
			int64_t dl = mq_exec_deadline(u.x);
			if (max_wait_until && (!dl || max_wait_until < dl))
				dl = max_wait_until;
			mq_consumer_wake_at(u.k, dl);
			if ((rc = mq_consumer_step(u.k, &err)) != 0)
				break;
		}
		if (rc < 0 && !(stop && err.code == MQ_EAGAIN)) {
			fprintf(stderr, "%s: %s\n", prog, err.msg);
			failed = 1;
		}
	}
	if (u.k && !failed && exec_drain(&u, &err)) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		failed = 1;
	}
	mq_exec_stop_starting(u.x);
	if (u.k && mq_consumer_finish(u.k, &err)) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		failed = 1;
	}
	if (o->cli.verbose && u.k)
		fprintf(stderr, "%s: %" PRIu64 " messages handled, %" PRIu64 " dead-lettered, %" PRIu64 " commits, %" PRIu64
			" expired skipped\n", prog, u.ok, u.dead, mq_consumer_commits(u.k), mq_client_expired(c));
	if (seq_summary(o, u.k))
		failed = 1;
	if (!failed && max_wait_verdict(o, u.ok + u.dead))
		failed = 1;
	mq_exec_free(u.x); /* kills what still runs: not committed, run again later */
	mq_consumer_close(u.k);
	mq_client_close(c);
	mq_client_close(u.dlq_c);
	free(u.slot_ti);
	return failed;
}

static void on_notice(void *ctx, const char *msg)
{
	opts_t *o = ctx;
	if (!o->cli.quiet)
		fprintf(stderr, "%s: %s\n", prog, msg);
}

/* --check-seq findings: printed whatever -q says. */
static void on_finding(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "%s: %s\n", prog, msg);
}

/* --check-seq at the end: 1 when a gap or a repeat was seen. */
static int seq_summary(const opts_t *o, const mq_consumer_t *k)
{
	if (!o->check_seq || !k)
		return 0;
	mq_consumer_seq_counts_t n = mq_consumer_seq_counts(k);
	if (n.gaps || n.repeats || o->cli.verbose || (n.ttl_gaps && !o->cli.quiet))
		fprintf(stderr, "%s: --check-seq: %" PRIu64 " gap%s (%" PRIu64 " missing), %" PRIu64 " repeat%s%s\n", prog,
			n.gaps, n.gaps == 1 ? "" : "s", n.missing, n.repeats, n.repeats == 1 ? "" : "s",
			n.ttl_gaps ? ", and gaps that the TTL may explain" : "");
	if (n.unnumbered && !o->cli.quiet) /* what could not be checked is said, never passed for checked */
		fprintf(stderr,
			"%s: --check-seq: %" PRIu64 " of %" PRIu64 " messages carry no producer sequence and were not "
			"checked (%s)\n",
			prog, n.unnumbered, n.seen,
			mq_kafka_endpoint(mq_client_default_endpoint(o->cli.broker))
				? "Kafka keeps its producers' numbers to itself; records with the headers mq.producer and "
				  "mq.seq, as mq-pub --with-seq sets, are checked"
				: "messages of transactions carry none");
	return n.gaps || n.repeats;
}

int main(int argc, char **argv)
{
	opts_t o = {.session_ms = 10000, .start = {MQ_OFF_BEGINNING, 0}, .max_attempts = 5, .concurrency = 1,
		    .backoff_min = 1000, .backoff_max = 60000};
	mq_cli_init(&o.cli);
	o.cli.kafka = 1;
	int rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (o.cli.quiet)
		o.cli.verbose = 0;
	if (o.max_wait_set)
		max_wait_until = mq_mono_ms() + o.max_wait + (o.max_wait == 0);
	if (o.exec)
		return exec_main(&o);
	out_t u = {.o = &o};
	mq_writer_opts_t wo = {.fmt = o.fmt, .template = o.template, .with_seq = o.with_seq};
	if (mq_writer_new(1, &wo, &u.w, &u.err)) {
		fprintf(stderr, "%s: %s\n", prog, u.err.msg);
		return 2;
	}
	struct stat st;
	if (fstat(1, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		u.out_pipe = S_ISSOCK(st.st_mode) ? 2 : 1;
	u.track = u.out_pipe && o.group && !o.at_most_once;
	mq_outq_init(&u.q, COMMIT_MS);
	mq_cli_signals(&stop);

	mq_client_t *c = NULL;
	/* Lite: one direct connection, no I/O thread between the socket and
	 * the output (a message reaches stdout sooner), no libzmq loaded. */
	mq_client_opts_t co = {.endpoint = o.cli.broker, .verbose = o.cli.verbose, .curve_server = o.cli.curve_server, .curve_secret = o.cli.curve_secret, .timeout_ms = mq_cli_timeout(&o.cli), .name = prog, .interrupt = &stop,
			       .lite = 1};
	mq_consumer_opts_t ko = {.topics = o.topics, .ntopics = o.ntopics, .group = o.group, .start = o.start,
				 .exit_at_end = o.exit_at_end, .at_most_once = o.at_most_once,
				 .skip_damaged = o.skip_damaged, .verbose = o.cli.verbose, .count = o.count,
				 .session_ms = o.session_ms, .commit_ms = COMMIT_MS, .report = on_notice,
				 .report_ctx = &o, .sink = &out_sink, .sink_ctx = &u,
				 .check_seq = o.check_seq, .seq_report = on_finding,
				 .announce_waiting = o.cli.verbose || isatty(2),
				 .watch_fd = u.out_pipe ? 1 : -1, .interrupt = &stop};
	mq_hello_t h;
	int failed = 0;
	mq_err_t err = {0};
	/* While a write waits on the reader: heartbeats on time. */
	int64_t hb = o.session_ms / 3 < 1000 ? o.session_ms / 3 : 1000;
	mq_writer_on_wait(u.w, o.group ? (int)hb : 500, keep_alive, &u);
	if (mq_cli_client_open(&co, &c, &err) || mq_client_hello(c, &h, &err) || mq_consumer_open(c, &ko, &u.k, &err)) {
		if (!(stop && err.code == MQ_EAGAIN)) {
			fprintf(stderr, "%s: %s\n", prog, err.msg);
			failed = 1;
		}
	} else {
		mq_consumer_wake_at(u.k, max_wait_until);
		while (!stop && !max_wait_passed() && (rc = mq_consumer_step(u.k, &err)) == 0)
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
	if (seq_summary(&o, u.k))
		failed = 1;
	if (!failed && u.k && max_wait_verdict(&o, mq_consumer_delivered(u.k)))
		failed = 1;
	mq_consumer_close(u.k);
	mq_writer_free(u.w);
	mq_client_close(c);
	mq_outq_free(&u.q);
	return failed;
}
