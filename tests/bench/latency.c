/*
 * latency.c -- end-to-end latency of a publisher and a subscriber, as a
 * pipe user sees it: from a line written into the publisher's standard
 * input until the subscriber writes it to its standard output.
 *
 *   latency [-r RATE] [-d SECONDS] [-s BYTES] [-w SECONDS] [-W SECONDS] pipe 'PUB CMD' 'SUB CMD'
 *   latency [-r RATE] [-d SECONDS] [-s BYTES] [-w SECONDS] [-W SECONDS] [-a WINDOW] nats URL
 *
 * pipe: runs PUB CMD and SUB CMD (each with sh -c, in its own process
 * group) with a pipe into PUB's stdin and one from SUB's stdout, e.g.
 * 'mq-pub -t T' and 'mq-sub -t T -o end', or 'mosquitto_pub -l -q 1 -t T'
 * and 'mosquitto_sub -q 1 -t T'.  nats: publishes to NATS JetStream
 * itself, each message with js_Publish, which waits for the stream's ack
 * (or with -a WINDOW, js_PublishAsync with up to WINDOW acks awaited at
 * once, all of them before the end, as mq-pub and mosquitto_pub -q 1
 * keep a window), and receives through a push consumer on the same
 * connection; a message is timed from before its publish until its
 * receipt.  (Built only where libnats-dev is installed.)
 *
 * First warm-up lines ("w N"), one every 20 ms, until the subscriber
 * shows one: so a subscriber that starts at the end of the log is
 * surely in place, and connections are up.  Then RATE lines per second
 * for SECONDS, each written at its own absolute deadline (clock_nanosleep
 * on CLOCK_MONOTONIC, so a late line does not shift the ones after it),
 * carrying its sequence number and the CLOCK_MONOTONIC time just before
 * its write, padded to BYTES with the newline.  The subscriber's output
 * is read as it comes; a line's latency is the time after the read(2)
 * that returned it minus its send time.  After the last line it waits up
 * to -w SECONDS for the rest.  -W SECONDS (default: as -w) bounds the two
 * waits that are not measured: for the subscriber's first line, and for
 * the publisher to exit once its input ended; a loaded machine may need
 * more for those than a run is willing to wait for late lines.
 *
 * Prints one line:
 *   sent=N received=N duplicates=N sent_per_s=X late_max_us=X p50_us=X p90_us=X p99_us=X p999_us=X max_us=X
 * (percentiles by nearest rank over the lines received; late_max_us is
 * how far the writer itself fell behind its schedule at worst, and
 * sent_per_s the rate it kept: a line counts from just before its
 * write, so time the writer spent blocked or descheduled before it -- a
 * js_Publish waiting for its ack, a busy CPU -- is not in the
 * percentiles but shows there).  Exit
 * status 0 when every line arrived, 1 otherwise (saying how many did
 * not), 2 for usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef MQ_BENCH_NATS
#include <nats/nats.h>
#endif

#define WARM_EVERY_NS 20000000LL   /* a warm-up line every 20 ms */
#define SETTLE_NS 200000000LL      /* then 200 ms for the last of them */
#define MIN_SIZE 48

static const char *prog = "latency";

static int64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static struct timespec ts_of(int64_t ns)
{
	struct timespec t = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};
	return t;
}

/* What the subscriber showed, shared by the writer and the receiving
 * thread (the pipe reader, or libnats's delivery thread). */
typedef struct {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC: a line, the end, or the subscriber gone */
	uint64_t n;        /* lines to send */
	int64_t *lat;      /* ns by sequence number; -1 until received */
	uint64_t received, dups, other;
	int warm_seen, gone;
} run_t;

static void run_init(run_t *r, uint64_t n)
{
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &a);
	pthread_condattr_destroy(&a);
	r->n = n;
	r->lat = malloc(n * sizeof(*r->lat));
	if (!r->lat) {
		fprintf(stderr, "%s: no memory for %" PRIu64 " latencies; use a lower -r or -d\n", prog, n);
		exit(1);
	}
	for (uint64_t i = 0; i < n; i++)
		r->lat[i] = -1;
	r->received = r->dups = r->other = 0;
	r->warm_seen = r->gone = 0;
}

