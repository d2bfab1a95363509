/*
 * mq-serve -- the mq broker: keeps topics as partitioned append-only
 * logs in a data directory and serves mq-pub, mq-sub and the other
 * clients over ZeroMQ.  Options are read and checked here; the loop is
 * lib/broker.c.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "cli.h"
#include "curve.h"
#include "mq.h"

static const char *prog = "mq-serve";
static volatile sig_atomic_t stop_flag, reload_flag;

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: mq-serve [-d DIR] [-l ENDPOINT]... [options]\n"
		"\n"
		"  -d, --data DIR            data directory (default $MQ_DATA, else $XDG_STATE_HOME/mq,\n"
		"                            else ~/.local/state/mq)\n"
		"  -l, --listen ENDPOINT     ZeroMQ endpoint, repeatable (default " MQ_DEFAULT_BROKER ");\n"
		"                            HOST:PORT and :PORT mean tcp://HOST:PORT, tcp://127.0.0.1:PORT\n"
		"      --partitions N        partitions of a topic created on first publish (default 1)\n"
		"      --fsync POLICY        always | never | DURATION (default always: group commit)\n"
		"      --segment-bytes SIZE  roll segments at SIZE (default 256MiB)\n"
		"      --retention-time D    delete segments older than D (default: keep)\n"
		"      --retention-bytes S   keep about S bytes per partition (default: keep)\n"
		"      --max-message-bytes S largest message accepted (default 1MiB)\n"
		"      --dedup-window D      remember message ids this long per topic (default 2m)\n"
		"      --lag-interval D      sample consumer lag this often for mq-lag (default 10s)\n"
		"      --dedup-ids N         remember at most N ids, oldest forgotten first\n"
		"                            (default 1000000)\n"
		"      --txn-timeout D       check back an undecided transaction D after its\n"
		"                            prepare (default 6s)\n"
		"      --txn-check-interval D  then again every D (default 60s)\n"
		"      --txn-max-checks N    roll it back after N checks without a verdict (default 15)\n"
		"      --curve-secret FILE   CurveZMQ: encrypt every connection with this secret key\n"
		"                            (mq-admin keygen); clients need the public key\n"
		"      --curve-allow DIR     only clients whose public key is in a file in DIR\n"
		"                            (read again on SIGHUP)\n"
		"      --curve-allow-admin DIR  clients with every right: only these may delete\n"
		"                            topics, add partitions, reset or delete groups and\n"
		"                            define shared buckets (default: every allowed client)\n"
		"  -v, --verbose             more messages on stderr\n"
		"  -q, --quiet               only problems and the endpoints on stderr (undoes -v)\n"
		"  -h, --help                this help\n"
		"  -V, --version             the version\n");
}

enum {
	OPT_PARTITIONS = 256,
	OPT_FSYNC,
	OPT_SEGMENT_BYTES,
	OPT_RETENTION_TIME,
	OPT_RETENTION_BYTES,
	OPT_MAX_MESSAGE_BYTES,
	OPT_DEDUP_WINDOW,
	OPT_DEDUP_IDS,
	OPT_LAG_INTERVAL,
	OPT_TXN_TIMEOUT,
	OPT_TXN_INTERVAL,
	OPT_TXN_MAX_CHECKS,
	OPT_CURVE_SECRET,
	OPT_CURVE_ALLOW,
	OPT_CURVE_ALLOW_ADMIN,
};

static int default_data_dir(char *buf, size_t n)
{
	const char *d = getenv("MQ_DATA");
	if (d && *d)
		return snprintf(buf, n, "%s", d) < (int)n ? 0 : -1;
	d = getenv("XDG_STATE_HOME");
	if (d && *d)
		return snprintf(buf, n, "%s/mq", d) < (int)n ? 0 : -1;
	d = getenv("HOME");
	if (!d || !*d)
		return -1;
	return snprintf(buf, n, "%s/.local/state/mq", d) < (int)n ? 0 : -1;
}

/* The broker's report: faults the operator must hear of (broker.h). */
static void report(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "%s: %s\n", prog, line);
}

/* Partitions are many files: take every descriptor the hard limit
 * allows (the store sizes its cache of open files from the soft one). */
