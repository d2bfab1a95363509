/*
 * filter.h -- the loop shared by the pipe filters (mq-dedup, mq-bucket):
 * records in from a record.h reader, out through a writer, with output
 * flushed whenever the filter would otherwise wait for input, so that a
 * record let through reaches the next program without waiting for the
 * following one (interactive pipes, tail -f sources), while a fast
 * source still gets large writes.
 *
 * Before it flushes, the loop calls the filter's before_flush hook:
 * mq-dedup syncs its state file there, so what was written out is
 * always already on disk in the state file.  Filters that write on
 * their own (mq-bucket, before it sleeps) call mq_filter_flush, which
 * runs the hook too.
 *
 * Also here: cutting field N out of a record, awk-style or at a fixed
 * delimiter (mq-dedup --by field:N).
 */
#ifndef MQ_FILTER_H
#define MQ_FILTER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "util.h"

typedef struct mq_filter {
	mq_reader_t *r;
	mq_writer_t *w;
	int in_fd;
	size_t flush_at; /* mq_filter_put flushes first when a record would pass this much buffered */
	int (*before_flush)(void *ctx, mq_err_t *err);
	/* Called when the loop is about to wait for input, before it flushes:
	 * a filter that holds records back (mq-dedup's batch) puts them now. */
	int (*on_idle)(void *ctx, mq_err_t *err);
	void *ctx;
	int fatal;  /* set when an error is not about one record: stop */
	int epipe;  /* the reader of our output went away */
	uint64_t bad; /* malformed records skipped by mq_filter_run */
} mq_filter_t;

typedef struct mq_filter_opts {
	mq_fmt_t fmt;          /* the same for input and output */
	const char *key_delim; /* lines/nul: -K */
	int in_fd, out_fd;
	size_t flush_at;       /* 0 = 256 KiB */
} mq_filter_opts_t;

int mq_filter_open(mq_filter_t *f, const mq_filter_opts_t *o, mq_err_t *err);
void mq_filter_close(mq_filter_t *f); /* frees; does not flush */

/* The next record: 1 with rec filled, 0 at the end of input, < 0 on
 * error.  A malformed record is an error with f->fatal unset (report it
 * and go on); -MQ_EAGAIN means a signal interrupted the wait (check your
 * stop flag and call again); anything with f->fatal set ends the run. */
int mq_filter_next(mq_filter_t *f, mq_rec_t *rec, mq_err_t *err);
/* Writes rec through (its bytes as they came, for a format unchanged). */
int mq_filter_put(mq_filter_t *f, const mq_rec_t *rec, mq_err_t *err);
/* before_flush, then write out everything buffered.  A reader that went
 * away sets f->epipe (and returns -MQ_EIO). */
int mq_filter_flush(mq_filter_t *f, mq_err_t *err);

/* The whole loop: each record to each(); a malformed record to bad()
 * (to report it; the run goes on and f->bad counts it); at the end of
 * input, or once *stop is set, on_idle and a last flush.  0 when done
 * (also when the reader of our output went away: f->epipe), or the
 * error that ended the run. */
typedef int (*mq_filter_each_fn)(void *ctx, const mq_rec_t *rec, mq_err_t *err);
int mq_filter_run(mq_filter_t *f, mq_filter_each_fn each, void (*bad)(void *ctx, const mq_err_t *err),
		  const volatile sig_atomic_t *stop, mq_err_t *err);

/* Which part of a record identifies it (mq-dedup --by, mq-bucket -k). */
typedef struct mq_ident {
	enum { MQ_IDENT_LINE, MQ_IDENT_KEY, MQ_IDENT_ID, MQ_IDENT_FIELD } what;
	size_t field;      /* MQ_IDENT_FIELD: from 1 */
	const char *delim; /* MQ_IDENT_FIELD: NULL = blanks, as awk */
} mq_ident_t;

/* "line" (if allow_line), "key", "id" or "field:N"; -MQ_EINVAL with a
 * message naming opt otherwise. */
int mq_ident_parse(const char *opt, const char *s, int allow_line, mq_ident_t *id, mq_err_t *err);
/* The identity of rec (for line: the value, which for lines is the
 * record): 1 with *p, *n set, 0 when rec has none (no key, no id, too
 * few fields). */
int mq_ident_of(const mq_ident_t *id, const mq_rec_t *rec, const uint8_t **p, size_t *n);

/* Field n (from 1) of p[0, len): with delim NULL, fields are separated
 * by runs of blanks (space, tab) and leading blanks are skipped, as in
 * awk; else by each occurrence of the delim string, as in cut.  1 with
 * *fp, *fn set, 0 when the record has fewer than n fields. */
int mq_field(const uint8_t *p, size_t len, const char *delim, size_t n, const uint8_t **fp, size_t *fn);

#endif