/* One line (without its newline) that the subscriber showed at time now. */
static void got_line(run_t *r, const char *p, size_t len, int64_t now)
{
	char tmp[64];
	size_t k = len < sizeof(tmp) - 1 ? len : sizeof(tmp) - 1;
	memcpy(tmp, p, k);
	tmp[k] = '\0';
	pthread_mutex_lock(&r->mu);
	if (tmp[0] == 'w' && tmp[1] == ' ') {
		if (!r->warm_seen) {
			r->warm_seen = 1;
			pthread_cond_broadcast(&r->cv);
		}
	} else if (tmp[0] == 'm' && tmp[1] == ' ') {
		char *end;
		uint64_t seq = strtoull(tmp + 2, &end, 10);
		int64_t sent = strtoll(end, &end, 10);
		if (seq >= r->n || *end != ' ') {
			r->other++;
		} else if (r->lat[seq] >= 0) {
			r->dups++;
		} else {
			r->lat[seq] = now - sent;
			if (++r->received == r->n)
				pthread_cond_broadcast(&r->cv);
		}
	} else {
		r->other++;
	}
	pthread_mutex_unlock(&r->mu);
}

static void set_gone(run_t *r)
{
	pthread_mutex_lock(&r->mu);
	r->gone = 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Wait until done(r) or the deadline; returns done(r). */
static int wait_until(run_t *r, int (*done)(const run_t *), int64_t deadline)
{
	struct timespec t = ts_of(deadline);
	pthread_mutex_lock(&r->mu);
	while (!done(r) && !r->gone)
		if (pthread_cond_timedwait(&r->cv, &r->mu, &t) == ETIMEDOUT)
			break;
	int d = done(r);
	pthread_mutex_unlock(&r->mu);
	return d;
}

static int warm_done(const run_t *r) { return r->warm_seen; }
static int all_done(const run_t *r) { return r->received == r->n; }

/* ---- transports ---------------------------------------------------------- */

typedef struct transport transport_t;
struct transport {
	const char *name;
	/* Send one line of len bytes (its newline included). 0 or -1 (said why). */
	int (*send)(transport_t *t, const char *line, size_t len);
	/* End the publisher and the subscriber; after it nothing calls
	 * got_line.  0, or -1 when the publisher failed (said why). */
	int (*stop)(transport_t *t);
	run_t *run;
	/* pipe */
	pid_t pub, sub;
	int pub_fd, sub_fd, stop_pipe[2];
	pthread_t reader;
	int reader_on;
	double wait_s;
	double start_s; /* -W: the publisher's grace to exit after its input ended */
#ifdef MQ_BENCH_NATS
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *nsub;
	int window;                 /* -a: acks awaited at once; 0: js_Publish */
	pthread_mutex_t nack_mu;
	uint64_t nacks;             /* async publishes that failed */
#endif
};

/* sh -c CMD in its own process group, stdin from in_fd, stdout to out_fd
 * (-1: inherited). */
static pid_t spawn(const char *cmd, int in_fd, int out_fd)
{
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "%s: fork for '%s': %s\n", prog, cmd, strerror(errno));
		exit(1);
	}
	if (pid == 0) {
		setpgid(0, 0);
		signal(SIGPIPE, SIG_DFL);
		if (in_fd >= 0 && dup2(in_fd, 0) < 0)
			_exit(127);
		if (out_fd >= 0 && dup2(out_fd, 1) < 0)
			_exit(127);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		fprintf(stderr, "%s: /bin/sh for '%s': %s\n", prog, cmd, strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid); /* also here, so that a kill of the group cannot miss */
	return pid;
}

static void *pipe_reader(void *arg)
{
	transport_t *t = arg;
	static const size_t cap = 1 << 16;
	char *buf = malloc(cap);
	size_t have = 0;
	int skipping = 0; /* inside a line longer than the buffer */
	if (!buf) {
		fprintf(stderr, "%s: no memory for the subscriber's output buffer\n", prog);
		set_gone(t->run);
		return NULL;
	}
	for (;;) {
		struct pollfd pf[2] = {{.fd = t->sub_fd, .events = POLLIN}, {.fd = t->stop_pipe[0], .events = POLLIN}};
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: waiting for the subscriber's output: %s\n", prog, strerror(errno));
			break;
		}
		if (pf[1].revents)
			break;
		ssize_t k = read(t->sub_fd, buf + have, cap - have);
		int64_t now = mono_ns();
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k < 0)
				fprintf(stderr, "%s: reading the subscriber's output: %s\n", prog, strerror(errno));
			break;
		}
		have += (size_t)k;
		char *p = buf, *end = buf + have, *nl;
		while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
			if (!skipping)
				got_line(t->run, p, (size_t)(nl - p), now);
			skipping = 0;
			p = nl + 1;
		}
		have = (size_t)(end - p);
		if (have == cap) { /* a line longer than any we send: not ours */
			skipping = 1;
			have = 0;
		} else {
			memmove(buf, p, have);
		}
	}
	free(buf);
	set_gone(t->run);
	return NULL;
}

