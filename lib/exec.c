/*
 * exec.c -- the runs of exec.h.
 *
 * Each slot holds a FIFO of jobs (a job: one message, copied into one
 * allocation) and at most one run.  A run is spawned with posix_spawn
 * into a process group of its own (so a timeout kills what the shell
 * started too), with its standard input a memfd holding the value, and
 * its standard output and error pipes that this side reads without
 * blocking.  A pidfd per run tells when it ended; the pipes and pidfds
 * sit in one epoll set, whose descriptor the caller waits on.
 *
 * Starting looks for slots with a job, no run, and no backoff pending,
 * from a rotating point so that no slot waits behind others for long;
 * the scan is over every slot (O(slots) per poll: fine for the
 * thousands of partitions one consumer owns; a ready list would replace
 * it).
 */
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define KILL_GRACE_MS 2000 /* after SIGTERM at the timeout, SIGKILL */
#define LINE_MAX_BYTES 65536 /* a longer line without a newline is written in pieces */

typedef struct job {
	struct job *next;
	char *topic;
	uint32_t partition;
	mq_record_t rec; /* pointers into data */
	size_t bytes;
	uint8_t data[];
} job_t;

typedef struct slot {
	job_t *head, *tail;
	size_t n, bytes;
	uint32_t attempt;   /* runs of the head job so far */
	int64_t next_try;   /* backoff: not before this (monotonic ms) */
	/* the run going on */
	pid_t pid;          /* 0: none */
	int pidfd, outfd, errfd;
	int64_t started, term_at, kill_at;
	int timed_out;
	mq_buf_t out, err;  /* partial lines */
	char first_err[512];
	int have_first_err;
} slot_t;

struct mq_exec {
	mq_exec_opts_t o;
	mq_exec_done_fn done;
	void *ctx;
	slot_t *s;
	uint32_t ns;
	uint32_t running, rot;
	size_t total;
	int ep;
	int no_start;
	uint64_t rnd;
};

static uint64_t rnd_next(mq_exec_t *x)
{
	x->rnd ^= x->rnd << 13;
	x->rnd ^= x->rnd >> 7;
	x->rnd ^= x->rnd << 17;
	return x->rnd;
}

int mq_exec_parse_backoff(const char *s, int64_t *min_ms, int64_t *max_ms, mq_err_t *err)
{
	char a[64];
	const char *comma = strchr(s, ',');
	size_t n = comma ? (size_t)(comma - s) : strlen(s);
	if (n == 0 || n >= sizeof(a))
		return mq_err_set(err, MQ_EINVAL, "--backoff '%.200s': expected MIN[,MAX], e.g. 1s,1m", s);
	memcpy(a, s, n);
	a[n] = 0;
	if (mq_parse_duration_ms(a, min_ms, err) || *min_ms < 0)
		return mq_err_set(err, MQ_EINVAL, "--backoff '%.200s': expected MIN[,MAX] durations, e.g. 1s,1m", s);
	*max_ms = *min_ms * 60 > *min_ms ? *min_ms * 60 : *min_ms;
	if (comma && (mq_parse_duration_ms(comma + 1, max_ms, err) || *max_ms < *min_ms))
		return mq_err_set(err, MQ_EINVAL, "--backoff '%.200s': expected MIN[,MAX] with MAX >= MIN, e.g. 1s,1m", s);
	return 0;
}

int mq_exec_new(const mq_exec_opts_t *o, mq_exec_done_fn done, void *ctx, mq_exec_t **out, mq_err_t *err)
{
	mq_exec_t *x = calloc(1, sizeof(*x));
	if (!x)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	x->o = *o;
	if (!x->o.concurrency)
		x->o.concurrency = 1;
	if (!x->o.max_attempts)
		x->o.max_attempts = 1;
	x->done = done;
	x->ctx = ctx;
	x->rnd = (uint64_t)mq_mono_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() << 32 ^ 0x2545f4914f6cdd1dull;
	if (!x->rnd)
		x->rnd = 1;
	x->ep = epoll_create1(EPOLL_CLOEXEC);
	if (x->ep < 0) {
		free(x);
		return mq_err_sys(err, "cannot create an epoll descriptor for --exec");
	}
	*out = x;
	return 0;
}

static int grow_slots(mq_exec_t *x, uint32_t slot, mq_err_t *err)
{
	if (slot < x->ns)
		return 0;
	uint32_t n = x->ns ? x->ns : 16;
	while (n <= slot)
		n *= 2;
	slot_t *v = realloc(x->s, n * sizeof(*v));
	if (!v)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	memset(v + x->ns, 0, (n - x->ns) * sizeof(*v));
	for (uint32_t i = x->ns; i < n; i++)
		v[i].pidfd = v[i].outfd = v[i].errfd = -1;
	x->s = v;
	x->ns = n;
	return 0;
}