static void raise_fd_limit(int verbose)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max;
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && verbose)
			fprintf(stderr, "%s: cannot raise the file descriptor limit to %llu: %s\n", prog,
				(unsigned long long)want, strerror(errno));
	}
	if (verbose && getrlimit(RLIMIT_NOFILE, &rl) == 0)
		fprintf(stderr, "%s: file descriptor limit %llu\n", prog, (unsigned long long)rl.rlim_cur);
}

/* mkdir -p of the parents of dir (the store makes dir itself). */
static void make_parents(const char *dir)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s", dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		mkdir(p, 0755);
		*s = '/';
	}
}

/* What the command line sets. */
typedef struct opts {
	mq_broker_opts_t b;
	char datadir[4096];
	char listen_ep[MQ_LISTEN_MAX][512]; /* -l as ZeroMQ takes it */
	const char *curve_secret_file;
} opts_t;

static const struct option longopts[] = {
	{"data", required_argument, NULL, 'd'},
	{"listen", required_argument, NULL, 'l'},
	{"partitions", required_argument, NULL, OPT_PARTITIONS},
	{"fsync", required_argument, NULL, OPT_FSYNC},
	{"segment-bytes", required_argument, NULL, OPT_SEGMENT_BYTES},
	{"retention-time", required_argument, NULL, OPT_RETENTION_TIME},
	{"retention-bytes", required_argument, NULL, OPT_RETENTION_BYTES},
	{"max-message-bytes", required_argument, NULL, OPT_MAX_MESSAGE_BYTES},
	{"dedup-window", required_argument, NULL, OPT_DEDUP_WINDOW},
	{"dedup-ids", required_argument, NULL, OPT_DEDUP_IDS},
	{"lag-interval", required_argument, NULL, OPT_LAG_INTERVAL},
	{"txn-timeout", required_argument, NULL, OPT_TXN_TIMEOUT},
	{"txn-check-interval", required_argument, NULL, OPT_TXN_INTERVAL},
	{"txn-max-checks", required_argument, NULL, OPT_TXN_MAX_CHECKS},
	{"curve-secret", required_argument, NULL, OPT_CURVE_SECRET},
	{"curve-allow", required_argument, NULL, OPT_CURVE_ALLOW},
	{"curve-allow-admin", required_argument, NULL, OPT_CURVE_ALLOW_ADMIN},
	{"verbose", no_argument, NULL, 'v'},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* An option's value as a duration of at least min_ms. */
static int duration_at_least(const char *opt, const char *arg, int64_t min_ms, const char *example, int64_t *ms,
			     mq_err_t *err)
{
	if (mq_parse_duration_ms(arg, ms, err) || *ms < min_ms)
		return mq_err_set(err, MQ_EINVAL, "--%s '%.200s': use a duration of %s or more, such as %s", opt, arg,
				  min_ms >= 10 ? "10ms" : "1ms", example);
	return 0;
}

static int own_option(void *ctx, int c, const char *arg, int idx, mq_err_t *err)
{
	opts_t *x = ctx;
	mq_broker_opts_t *o = &x->b;
	uint64_t v;
	int64_t ms;
	switch (c) {
	case 'd':
		if (strlen(arg) >= sizeof(x->datadir))
			return mq_err_set(err, MQ_EINVAL, "-d: path is %zu bytes long; at most %d", strlen(arg),
					  MQ_DATA_DIR_MAX);
		snprintf(x->datadir, sizeof(x->datadir), "%s", arg);
		return 0;
	case 'l':
		if (o->nlisten == MQ_LISTEN_MAX)
			return mq_err_set(err, MQ_EINVAL, "at most %d -l endpoints", MQ_LISTEN_MAX);
		if (mq_endpoint_normalize(arg, x->listen_ep[o->nlisten], sizeof x->listen_ep[0], err))
			return mq_err_set(err, MQ_EINVAL, "-l: %s", err->msg);
		o->listen[o->nlisten] = x->listen_ep[o->nlisten];
		o->nlisten++;
		return 0;
	case OPT_PARTITIONS:
		if (mq_parse_u64(arg, &v, err))
			return mq_err_set(err, MQ_EINVAL, "--partitions: %s", err->msg);
		if (v < 1 || v > MQ_PARTITIONS_MAX)
			return mq_err_set(err, MQ_EINVAL, "--partitions %.100s: use 1 to %d", arg, MQ_PARTITIONS_MAX);
		o->partitions = (uint32_t)v;
		return 0;
	case OPT_FSYNC:
		if (!strcmp(arg, "always")) {
			o->log.fsync = MQ_FSYNC_ALWAYS;
		} else if (!strcmp(arg, "never")) {
			o->log.fsync = MQ_FSYNC_NEVER;
		} else if (mq_parse_duration_ms(arg, &ms, err) == 0 && ms > 0) {
			o->log.fsync = MQ_FSYNC_INTERVAL;
			o->log.fsync_interval_ms = ms;
		} else {
			return mq_err_set(err, MQ_EINVAL, "--fsync '%.100s': use always, never or a duration such as 1s", arg);
		}
		return 0;
	case OPT_SEGMENT_BYTES:
		if (mq_parse_size(arg, &v, err))
			return mq_err_set(err, MQ_EINVAL, "--segment-bytes: %s", err->msg);
		if (v < 4096 || v > (1ull << 31))
			return mq_err_set(err, MQ_EINVAL, "--segment-bytes %.100s: use 4KiB to 2GiB", arg);
		o->log.segment_bytes = v;
		return 0;
	case OPT_RETENTION_TIME:
		if (mq_parse_duration_ms(arg, &ms, err))
			return mq_err_set(err, MQ_EINVAL, "--retention-time: %s", err->msg);
		o->log.retention_ms = ms;
		return 0;
	case OPT_RETENTION_BYTES:
		if (mq_parse_size(arg, &v, err))
			return mq_err_set(err, MQ_EINVAL, "--retention-bytes: %s", err->msg);
		o->log.retention_bytes = (int64_t)v;
		return 0;
	case OPT_MAX_MESSAGE_BYTES:
		if (mq_parse_size(arg, &v, err))
			return mq_err_set(err, MQ_EINVAL, "--max-message-bytes: %s", err->msg);
		if (v < 1 || v > MQ_BATCH_MAX_BYTES / 2)
			return mq_err_set(err, MQ_EINVAL, "--max-message-bytes %.100s: use 1 to 32MiB", arg);
		o->log.max_record_bytes = v;
		return 0;
	case OPT_DEDUP_WINDOW:
		if (duration_at_least("dedup-window", arg, 1, "2m", &ms, err))
			return -MQ_EINVAL;
		o->dedup_window_ms = ms;
		return 0;
	case OPT_LAG_INTERVAL:
		if (duration_at_least("lag-interval", arg, 10, "10s", &ms, err))
			return -MQ_EINVAL;
		o->lag_interval_ms = ms;
		return 0;
	case OPT_DEDUP_IDS:
		if (mq_parse_u64(arg, &v, err) || v < 1 || v > MQ_SEEN_MAX_COUNT)
			return mq_err_set(err, MQ_EINVAL, "--dedup-ids '%.100s': use a count from 1 to %llu", arg,
					  (unsigned long long)MQ_SEEN_MAX_COUNT);
		o->dedup_max_ids = v;
		return 0;
	case OPT_TXN_TIMEOUT:
	case OPT_TXN_INTERVAL:
		if (duration_at_least(longopts[idx].name, arg, 10, c == OPT_TXN_TIMEOUT ? "6s" : "1m", &ms, err))
			return -MQ_EINVAL;
		if (c == OPT_TXN_TIMEOUT)
			o->txn_timeout_ms = ms;
		else
			o->txn_check_interval_ms = ms;
		return 0;
	case OPT_TXN_MAX_CHECKS:
		if (mq_parse_u64(arg, &v, err) || v < 1 || v > 1000000)
			return mq_err_set(err, MQ_EINVAL, "--txn-max-checks '%.100s': use a count from 1 to 1000000", arg);
		o->txn_max_checks = (uint32_t)v;
		return 0;
	case OPT_CURVE_SECRET:
		x->curve_secret_file = arg;
		return 0;
	case OPT_CURVE_ALLOW:
		o->curve_allow = arg;
		return 0;
	case OPT_CURVE_ALLOW_ADMIN:
		o->curve_allow_admin = arg;
		return 0;
	default:
		return mq_err_set(err, MQ_EINVAL, "unknown option");
	}
}

static int check_opts(void *ctx, mq_err_t *err)
{
	opts_t *x = ctx;
	if (!x->curve_secret_file && (x->b.curve_allow || x->b.curve_allow_admin))
		return mq_err_set(err, MQ_EINVAL, "--%s needs --curve-secret FILE, the broker's own secret key (make a "
				  "pair with mq-admin keygen --secret FILE --public FILE)",
				  x->b.curve_allow ? "curve-allow" : "curve-allow-admin");
	return 0;
}

int main(int argc, char **argv)
{
	static opts_t x;
	mq_broker_opts_t *opt = &x.b;
	mq_log_opts_default(&opt->log);
	opt->log.fsync = MQ_FSYNC_ALWAYS;
	opt->partitions = 1;
	mq_cli_t cli;
	mq_cli_init(&cli);
	mq_err_t err;
	int r = mq_cli_parse(argc, argv, ":d:l:vqhV", longopts, &cli, own_option, check_opts, &x, &err);
	if (r == MQ_CLI_HELP) {
		usage(stdout);
		return 0;
	}
	if (r == MQ_CLI_VERSION) {
		printf("mq-serve %s\n", MQ_VERSION);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "%s: %s (try 'mq-serve --help')\n", prog, err.msg);
		return 2;
	}
	int verbose = cli.verbose && !cli.quiet;
	char *datadir = x.datadir;
	mq_broker_opts_t o = *opt;
	if (!datadir[0] && default_data_dir(datadir, sizeof(x.datadir))) {
		fprintf(stderr, "%s: no data directory (or a path too long): set -d DIR, $MQ_DATA or $HOME\n", prog);
		return 2;
	}
	if (strlen(datadir) > MQ_DATA_DIR_MAX) { /* before anything is made */
		fprintf(stderr, "%s: data directory '%.60s...' is %zu bytes long; at most %d (choose a shorter -d)\n",
			prog, datadir, strlen(datadir), MQ_DATA_DIR_MAX);
		return 2;
	}
	if (!o.nlisten)
		o.listen[o.nlisten++] = MQ_DEFAULT_BROKER;
	o.data_dir = datadir;
	o.report = report;
	char secret[MQ_CURVE_KEY_TEXT + 1] = "";
	if (x.curve_secret_file) {
		if (!mq_curve_available()) {
			fprintf(stderr, "%s: --curve-secret: this libzmq has no CurveZMQ (it was built without libsodium); "
				"install one that has it\n", prog);
			return 1;
		}
		if (mq_curve_read_key(x.curve_secret_file, 1, "--curve-secret", secret, &err)) {
			fprintf(stderr, "%s: %s\n", prog, err.msg);
			return 1;
		}
		o.curve_secret = secret;
	}
	make_parents(datadir);
	raise_fd_limit(verbose);

	mq_cli_signals(&stop_flag);
	mq_cli_reload_signal(&reload_flag);

	mq_broker_t *b;
	int opened = mq_broker_open(&o, &b, &err);
	explicit_bzero(secret, sizeof secret); /* the sockets have their copies */
	if (opened) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return 1;
	}
	mq_broker_wake_on(b, mq_cli_signal_fd());
	mq_broker_reload_on(b, &reload_flag);
	if (o.curve_secret)
		fprintf(stderr, "%s: CurveZMQ: %s\n", prog,
			o.curve_allow && o.curve_allow_admin ? "only clients with a key in --curve-allow or --curve-allow-admin"
			: o.curve_allow_admin ? "only clients with a key in --curve-allow-admin"
			: o.curve_allow ? "only clients with a key in --curve-allow"
					: "any client key (no --curve-allow); every connection encrypted");
	if (verbose)
		fprintf(stderr, "%s: data directory %s\n", prog, datadir);
	for (int i = 0; i < o.nlisten; i++)
		fprintf(stderr, "%s: listening on %s\n", prog, mq_broker_endpoint(b, i));
	int rc = mq_broker_run(b, &stop_flag, &err);
	if (rc)
		fprintf(stderr, "%s: %s\n", prog, err.msg);
	mq_broker_close(b);
	if (verbose)
		fprintf(stderr, "%s: stopped\n", prog);
	return rc ? 1 : 0;
}