static int pipe_send(transport_t *t, const char *line, size_t len)
{
	while (len) {
		ssize_t k = write(t->pub_fd, line, len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			fprintf(stderr, "%s: writing to the publisher: %s%s\n", prog, strerror(errno),
				errno == EPIPE ? " (it exited; see its message above)" : "");
			return -1;
		}
		line += k;
		len -= (size_t)k;
	}
	return 0;
}

/* Wait for pid up to secs seconds (on a pidfd, so no polling; secs 0:
 * not at all), then TERM its group, saying so when secs > 0.  Returns
 * its wait status. */
static int reap(pid_t pid, double secs, const char *cmd)
{
	int st = 0, gone = 0;
	if (secs > 0) {
		int fd = pidfd_open(pid, 0);
		if (fd < 0) {
			fprintf(stderr, "%s: pidfd_open: %s; stopping '%s' at once\n", prog, strerror(errno), cmd);
		} else {
			struct pollfd pf = {.fd = fd, .events = POLLIN};
			int r;
			while ((r = poll(&pf, 1, (int)(secs * 1000))) < 0 && errno == EINTR)
				;
			close(fd);
			gone = r > 0;
			if (!gone)
				fprintf(stderr, "%s: '%s' still running %.1f s after its input ended; stopping it\n", prog, cmd, secs);
		}
	}
	if (!gone)
		kill(-pid, SIGTERM);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

static const char *pub_cmd, *sub_cmd;

static int pipe_stop(transport_t *t)
{
	if (t->reader_on) {
		if (write(t->stop_pipe[1], "x", 1) < 0)
			fprintf(stderr, "%s: stopping the reader: %s\n", prog, strerror(errno));
		pthread_join(t->reader, NULL);
	}
	close(t->pub_fd); /* end of input: the publisher sends the rest and exits */
	int st = reap(t->pub, t->start_s, pub_cmd);
	int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (!ok)
		fprintf(stderr, "%s: '%s' ended with %s %d\n", prog, pub_cmd, WIFEXITED(st) ? "status" : "signal",
			WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	reap(t->sub, 0, sub_cmd);
	close(t->sub_fd);
	return ok ? 0 : -1;
}

static void pipe_start(transport_t *t, run_t *r, double wait_s, double start_s)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(t->stop_pipe, O_CLOEXEC)) {
		fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
		exit(1);
	}
	t->name = "pipe";
	t->run = r;
	t->wait_s = wait_s;
	t->start_s = start_s;
	t->send = pipe_send;
	t->stop = pipe_stop;
	t->sub = spawn(sub_cmd, -1, out[1]);
	t->pub = spawn(pub_cmd, in[0], -1);
	close(out[1]);
	close(in[0]);
	t->pub_fd = in[1];
	t->sub_fd = out[0];
	if (pthread_create(&t->reader, NULL, pipe_reader, t) != 0) {
		fprintf(stderr, "%s: cannot start the reader thread\n", prog);
		exit(1);
	}
	t->reader_on = 1;
}

#ifdef MQ_BENCH_NATS
#define NATS_STREAM "MQBENCH"
#define NATS_SUBJECT "mqbench.latency"

static void nats_fail(const char *what, natsStatus s)
{
	const char *last = nats_GetLastError(NULL);
	fprintf(stderr, "%s: NATS %s: %s%s%s (is nats-server running with -js?)\n", prog, what,
		natsStatus_GetText(s), last ? ": " : "", last ? last : "");
	exit(1);
}

static void nats_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	int64_t now = mono_ns();
	(void)nc;
	(void)sub;
	got_line(closure, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), now);
	natsMsg_Destroy(msg);
}