int mq_exec_push(mq_exec_t *x, uint32_t slot, const char *topic, uint32_t partition, const mq_record_t *rec,
		 mq_err_t *err)
{
	if (grow_slots(x, slot, err))
		return -MQ_ENOMEM;
	size_t tl = strlen(topic) + 1, hl = (size_t)(rec->headers_end - rec->headers);
	size_t bytes = tl + rec->key_len + rec->value_len + rec->id_len + hl;
	job_t *j = malloc(sizeof(*j) + bytes);
	if (!j)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	uint8_t *d = j->data;
	j->next = NULL;
	j->partition = partition;
	j->bytes = bytes;
	j->rec = *rec;
	j->topic = (char *)d;
	memcpy(d, topic, tl);
	d += tl;
#define COPY(ptr, len)                                   \
	do {                                             \
		if (rec->ptr) {                          \
			memcpy(d, rec->ptr, rec->len);   \
			j->rec.ptr = d;                  \
			d += rec->len;                   \
		}                                        \
	} while (0)
	COPY(key, key_len);
	COPY(value, value_len);
	COPY(id, id_len);
#undef COPY
	if (!j->rec.value)
		j->rec.value = d; /* an empty value: a valid pointer */
	memcpy(d, rec->headers, hl);
	j->rec.headers = d;
	j->rec.headers_end = d + hl;
	slot_t *s = &x->s[slot];
	if (s->tail)
		s->tail->next = j;
	else
		s->head = j;
	s->tail = j;
	s->n++;
	s->bytes += bytes;
	x->total++;
	return 0;
}

size_t mq_exec_queued(const mq_exec_t *x, uint32_t slot)
{
	return slot < x->ns ? x->s[slot].n : 0;
}

size_t mq_exec_queued_bytes(const mq_exec_t *x, uint32_t slot)
{
	return slot < x->ns ? x->s[slot].bytes : 0;
}

int mq_exec_running(const mq_exec_t *x, uint32_t slot)
{
	return slot < x->ns && x->s[slot].pid != 0;
}

uint32_t mq_exec_nrunning(const mq_exec_t *x)
{
	return x->running;
}

size_t mq_exec_total(const mq_exec_t *x)
{
	return x->total;
}

int mq_exec_fd(const mq_exec_t *x)
{
	return x->ep;
}

static void pop(mq_exec_t *x, slot_t *s)
{
	job_t *j = s->head;
	s->head = j->next;
	if (!s->head)
		s->tail = NULL;
	s->n--;
	s->bytes -= j->bytes;
	x->total--;
	s->attempt = 0;
	s->next_try = 0;
	free(j);
}

void mq_exec_drop(mq_exec_t *x, uint32_t slot)
{
	if (slot >= x->ns)
		return;
	slot_t *s = &x->s[slot];
	if (s->pid) { /* keep the job that runs, drop what waits behind it */
		while (s->head && s->head->next) {
			job_t *j = s->head->next;
			s->head->next = j->next;
			s->n--;
			s->bytes -= j->bytes;
			x->total--;
			free(j);
		}
		s->tail = s->head;
		return;
	}
	while (s->head)
		pop(x, s);
}

void mq_exec_stop_starting(mq_exec_t *x)
{
	x->no_start = 1;
}

void mq_exec_kill(mq_exec_t *x, int hard)
{
	for (uint32_t i = 0; i < x->ns; i++)
		if (x->s[i].pid)
			kill(-x->s[i].pid, hard ? SIGKILL : SIGTERM);
}

int64_t mq_exec_deadline(const mq_exec_t *x)
{
	int64_t d = 0;
	for (uint32_t i = 0; i < x->ns; i++) {
		const slot_t *s = &x->s[i];
		int64_t t = 0;
		if (s->pid)
			t = s->kill_at ? s->kill_at : s->term_at;
		else if (s->head && s->next_try && !x->no_start)
			t = s->next_try;
		if (t && (!d || t < d))
			d = t;
	}
	return d;
}

/* ---- output ---- */

static void write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the reader is gone: the output is lost, not the message */
		c += w;
		n -= (size_t)w;
	}
}

/* Write out whole lines of buf (all of it when final), for fd 'which':
 * 1 standard output as it is, 2 standard error with the prefix. */
