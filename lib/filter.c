/*
 * filter.c -- the reading and writing loop of the pipe filters; see
 * filter.h.  "Would wait for input" is asked with poll(2) and a zero
 * timeout before each read: a file or a busy pipe always has input
 * ready, so output goes out in large writes; a quiet pipe does not, so
 * what was let through goes out before the filter blocks.
 *
 * A pipe on standard output is asked to hold 1 MiB instead of Linux's
 * 64 KiB: each time the full pipe stops the filter, it and the reader
 * pay a sleep and a wake-up, and with 64 KiB that cost alone made a
 * filter that passes everything take up to twice as long as cat.  Only
 * a request: where it is refused (pipe-max-size, the user's pipe quota)
 * the pipe stays as it was.  The input pipe is left alone: how far a
 * producer can get ahead of a filter that waits (mq-bucket) is its size.
 */
#include "filter.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>

#define FLUSH_AT_DEFAULT ((size_t)256 << 10)
#define PIPE_SIZE (1 << 20)

static void grow_pipe(int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && fcntl(fd, F_GETPIPE_SZ) < PIPE_SIZE)
		(void)fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE);
}

int mq_filter_open(mq_filter_t *f, const mq_filter_opts_t *o, mq_err_t *err)
{
	memset(f, 0, sizeof *f);
	f->in_fd = o->in_fd;
	f->flush_at = o->flush_at ? o->flush_at : FLUSH_AT_DEFAULT;
	mq_reader_opts_t ro = {.fmt = o->fmt, .key_delim = o->key_delim};
	/* Twice flush_at, so that mq_filter_put decides every flush. */
	mq_writer_opts_t wo = {.fmt = o->fmt, .buffer = 2 * f->flush_at};
	int rc = mq_reader_new(o->in_fd, &ro, &f->r, err);
	grow_pipe(o->out_fd);
	if (rc == 0 && (rc = mq_writer_new(o->out_fd, &wo, &f->w, err)) < 0) {
		mq_reader_free(f->r);
		f->r = NULL;
	}
	return rc;
}

void mq_filter_close(mq_filter_t *f)
{
	mq_reader_free(f->r);
	mq_writer_free(f->w);
	f->r = NULL;
	f->w = NULL;
}

int mq_filter_flush(mq_filter_t *f, mq_err_t *err)
{
	int rc;
	if (f->epipe)
		return -MQ_EIO;
	if (f->before_flush && (rc = f->before_flush(f->ctx, err)) < 0) {
		f->fatal = 1;
		return rc;
	}
	if ((rc = mq_writer_flush(f->w, err)) < 0) {
		f->fatal = 1;
		if (err && err->sys == EPIPE)
			f->epipe = 1;
	}
	return rc;
}

static int input_ready(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) > 0;
}

int mq_filter_next(mq_filter_t *f, mq_rec_t *rec, mq_err_t *err)
{
	for (;;) {
		int rc = mq_reader_next(f->r, rec, err);
		if (rc != 0)
			return rc;
		if (mq_reader_eof(f->r))
			return 0;
		if (!input_ready(f->in_fd)) {
			if (f->on_idle && (rc = f->on_idle(f->ctx, err)) < 0)
				return rc;
			if (mq_writer_pending(f->w) && (rc = mq_filter_flush(f, err)) < 0)
				return rc;
		}
		long n = mq_reader_fill(f->r, err);
		if (n == -MQ_EAGAIN)
			return (int)n;
		if (n < 0) {
			f->fatal = 1;
			return (int)n;
		}
	}
}