static void nats_on_nack(jsCtx *js, jsPubAckErr *pae, void *closure)
{
	transport_t *t = closure;
	(void)js;
	pthread_mutex_lock(&t->nack_mu);
	if (!t->nacks++)
		fprintf(stderr, "%s: NATS js_PublishAsync: %s (JetStream error %d)\n", prog,
			pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err), (int)pae->ErrCode);
	pthread_mutex_unlock(&t->nack_mu);
}

static int nats_send(transport_t *t, const char *line, size_t len)
{
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	natsStatus s = t->window ? js_PublishAsync(t->js, NATS_SUBJECT, line, (int)len - 1, NULL)
				 : js_Publish(&pa, t->js, NATS_SUBJECT, line, (int)len - 1, NULL, &jerr);
	jsPubAck_Destroy(pa);
	if (s != NATS_OK) {
		fprintf(stderr, "%s: NATS %s: %s (JetStream error %d)\n", prog, t->window ? "js_PublishAsync" : "js_Publish",
			natsStatus_GetText(s), (int)jerr);
		return -1;
	}
	return 0;
}

static int nats_stop(transport_t *t)
{
	int rc = 0;
	if (t->window) {
		jsPubOptions po;
		jsPubOptions_Init(&po);
		po.MaxWait = (int64_t)(t->wait_s * 1000);
		natsStatus s = js_PublishAsyncComplete(t->js, &po);
		if (s != NATS_OK) {
			fprintf(stderr, "%s: NATS: not every publish was acknowledged within %g s: %s\n", prog, t->wait_s,
				natsStatus_GetText(s));
			rc = -1;
		}
	}
	natsSubscription_Unsubscribe(t->nsub);
	natsSubscription_Destroy(t->nsub);
	js_DeleteStream(t->js, NATS_STREAM, NULL, NULL);
	jsCtx_Destroy(t->js);
	natsConnection_Destroy(t->nc);
	nats_CloseAndWait(0); /* joins libnats's threads: no callback after this */
	if (t->nacks) {
		fprintf(stderr, "%s: NATS: %" PRIu64 " publishes failed\n", prog, t->nacks);
		rc = -1;
	}
	pthread_mutex_destroy(&t->nack_mu);
	return rc;
}

static void nats_start(transport_t *t, run_t *r, const char *url, int window, double wait_s, double start_s)
{
	natsStatus s;
	jsErrCode jerr = 0;
	t->name = "nats";
	t->run = r;
	t->send = nats_send;
	t->stop = nats_stop;
	t->window = window;
	t->wait_s = wait_s;
	t->start_s = start_s;
	pthread_mutex_init(&t->nack_mu, NULL);
	jsOptions jo;
	jsOptions_Init(&jo);
	if (window) {
		jo.PublishAsync.MaxPending = window;
		jo.PublishAsync.ErrHandler = nats_on_nack;
		jo.PublishAsync.ErrHandlerClosure = t;
	}
	if ((s = natsConnection_ConnectTo(&t->nc, url)) != NATS_OK)
		nats_fail(url, s);
	if ((s = natsConnection_JetStream(&t->js, t->nc, &jo)) != NATS_OK)
		nats_fail("JetStream context", s);
	js_DeleteStream(t->js, NATS_STREAM, NULL, NULL); /* a stream left by an earlier run */
	jsStreamConfig cfg;
	jsStreamConfig_Init(&cfg);
	const char *subjects[] = {NATS_SUBJECT};
	cfg.Name = NATS_STREAM;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	jsStreamInfo *si = NULL;
	if ((s = js_AddStream(&si, t->js, &cfg, NULL, &jerr)) != NATS_OK)
		nats_fail("adding stream " NATS_STREAM, s);
	jsStreamInfo_Destroy(si);
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Config.DeliverPolicy = js_DeliverNew;
	so.Config.AckPolicy = js_AckNone; /* like mq-sub without -g: nothing to commit */
	so.ManualAck = true;
	if ((s = js_Subscribe(&t->nsub, t->js, NATS_SUBJECT, nats_on_msg, r, NULL, &so, &jerr)) != NATS_OK)
		nats_fail("push consumer on " NATS_SUBJECT, s);
}
#endif

