/*
 * cli.c -- the options and signal set-up every client program shares;
 * see cli.h.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "client.h"

/* Where a program does not reach Kafka: what to use. */
#define KAFKA_ONLY                                                                                      \
	"this program does not reach Kafka clusters (mq-pub, mq-sub, mq-lag and mq-admin do; use an " \
	"mq-serve endpoint such as tcp://127.0.0.1:7733)"

void mq_cli_init(mq_cli_t *cli)
{
	memset(cli, 0, sizeof *cli);
	cli->timeout_ms = MQ_DEFAULT_TIMEOUT_MS;
}

int mq_cli_option(mq_cli_t *cli, int c, const char *arg, char *const *argv, mq_err_t *err)
{
	switch (c) {
	case 'b':
		if (!strncmp(arg, "kafka://", 8) && !cli->kafka)
			return mq_err_set(err, MQ_EINVAL, "-b '%.200s': " KAFKA_ONLY, arg);
		cli->broker = arg;
		return MQ_CLI_DONE;
	case 'w': {
		int64_t ms;
		if (!strcmp(arg, "inf") || !strcmp(arg, "infinity")) {
			cli->timeout_ms = MQ_TIMEOUT_FOREVER;
			return MQ_CLI_DONE;
		}
		if (mq_parse_duration_ms(arg, &ms, err) || ms < 0)
			return mq_err_set(err, MQ_EINVAL, "-w '%.100s': expected a duration such as 10s, or 0 or inf "
					  "to wait forever", arg);
		cli->timeout_ms = ms;
		return MQ_CLI_DONE;
	}
	case 'v':
		cli->verbose = 1;
		return MQ_CLI_DONE;
	case 'q':
		cli->quiet = 1;
		return MQ_CLI_DONE;
	case 'h':
		return MQ_CLI_HELP;
	case 'V':
		return MQ_CLI_VERSION;
	case MQ_CLI_OPT_CURVE_SERVER:
		cli->curve_server = arg;
		return MQ_CLI_DONE;
	case MQ_CLI_OPT_CURVE_SECRET:
		cli->curve_secret = arg;
		return MQ_CLI_DONE;
	case ':':
		return mq_err_set(err, MQ_EINVAL, "option '%.100s' needs an argument", argv[optind - 1]);
	case '?':
		if (optopt)
			return mq_err_set(err, MQ_EINVAL, "unknown option '-%c'", optopt);
		return mq_err_set(err, MQ_EINVAL, "unknown option '%.100s'", argv[optind - 1]);
	default:
		return MQ_CLI_NOT_MINE;
	}
}

int mq_cli_parse(int argc, char **argv, const char *shortopts, const struct option *longopts, mq_cli_t *cli,
		 mq_cli_own_fn own, mq_cli_check_fn check, void *ctx, mq_err_t *err)
{
	int c, idx = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, &idx)) != -1) {
		int r = mq_cli_option(cli, c, optarg, argv, err);
		if (r == MQ_CLI_NOT_MINE)
			r = own(ctx, c, optarg, idx, err);
		if (r < 0 || r == MQ_CLI_HELP || r == MQ_CLI_VERSION)
			return r;
	}
	if (optind < argc)
		return mq_err_set(err, MQ_EINVAL, "unexpected argument '%.200s'", argv[optind]);
	return check(ctx, err);
}

int mq_cli_check_broker(const mq_cli_t *cli, mq_err_t *err)
{
	const char *env = getenv("MQ_BROKER");
	if (!cli->broker && env && !strncmp(env, "kafka://", 8) && !cli->kafka)
		return mq_err_set(err, MQ_EINVAL, "MQ_BROKER '%.200s': " KAFKA_ONLY " (or give -b)", env);
	return 0;
}

int64_t mq_cli_timeout(const mq_cli_t *cli)
{
	return cli->timeout_ms == 0 ? MQ_TIMEOUT_FOREVER : cli->timeout_ms;
}

#define SUGGEST_MAX 64 /* longer words get no suggestion */

/* Edit distance of a and b with adjacent swaps (optimal string
 * alignment), both at most SUGGEST_MAX long: three rows suffice. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
	size_t rows[3][SUGGEST_MAX + 1], *pp = rows[0], *prev = rows[1], *cur = rows[2];
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t d = prev[j - 1] + (a[i - 1] != b[j - 1]);
			if (prev[j] + 1 < d)
				d = prev[j] + 1;
			if (cur[j - 1] + 1 < d)
				d = cur[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < d)
				d = pp[j - 2] + 1;
			cur[j] = d;
		}
		size_t *t = pp;
		pp = prev;
		prev = cur;
		cur = t;
	}
	return prev[lb];
}

const char *mq_cli_suggest(const char *word, const char *const *cands, size_t n)
{
	size_t lw = strlen(word), best = lw <= 4 ? 1 : 2;
	const char *found = NULL;
	if (lw == 0 || lw > SUGGEST_MAX)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t lc = strlen(cands[i]), d;
		if (lc > SUGGEST_MAX || !strcmp(word, cands[i]))
			continue;
		if (lw >= 3 && lw < lc && !strncmp(word, cands[i], lw))
			d = 1; /* "desc" for "describe" */
		else
			d = edit_distance(word, lw, cands[i], lc);
		if (d <= best && (!found || d < best)) {
			found = cands[i];
			best = d;
		}
	}
	return found;
}

/* What the signal handler may touch: the stop flag of the program,
 * given once by mq_cli_signals, and the write end of the self-pipe. */
static volatile sig_atomic_t *stop_flag, *reload_flag;
static int wake_pipe[2] = {-1, -1};

static void on_stop_signal(int sig)
{
	(void)sig;
	int e = errno;
	if (stop_flag)
		*stop_flag = *stop_flag + 1;
	if (wake_pipe[1] >= 0)
		(void)!write(wake_pipe[1], "", 1); /* full: a byte is there already */
	errno = e;
}

void mq_cli_signals(volatile sig_atomic_t *flag)
{
	struct sigaction sa;
	stop_flag = flag;
	if (wake_pipe[0] < 0 && pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		wake_pipe[0] = wake_pipe[1] = -1; /* no pipe: waits end at their deadlines */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void on_reload_signal(int sig)
{
	(void)sig;
	int e = errno;
	if (reload_flag)
		*reload_flag = 1;
	if (wake_pipe[1] >= 0)
		(void)!write(wake_pipe[1], "", 1);
	errno = e;
}

void mq_cli_reload_signal(volatile sig_atomic_t *flag)
{
	struct sigaction sa;
	reload_flag = flag;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_reload_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
}

int mq_cli_signal_fd(void)
{
	return wake_pipe[0];
}

int mq_cli_client_open(const mq_client_opts_t *o, mq_client_t **c, mq_err_t *err)
{
	if (mq_client_open(o, c, err))
		return -1;
	mq_client_wake_on(*c, mq_cli_signal_fd());
	return 0;
}

void mq_cli_sleep_until(int64_t until_ms, volatile sig_atomic_t *flag)
{
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (int64_t now; !*flag && (now = mq_mono_ms()) < until_ms;) {
		int64_t left = until_ms - now;
		struct timespec ts = {.tv_sec = (time_t)(left / 1000), .tv_nsec = (long)(left % 1000) * 1000000L};
		(void)ppoll(NULL, 0, &ts, &old);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}
