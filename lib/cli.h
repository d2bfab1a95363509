/*
 * cli.h -- command-line glue shared by the programs: the options every
 * client takes (-b -w -v -q -h -V; mq-serve takes -v -q -h -V of them),
 * getopt_long's error cases turned into messages, and the signal set-up.  Nothing here prints: a usage error comes back
 * as -MQ_EINVAL with the message in err, and the program prints
 * "PROG: MESSAGE (try 'PROG --help')" and exits 2.
 */
#ifndef MQ_CLI_H
#define MQ_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct mq_cli {
	const char *broker; /* -b; NULL: $MQ_BROKER, else the default */
	int64_t timeout_ms; /* -w; default MQ_DEFAULT_TIMEOUT_MS; 0 for "-w 0";
			     * MQ_TIMEOUT_FOREVER for "-w inf" */
	int verbose, quiet;
	const char *curve_server, *curve_secret; /* --curve-server, --curve-secret (client.h) */
	int kafka; /* set before parsing: the program reaches kafka:// clusters */
} mq_cli_t;

/* Short options of mq_cli_t, and the matching long ones, for a program's
 * optstring (start it with ':' so a missing argument is reported as such). */
#define MQ_CLI_SHORTOPTS "b:w:vqhV"
#define MQ_CLI_OPT_CURVE_SERVER 0x7100
#define MQ_CLI_OPT_CURVE_SECRET 0x7101
#define MQ_CLI_LONGOPTS                                        \
	{"broker", required_argument, NULL, 'b'},              \
	{"timeout", required_argument, NULL, 'w'},             \
	{"verbose", no_argument, NULL, 'v'},                   \
	{"quiet", no_argument, NULL, 'q'},                     \
	{"help", no_argument, NULL, 'h'},                      \
	{"version", no_argument, NULL, 'V'},                   \
	{"curve-server", required_argument, NULL, MQ_CLI_OPT_CURVE_SERVER}, \
	{"curve-secret", required_argument, NULL, MQ_CLI_OPT_CURVE_SECRET}

enum { MQ_CLI_NOT_MINE = 0, MQ_CLI_DONE = 1, MQ_CLI_HELP = 2, MQ_CLI_VERSION = 3 };

void mq_cli_init(mq_cli_t *cli);
/* One result c of getopt_long (optarg in arg).  MQ_CLI_DONE when c was
 * a common option, MQ_CLI_HELP / MQ_CLI_VERSION for -h / -V,
 * MQ_CLI_NOT_MINE for the program's own options, -MQ_EINVAL with a
 * message for a bad value, a missing argument (':') or an unknown
 * option ('?'). */
int mq_cli_option(mq_cli_t *cli, int c, const char *arg, char *const *argv, mq_err_t *err);
/* A program's own options: 0 or -MQ_EINVAL with err filled. */
typedef int (*mq_cli_own_fn)(void *ctx, int c, const char *arg, int longindex, mq_err_t *err);
/* Checks of the whole command line once parsed: 0 or -MQ_EINVAL. */
typedef int (*mq_cli_check_fn)(void *ctx, mq_err_t *err);
/* getopt_long over argv: common options into cli, the others to own,
 * then check.  0 to go on, MQ_CLI_HELP / MQ_CLI_VERSION, or -MQ_EINVAL
 * (also for a stray operand).  shortopts should start with ':'. */
int mq_cli_parse(int argc, char **argv, const char *shortopts, const struct option *longopts, mq_cli_t *cli,
		 mq_cli_own_fn own, mq_cli_check_fn check, void *ctx, mq_err_t *err);
/* A broker named by $MQ_BROKER that this version cannot use (a Kafka
 * cluster), when -b does not override it: -MQ_EINVAL, a usage error.
 * For the check of a program that will connect (not mq-bucket as a
 * local filter). */
int mq_cli_check_broker(const mq_cli_t *cli, mq_err_t *err);
/* -w as a client timeout (mq_client_opts_t.timeout_ms): 0 and inf wait
 * forever (long-running tails that must outlive a broker restart). */
int64_t mq_cli_timeout(const mq_cli_t *cli);

/* For an unknown command word: the candidate it was most likely meant to
 * be ("topik" -> "topic"), or NULL when none is close.  Close: at most
 * one edit (a letter added, dropped, changed, or two neighbours swapped)
 * for a word of up to four letters, two for a longer one, or word is the
 * start of a candidate (three letters at least).  The first of equally
 * close candidates wins. */
const char *mq_cli_suggest(const char *word, const char *const *cands, size_t n);

/* The --help lines of the options every client of a broker shares, for
 * programs whose option column starts at 29. */
#define MQ_CLI_HELP_BROKER                                                                        \
	"  -b, --broker ENDPOINT    broker (default $MQ_BROKER, else " MQ_DEFAULT_BROKER ")\n"       \
	"                           (HOST:PORT and :PORT mean tcp://HOST:PORT)\n"                  \
	"  -w, --timeout DURATION   give up after the broker is silent this long (default 10s;\n" \
	"                           0 or inf: wait forever)\n"                                  \
	"      --curve-server KEY   CurveZMQ: the broker's public key, or a file holding it\n"   \
	"                           (default $MQ_CURVE_SERVER)\n"                               \
	"      --curve-secret FILE  CurveZMQ: this client's secret key (default\n"              \
	"                           $MQ_CURVE_SECRET; without it, a key made for the run)\n"

/* SIGINT and SIGTERM add one to *flag, the program's stop flag (so a
 * second signal makes it 2: "stop waiting, now"), with no SA_RESTART, so
 * blocking calls return EINTR and the program looks at its flag; SIGPIPE
 * is ignored so a closed reader shows up as EPIPE.  The flag must live
 * as long as the program. */
void mq_cli_signals(volatile sig_atomic_t *flag);

/* After mq_cli_signals: SIGHUP sets *flag to 1 and wakes the same
 * self-pipe (mq-serve reads its allow-lists again). */
void mq_cli_reload_signal(volatile sig_atomic_t *flag);

/* A descriptor that becomes readable when one of those signals came
 * (a self-pipe: the handler writes a byte), for waits that cannot let
 * the signal in atomically (zmq_poll): with it among what they wait
 * on, a signal that lands between the look at the flag and the wait
 * still ends the wait.  -1 before mq_cli_signals (or without a pipe).
 * Who wakes on it reads it empty (mq_drain_fd) and looks at the flag. */
int mq_cli_signal_fd(void);

/* mq_client_open, the client woken by mq_cli_signal_fd (client.h:
 * mq_client_wake_on): how the programs open theirs. */
struct mq_client_opts;
struct mq_client;
int mq_cli_client_open(const struct mq_client_opts *o, struct mq_client **c, mq_err_t *err);

/* Sleep until the monotonic time until_ms (mq_mono_ms), or until *flag
 * is set by the handler of mq_cli_signals.  Race-free: SIGINT and SIGTERM
 * stay blocked between the look at *flag and the wait, which lets them
 * in atomically (ppoll), so a signal that comes just before the wait
 * still ends it at once. */
void mq_cli_sleep_until(int64_t until_ms, volatile sig_atomic_t *flag);

#endif