/* ---- the run ----------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least p of all at or below it. */
static double pct_us(const int64_t *v, uint64_t m, double p)
{
	uint64_t i = (uint64_t)ceil(p * (double)m);
	if (i < 1)
		i = 1;
	if (i > m)
		i = m;
	return (double)v[i - 1] / 1000.0;
}

/* Warm-up lines until the subscriber shows one, then a pause for the
 * rest of them to pass.  0, or -1 (said why). */
static int warm_up(transport_t *t, run_t *r, char *line, size_t size, double wait_s)
{
	int64_t give_up = mono_ns() + (int64_t)(wait_s * 1e9);
	for (uint64_t k = 0;; k++) {
		int len = snprintf(line, size, "w %" PRIu64 "\n", k);
		if (t->send(t, line, (size_t)len))
			return -1;
		int64_t next = mono_ns() + WARM_EVERY_NS;
		if (wait_until(r, warm_done, next < give_up ? next : give_up))
			break;
		if (r->gone || mono_ns() >= give_up) {
			fprintf(stderr, "%s: the subscriber %s\n", prog,
				r->gone ? "ended before showing any line (see its message above)"
					: "showed none of the warm-up lines; is it subscribed to what the publisher sends?");
			return -1;
		}
	}
	struct timespec ts = ts_of(mono_ns() + SETTLE_NS);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
	return 0;
}

/* The measured lines, each at its own deadline; then up to wait_s for the
 * last of them.  0, or -1 when a send failed (said why).  *sent_per_s:
 * the rate kept, counting the last line's period as the first's. */
static int send_all(transport_t *t, run_t *r, char *line, size_t size, double rate, double wait_s, uint64_t *sent,
		    int64_t *late_max, double *sent_per_s)
{
	double period = 1e9 / rate;
	int64_t t0 = mono_ns() + 1000000, last_sent = t0;
	for (uint64_t k = 0; k < r->n; k++) {
		int64_t due = t0 + (int64_t)((double)k * period);
		struct timespec ts = ts_of(due);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		int64_t now = mono_ns();
		if (now - due > *late_max)
			*late_max = now - due;
		int len = snprintf(line, size, "m %" PRIu64 " %" PRId64 " ", k, now);
		memset(line + len, 'x', size - 1 - (size_t)len);
		line[size - 1] = '\n';
		if (t->send(t, line, size))
			return -1;
		(*sent)++;
		last_sent = mono_ns();
		*sent_per_s = (double)*sent * 1e9 / ((double)(last_sent - t0) + period);
	}
	wait_until(r, all_done, last_sent + (int64_t)(wait_s * 1e9));
	return 0;
}

/* Print the result line; returns how many lines arrived. */
static uint64_t report(const run_t *r, uint64_t sent, double sent_per_s, int64_t late_max)
{
	int64_t *v = malloc((r->received ? r->received : 1) * sizeof(*v));
	if (!v) {
		fprintf(stderr, "%s: no memory to sort %" PRIu64 " latencies\n", prog, r->received);
		exit(1);
	}
	uint64_t m = 0;
	for (uint64_t i = 0; i < r->n; i++)
		if (r->lat[i] >= 0)
			v[m++] = r->lat[i];
	qsort(v, m, sizeof(*v), cmp_i64);
	printf("sent=%" PRIu64 " received=%" PRIu64 " duplicates=%" PRIu64 " sent_per_s=%.0f late_max_us=%.1f", sent, m,
	       r->dups, sent_per_s, (double)late_max / 1000.0);
	if (m)
		printf(" p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n", pct_us(v, m, 0.50),
		       pct_us(v, m, 0.90), pct_us(v, m, 0.99), pct_us(v, m, 0.999), (double)v[m - 1] / 1000.0);
	else
		printf(" p50_us=- p90_us=- p99_us=- p999_us=- max_us=-\n");
	if (r->other)
		fprintf(stderr, "%s: note: the subscriber showed %" PRIu64 " lines that were not ours\n", prog, r->other);
	free(v);
	return m;
}