int mq_filter_put(mq_filter_t *f, const mq_rec_t *rec, mq_err_t *err)
{
	/* What the writer will add: the record's bytes, or a generous
	 * guess for one it must format (the hook must run before any of it
	 * can reach the fd). */
	size_t size = rec->raw ? rec->raw_len + 1 : 2 * (rec->value_len + rec->key_len) + 1024;
	int rc;
	if (mq_writer_pending(f->w) + size > f->flush_at && (rc = mq_filter_flush(f, err)) < 0)
		return rc;
	if (size > f->flush_at && f->before_flush && (rc = f->before_flush(f->ctx, err)) < 0) {
		f->fatal = 1;
		return rc;
	}
	if ((rc = mq_writer_put_rec(f->w, rec, err)) < 0) {
		f->fatal = 1;
		if (err && err->sys == EPIPE)
			f->epipe = 1;
	}
	return rc;
}

int mq_filter_run(mq_filter_t *f, mq_filter_each_fn each, void (*bad)(void *ctx, const mq_err_t *err),
		  const volatile sig_atomic_t *stop, mq_err_t *err)
{
	mq_rec_t rec;
	int rc = 0;
	while (!*stop) {
		rc = mq_filter_next(f, &rec, err);
		if (rc == 0)
			break;
		if (rc == 1)
			rc = each(f->ctx, &rec, err);
		if (rc == -MQ_EAGAIN || rc >= 0)
			continue;
		if (f->fatal)
			break;
		f->bad++;
		if (bad)
			bad(f->ctx, err);
	}
	if ((rc >= 0 || rc == -MQ_EAGAIN) && f->on_idle)
		rc = f->on_idle(f->ctx, err);
	if (rc >= 0 || rc == -MQ_EAGAIN)
		rc = mq_filter_flush(f, err);
	return f->epipe ? 0 : rc < 0 ? rc : 0;
}

static int is_blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

int mq_field(const uint8_t *p, size_t len, const char *delim, size_t n, const uint8_t **fp, size_t *fn)
{
	const uint8_t *end = p + len;
	if (!delim) {
		for (size_t i = 1;; i++) {
			while (p < end && is_blank(*p))
				p++;
			if (p == end)
				return 0;
			const uint8_t *s = p;
			while (p < end && !is_blank(*p))
				p++;
			if (i == n) {
				*fp = s;
				*fn = (size_t)(p - s);
				return 1;
			}
		}
	}
	size_t dl = strlen(delim);
	for (size_t i = 1;; i++) {
		const uint8_t *d = dl == 1 ? memchr(p, delim[0], (size_t)(end - p))
					   : memmem(p, (size_t)(end - p), delim, dl);
		const uint8_t *e = d ? d : end;
		if (i == n) {
			*fp = p;
			*fn = (size_t)(e - p);
			return 1;
		}
		if (!d)
			return 0;
		p = d + dl;
	}
}

int mq_ident_parse(const char *opt, const char *s, int allow_line, mq_ident_t *id, mq_err_t *err)
{
	uint64_t n;
	if (allow_line && !strcmp(s, "line"))
		id->what = MQ_IDENT_LINE;
	else if (!strcmp(s, "key"))
		id->what = MQ_IDENT_KEY;
	else if (!strcmp(s, "id"))
		id->what = MQ_IDENT_ID;
	else if (!strncmp(s, "field:", 6) && mq_parse_u64(s + 6, &n, NULL) == 0 && n >= 1 && n <= 1000000)
		id->what = MQ_IDENT_FIELD, id->field = (size_t)n;
	else
		return mq_err_set(err, MQ_EINVAL, "%s '%.100s': use %skey, id or field:N (N from 1)", opt, s,
				  allow_line ? "line, " : "");
	return 0;
}

int mq_ident_of(const mq_ident_t *id, const mq_rec_t *rec, const uint8_t **p, size_t *n)
{
	switch (id->what) {
	case MQ_IDENT_KEY:
		*p = rec->key, *n = rec->key_len;
		return rec->key != NULL;
	case MQ_IDENT_ID:
		*p = rec->id, *n = rec->id_len;
		return rec->id != NULL;
	case MQ_IDENT_FIELD:
		return mq_field(rec->value, rec->value_len, id->delim, id->field, p, n);
	default:
		*p = rec->value, *n = rec->value_len;
		return 1;
	}
}