static void emit(mq_exec_t *x, slot_t *s, int which, int final)
{
	mq_buf_t *b = which == 1 ? &s->out : &s->err;
	size_t from = 0;
	const job_t *j = s->head;
	char prefix[320]; /* a topic name (200 at most), partition and offset */
	int pl = snprintf(prefix, sizeof(prefix), "%s/%u/%" PRIu64 ": ", j->topic, j->partition, j->rec.offset);
	if (pl < 0 || (size_t)pl >= sizeof(prefix))
		pl = (int)sizeof(prefix) - 1;
	while (from < b->len) {
		uint8_t *nl = memchr(b->p + from, '\n', b->len - from);
		size_t end = nl ? (size_t)(nl - b->p) + 1 : b->len;
		if (!nl && !final && b->len - from < LINE_MAX_BYTES)
			break;
		if (which == 2 && !s->have_first_err) {
			size_t n = end - from - (nl ? 1 : 0);
			if (n >= sizeof(s->first_err))
				n = sizeof(s->first_err) - 1;
			memcpy(s->first_err, b->p + from, n);
			s->first_err[n] = 0;
			s->have_first_err = 1;
		}
		if (which == 1) {
			write_all(x->o.out_fd, b->p + from, end - from);
			if (!nl)
				write_all(x->o.out_fd, "\n", 1);
		} else {
			/* prefix and line in one write: lines of runs never mix */
			size_t n = end - from;
			char *line = malloc((size_t)pl + n + 1);
			if (line) {
				memcpy(line, prefix, (size_t)pl);
				memcpy(line + pl, b->p + from, n);
				if (!nl)
					line[pl + n++] = '\n';
				write_all(x->o.err_fd, line, (size_t)pl + n);
				free(line);
			}
		}
		from = end;
	}
	memmove(b->p, b->p + from, b->len - from);
	b->len -= from;
}