static int usage(FILE *f, int status)
{
	fprintf(f, "usage: %s [-r RATE] [-d SECONDS] [-s BYTES] [-w SECONDS] [-W SECONDS] pipe 'PUB CMD' 'SUB CMD'\n", prog);
#ifdef MQ_BENCH_NATS
	fprintf(f, "       %s [-r RATE] [-d SECONDS] [-s BYTES] [-w SECONDS] [-W SECONDS] [-a WINDOW] nats URL\n", prog);
#else
	fprintf(f, "       (no nats URL: built without libnats-dev; make bench-deps, then make)\n");
#endif
	fprintf(f,
		"  -r RATE     lines per second (default 500)\n"
		"  -d SECONDS  how long to send them (default 10)\n"
		"  -s BYTES    length of each line with its newline (default 100, at least %d)\n"
		"  -w SECONDS  wait this long for the last lines after sending (default 10)\n"
		"  -W SECONDS  wait this long for the subscriber's first line, and for the\n"
		"              publisher to exit after its input ended (default: as -w)\n"
		"  -a WINDOW   nats: js_PublishAsync with up to WINDOW acks awaited at once\n"
		"              (default: js_Publish, each ack awaited before the next line)\n",
		MIN_SIZE);
	return status;
}

static int num_arg(const char *arg, char opt, double min, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v >= min) || !isfinite(v)) {
		fprintf(stderr, "%s: -%c %s: give a number, at least %g\n", prog, opt, arg, min);
		return -1;
	}
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	double rate = 500, secs = 10, size_d = 100, wait_s = 10, start_s = -1, window = 0;
	int c;
	while ((c = getopt(argc, argv, "+r:d:s:w:W:a:h")) != -1) {
		switch (c) {
		case 'r': if (num_arg(optarg, 'r', 0.001, &rate)) return 2; break;
		case 'd': if (num_arg(optarg, 'd', 0.001, &secs)) return 2; break;
		case 's': if (num_arg(optarg, 's', MIN_SIZE, &size_d)) return 2; break;
		case 'w': if (num_arg(optarg, 'w', 0.001, &wait_s)) return 2; break;
		case 'W': if (num_arg(optarg, 'W', 0.001, &start_s)) return 2; break;
		case 'a': if (num_arg(optarg, 'a', 1, &window)) return 2; break;
		case 'h': return usage(stdout, 0);
		default: return usage(stderr, 2);
		}
	}
	if (start_s < 0)
		start_s = wait_s;
	argc -= optind;
	argv += optind;
	int is_pipe = argc == 3 && !strcmp(argv[0], "pipe");
	int is_nats = argc == 2 && !strcmp(argv[0], "nats");
	if (!is_pipe && !is_nats)
		return usage(stderr, 2);
	double nd = llround(rate * secs);
	if (nd < 1 || nd > 1e9) {
		fprintf(stderr, "%s: -r %g for -d %g makes %.0f lines; give between 1 and 10^9\n", prog, rate, secs, nd);
		return 2;
	}
	uint64_t n = (uint64_t)nd;
	size_t size = (size_t)size_d;
#ifndef MQ_BENCH_NATS
	if (is_nats) {
		fprintf(stderr, "%s: nats: built without libnats-dev (make bench-deps, then make)\n", prog);
		return 2;
	}
#endif

	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_TIMERSLACK, 1UL); /* wake at the deadline, not up to 50 us after */
	run_t r;
	run_init(&r, n);
	transport_t t = {0};
	if (is_pipe) {
		pub_cmd = argv[1];
		sub_cmd = argv[2];
		pipe_start(&t, &r, wait_s, start_s);
	}
#ifdef MQ_BENCH_NATS
	if (is_nats)
		nats_start(&t, &r, argv[1], (int)window, wait_s, start_s);
#endif

	char *line = malloc(size);
	if (!line) {
		fprintf(stderr, "%s: no memory for a line of %zu bytes\n", prog, size);
		return 1;
	}
	int64_t late_max = 0;
	uint64_t sent = 0;
	double sent_per_s = 0;
	int failed = warm_up(&t, &r, line, size, start_s) ||
		     send_all(&t, &r, line, size, rate, wait_s, &sent, &late_max, &sent_per_s);
	if (t.stop(&t))
		failed = 1;
	/* Every receiving thread has ended: r is ours alone. */
	uint64_t m = report(&r, sent, sent_per_s, late_max);
	if (!failed && m < n)
		fprintf(stderr, "%s: %" PRIu64 " of %" PRIu64 " lines did not arrive within %g s after the last was sent\n",
			prog, n - m, n, wait_s);
	free(line);
	free(r.lat);
	return failed || m < n ? 1 : 0;
}