/* Read what a pipe holds now (it is non-blocking).  1 at its end. */
static int drain(mq_exec_t *x, slot_t *s, int which)
{
	int fd = which == 1 ? s->outfd : s->errfd;
	mq_buf_t *b = which == 1 ? &s->out : &s->err;
	if (fd < 0)
		return 1;
	for (;;) {
		if (mq_buf_reserve(b, 65536))
			return 0;
		ssize_t r = read(fd, b->p + b->len, 65536);
		if (r > 0) {
			b->len += (size_t)r;
			emit(x, s, which, 0);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		return r == 0;
	}
}

/* ---- runs ---- */

/* NAME of a header as an environment name: upper case, others '_'. */
static char *env_header(const mq_header_t *h)
{
	size_t n = 10 + h->name_len + 1 + h->value_len + 1;
	char *e = malloc(n), *p = e;
	if (!e)
		return NULL;
	memcpy(p, "MQ_HEADER_", 10);
	p += 10;
	for (size_t i = 0; i < h->name_len; i++) {
		char c = (char)h->name[i];
		*p++ = c >= 'a' && c <= 'z' ? (char)(c - 32) : (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ? c : '_';
	}
	*p++ = '=';
	size_t vl = strnlen((const char *)h->value, h->value_len);
	memcpy(p, h->value, vl);
	p[vl] = 0;
	return e;
}

static char *env_bytes(const char *name, const uint8_t *v, size_t n)
{
	size_t nl = strlen(name), vl = v ? strnlen((const char *)v, n) : 0;
	char *e = malloc(nl + 1 + vl + 1);
	if (!e)
		return NULL;
	memcpy(e, name, nl);
	e[nl] = '=';
	if (vl)
		memcpy(e + nl + 1, v, vl);
	e[nl + 1 + vl] = 0;
	return e;
}

static char *env_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *env_fmt(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* The environment of a run: ours without MQ_* names it sets, then its own. */
static char **make_env(const job_t *j, uint32_t attempt, size_t *count)
{
	size_t n = 0;
	while (environ[n])
		n++;
	size_t cap = n + 9 + j->rec.header_count + 1, k = 0;
	char **env = calloc(cap, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "MQ_", 3) != 0)
			env[k++] = environ[i];
	size_t own = k;
	env[k++] = env_bytes("MQ_TOPIC", (const uint8_t *)j->topic, strlen(j->topic));
	env[k++] = env_fmt("MQ_PARTITION=%u", j->partition);
	env[k++] = env_fmt("MQ_OFFSET=%" PRIu64, j->rec.offset);
	env[k++] = env_bytes("MQ_KEY", j->rec.key, j->rec.key_len);
	env[k++] = env_bytes("MQ_ID", j->rec.id, j->rec.id_len);
	env[k++] = env_fmt("MQ_TIMESTAMP=%" PRId64, j->rec.timestamp);
	env[k++] = env_fmt("MQ_ATTEMPT=%u", attempt);
	env[k++] = env_fmt("MQ_HEADERS=%u", j->rec.header_count);
	const uint8_t *hp = j->rec.headers;
	mq_header_t h;
	for (uint32_t i = 0; i < j->rec.header_count && mq_header_next(&hp, j->rec.headers_end, &h); i++)
		env[k++] = env_header(&h);
	*count = own;
	for (size_t i = own; i < k; i++)
		if (!env[i]) {
			for (size_t m = own; m < k; m++)
				free(env[m]);
			free(env);
			return NULL;
		}
	env[k] = NULL;
	return env;
}

static void free_env(char **env, size_t own)
{
	for (size_t i = own; env[i]; i++)
		free(env[i]);
	free(env);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int watch(mq_exec_t *x, int fd, uint32_t slot, uint32_t kind)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)slot << 2 | kind};
	return epoll_ctl(x->ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Start the head job of slot. */
static int start(mq_exec_t *x, uint32_t slot, mq_err_t *err)
{
	slot_t *s = &x->s[slot];
	job_t *j = s->head;
	int in = -1, out[2] = {-1, -1}, er[2] = {-1, -1}, rc = 0;
	char **env = NULL;
	size_t own = 0;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	in = memfd_create("mq-exec-value", MFD_CLOEXEC);
	if (in < 0 || pipe2(out, O_CLOEXEC) || pipe2(er, O_CLOEXEC)) {
		rc = mq_err_sys(err, "--exec: cannot make the pipes of a run");
		goto done;
	}
	size_t left = j->rec.value_len;
	const uint8_t *v = j->rec.value;
	while (left) {
		ssize_t w = write(in, v, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = mq_err_sys(err, "--exec: cannot hold a value of %zu bytes for the command", j->rec.value_len);
			goto done;
		}
		v += w;
		left -= (size_t)w;
	}
	lseek(in, 0, SEEK_SET);
	if (!(env = make_env(j, s->attempt + 1, &own))) {
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
		goto done;
	}
	sigset_t none, dfl;
	sigemptyset(&none);
	sigfillset(&dfl);
	sigdelset(&dfl, SIGKILL);
	sigdelset(&dfl, SIGSTOP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
	posix_spawn_file_actions_adddup2(&fa, in, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, er[1], 2);
	char *argv[] = {"sh", "-c", (char *)x->o.cmd, NULL};
	pid_t pid;
	int e = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, env);
	if (e) {
		errno = e;
		rc = mq_err_sys(err, "--exec: cannot start /bin/sh");
		goto done;
	}
	s->pid = pid;
	s->pidfd = pidfd_open(pid, 0);
	s->outfd = out[0];
	s->errfd = er[0];
	out[0] = er[0] = -1;
	fcntl(s->outfd, F_SETFL, O_NONBLOCK);
	fcntl(s->errfd, F_SETFL, O_NONBLOCK);
	s->started = mq_mono_ms();
	s->term_at = x->o.timeout_ms > 0 ? s->started + x->o.timeout_ms : 0;
	s->kill_at = 0;
	s->timed_out = 0;
	s->have_first_err = 0;
	s->first_err[0] = 0;
	s->out.len = s->err.len = 0;
	x->running++;
	if (s->pidfd < 0 || watch(x, s->pidfd, slot, 0) || watch(x, s->outfd, slot, 1) || watch(x, s->errfd, slot, 2))
		rc = mq_err_sys(err, "--exec: cannot watch a run");
done:
	if (in >= 0)
		close(in);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&er[0]);
	close_fd(&er[1]);
	if (env)
		free_env(env, own);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return rc;
}

static int64_t backoff(mq_exec_t *x, uint32_t attempt)
{
	int64_t d = x->o.backoff_min_ms;
	for (uint32_t i = 1; i < attempt && d < x->o.backoff_max_ms; i++)
		d *= 2;
	if (d > x->o.backoff_max_ms)
		d = x->o.backoff_max_ms;
	if (d <= 1)
		return d;
	return d / 2 + (int64_t)(rnd_next(x) % (uint64_t)(d - d / 2 + 1));
}

/* The run of slot ended with wait status st: emit the rest of its
 * output, and finish its job or schedule it again. */
static int ended(mq_exec_t *x, uint32_t slot, int st, mq_err_t *err)
{
	slot_t *s = &x->s[slot];
	drain(x, s, 1);
	drain(x, s, 2);
	emit(x, s, 1, 1);
	emit(x, s, 2, 1);
	epoll_ctl(x->ep, EPOLL_CTL_DEL, s->pidfd, NULL);
	epoll_ctl(x->ep, EPOLL_CTL_DEL, s->outfd, NULL);
	epoll_ctl(x->ep, EPOLL_CTL_DEL, s->errfd, NULL);
	close_fd(&s->pidfd);
	close_fd(&s->outfd);
	close_fd(&s->errfd);
	s->pid = 0;
	x->running--;
	s->attempt++;
	mq_exec_result_t r = {.slot = slot, .offset = s->head->rec.offset, .topic = s->head->topic,
			      .partition = s->head->partition, .attempts = s->attempt, .rec = &s->head->rec};
	r.ok = !s->timed_out && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (s->timed_out)
		snprintf(r.status, sizeof(r.status), "timeout after %" PRId64 " ms", x->o.timeout_ms);
	else if (WIFEXITED(st))
		snprintf(r.status, sizeof(r.status), "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(r.status, sizeof(r.status), "signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(r.status, sizeof(r.status), "status %d", st);
	snprintf(r.first_err, sizeof(r.first_err), "%s", s->first_err);
	if (!r.ok && s->attempt < x->o.max_attempts) {
		s->next_try = mq_mono_ms() + backoff(x, s->attempt);
		return 0;
	}
	int rc = x->done ? x->done(x->ctx, &r, err) : 0;
	if (rc < 0) {
		s->attempt--; /* unfinished: as it was */
		return rc;
	}
	pop(x, s);
	return 0;
}

static int reap(mq_exec_t *x, uint32_t slot, mq_err_t *err)
{
	slot_t *s = &x->s[slot];
	int st;
	pid_t r = waitpid(s->pid, &st, WNOHANG);
	if (r == 0)
		return 0;
	if (r < 0)
		st = 0x7f00; /* cannot tell: not a success */
	return ended(x, slot, st, err);
}

/* Timeouts due, and runs to start. */
static int timers_and_starts(mq_exec_t *x, mq_err_t *err)
{
	int64_t now = mq_mono_ms();
	for (uint32_t i = 0; i < x->ns; i++) {
		slot_t *s = &x->s[i];
		if (!s->pid)
			continue;
		if (s->kill_at && now >= s->kill_at) {
			kill(-s->pid, SIGKILL);
			s->kill_at = 0;
			s->term_at = 0;
		} else if (s->term_at && now >= s->term_at && !s->timed_out) {
			s->timed_out = 1;
			kill(-s->pid, SIGTERM);
			s->kill_at = now + KILL_GRACE_MS;
		}
	}
	if (x->no_start || !x->ns)
		return 0;
	for (uint32_t k = 0; k < x->ns && x->running < x->o.concurrency; k++) {
		uint32_t i = (x->rot + k) % x->ns;
		slot_t *s = &x->s[i];
		if (s->pid || !s->head || (s->next_try && now < s->next_try))
			continue;
		int rc = start(x, i, err);
		if (rc)
			return rc;
	}
	x->rot++;
	return 0;
}

int mq_exec_poll(mq_exec_t *x, int wait_ms, mq_err_t *err)
{
	int rc = timers_and_starts(x, err);
	if (rc)
		return rc;
	struct epoll_event ev[64];
	int n = epoll_wait(x->ep, ev, 64, wait_ms);
	for (int i = 0; i < n; i++) {
		uint32_t slot = (uint32_t)(ev[i].data.u64 >> 2), kind = (uint32_t)(ev[i].data.u64 & 3);
		if (slot >= x->ns || !x->s[slot].pid)
			continue;
		if (kind == 0)
			rc = reap(x, slot, err);
		else
			drain(x, &x->s[slot], (int)kind);
		if (rc)
			return rc;
	}
	return timers_and_starts(x, err);
}

void mq_exec_free(mq_exec_t *x)
{
	if (!x)
		return;
	for (uint32_t i = 0; i < x->ns; i++) {
		slot_t *s = &x->s[i];
		if (s->pid) {
			kill(-s->pid, SIGKILL);
			waitpid(s->pid, NULL, 0);
		}
		close_fd(&s->pidfd);
		close_fd(&s->outfd);
		close_fd(&s->errfd);
		mq_buf_free(&s->out);
		mq_buf_free(&s->err);
		while (s->head) {
			job_t *j = s->head;
			s->head = j->next;
			free(j);
		}
	}
	free(x->s);
	close(x->ep);
	free(x);
}
