/*
 * record.h -- records on standard input and output, shared by mq-pub,
 * mq-sub, mq-dedup and mq-bucket, so that every tool reads and writes
 * the same formats:
 *
 *   lines     one record per line; the newline is not part of it
 *   nul       one record per NUL-terminated chunk (-0)
 *   json      one JSON envelope per line (-f json)
 *   msgpack   a stream of msgpack envelopes (-f msgpack)
 *
 * An envelope is a map: topic, partition, offset, timestamp (ms since
 * the epoch), key, value, id, headers (map of strings).  In JSON a key,
 * value or id that is not valid UTF-8 is written as key_b64 / value_b64 /
 * id_b64 (base64) instead; readers accept either.  A header value that
 * is not valid UTF-8 goes into a second map, headers_b64, with its value
 * in base64 (header names are written as UTF-8, invalid bytes replaced
 * by U+FFFD).  In msgpack key, value, id and header values are bin
 * (readers also take str).  Writers put null (nil) for an absent key,
 * id, topic, partition or offset.  Readers ignore fields they do not
 * know and take null as absent.
 *
 * With lines or nul, a key delimiter (-K DELIM) splits each record at the
 * first DELIM into key and value; a record without DELIM is published
 * with no key and the whole record as its value (as kcat does).
 *
 * Output can also be a printf-like template (-F): %t topic, %p partition,
 * %o offset, %k key, %s value, %T timestamp (ms), %i id, %h headers
 * (name=value pairs joined by ','), %S value size, \n \t \r \0 \\ and
 * %%.  An absent key, id, topic, partition or offset prints nothing.
 *
 * Reading and writing are buffered in large blocks; the reader cuts
 * records with memchr and hands out views into its buffer, so there is
 * no allocation per record.
 */
#ifndef MQ_RECORD_H
#define MQ_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "util.h"

typedef enum mq_fmt {
	MQ_FMT_LINES = 0,
	MQ_FMT_NUL,
	MQ_FMT_JSON,
	MQ_FMT_MSGPACK,
	MQ_FMT_TEMPLATE, /* output only: -F FORMAT */
} mq_fmt_t;

/* "lines" (also "line", "text"), "nul", "json", "msgpack"; -MQ_EINVAL otherwise. */
int mq_fmt_parse(const char *s, mq_fmt_t *fmt, mq_err_t *err);

#define MQ_REC_MAX_HEADERS 64

/* One record as read from input.  Pointers are views into the reader's
 * buffer (or its decode scratch), valid until the next mq_reader_next
 * or mq_reader_fill.  key/id NULL = absent; value is never NULL.
 * Envelope fields that were not present: topic NULL, partition -1,
 * offset -1, timestamp 0.  raw and fmt let mq_writer_put_rec pass a
 * record through unchanged: a caller that changes any field of a record
 * it read must set raw to NULL. */
typedef struct mq_rec {
	const uint8_t *key;
	size_t key_len;
	const uint8_t *value;
	size_t value_len;
	const uint8_t *id;
	size_t id_len;
	mq_header_t headers[MQ_REC_MAX_HEADERS];
	uint32_t nheaders;
	const char *topic; /* NUL-terminated */
	int64_t partition;
	int64_t offset;
	int64_t timestamp;
	const uint8_t *raw; /* the record's bytes as they came, terminator included */
	size_t raw_len;
	mq_fmt_t fmt;       /* the format it was read in */
	/* Envelope "producer" and "seq" (a producer's own numbering, which
	 * mq-pub keeps as the mq.producer / mq.seq headers): has_seq when
	 * both were given; producer may be a number, then held as text in
	 * producer_num. */
	const uint8_t *producer;
	size_t producer_len;
	uint64_t seq;
	int has_seq;
	char producer_num[24];
} mq_rec_t;

typedef struct mq_reader mq_reader_t;

typedef struct mq_reader_opts {
	mq_fmt_t fmt;           /* LINES, NUL, JSON or MSGPACK */
	const char *key_delim;  /* lines/nul: split at the first occurrence; NULL = no key */
	/* lines: records end at this byte string instead of a newline
	 * (rec_delim_len bytes, any of them; NULL = newline). */
	const void *rec_delim;
	size_t rec_delim_len;
	size_t max_record;      /* longer records are an error (-MQ_ETOOBIG); 0 = 64 MiB */
	const char *name;       /* for messages; NULL = "standard input" (fd 0) or "fd N" */
} mq_reader_opts_t;

/* -MQ_EINVAL for an output-only format, an empty key_delim, or a
 * key_delim with json or msgpack (envelopes carry their key). */
int mq_reader_new(int fd, const mq_reader_opts_t *o, mq_reader_t **out, mq_err_t *err);
void mq_reader_free(mq_reader_t *r); /* NULL ok */

/* One read(2) from the fd into the buffer.  Returns bytes read (> 0), 0
 * at end of input, -MQ_EAGAIN when the read would block or was
 * interrupted by a signal (so callers can check their stop flag), other
 * negative codes on errors. */
long mq_reader_fill(mq_reader_t *r, mq_err_t *err);

/* Next complete record from what was read so far: 1 with rec filled, 0
 * when more input is needed (or, after end of input, when nothing is
 * left), < 0 on malformed input (message names the record number and
 * what is wrong; the reader skips that record, so the caller may go on).
 * After end of input a last line without its newline is a record.  A
 * record over max_record is -MQ_ETOOBIG and skipped up to its end.  In
 * json mode an empty line is an error too.  A msgpack stream has no
 * record boundary to resynchronise on: after a byte that is not msgpack
 * (0xc1) or nesting deeper than 256, the error is reported once and the
 * rest of the input is read and dropped. */
int mq_reader_next(mq_reader_t *r, mq_rec_t *rec, mq_err_t *err);

int mq_reader_eof(const mq_reader_t *r); /* end of input seen and nothing left */
/* 1 when the last mq_reader_fill took less than it had room for and less
 * than 4096 bytes: the input had no more just then, and its writer is
 * not one filling a pipe (that hands over whole pages).  A program
 * sending what it read as soon as its input is idle need not ask. */
int mq_reader_trickle(const mq_reader_t *r);
uint64_t mq_reader_count(const mq_reader_t *r); /* records returned so far */
/* Bytes of input taken so far: read, less what waits in the buffer (a
 * progress figure: how far into a file the records returned reach). */
uint64_t mq_reader_consumed(const mq_reader_t *r);

/* Convenience for blocking use: fill as needed and return the next
 * record: 1, 0 at the end of input, < 0 on error (-MQ_EAGAIN when a
 * signal interrupted the read, so the caller can check its stop flag;
 * a non-blocking fd is waited for with poll). */
int mq_reader_get(mq_reader_t *r, mq_rec_t *rec, mq_err_t *err);

typedef struct mq_writer mq_writer_t;

typedef struct mq_writer_opts {
	mq_fmt_t fmt;
	const char *template; /* for MQ_FMT_TEMPLATE */
	size_t buffer;        /* flush when this much is buffered; 0 = 256 KiB */
	const char *name;     /* for messages; NULL = "standard output" (fd 1) or "fd N" */
	/* Envelopes of batch records (mq_writer_put) carry "producer" and
	 * "seq" from the batch's producer id and sequence.  Records whose
	 * origin headers (mq.producer, mq.seq) came from an envelope carry
	 * them as those fields whatever this says. */
	int with_seq;
} mq_writer_opts_t;

/* -MQ_EINVAL for a bad template (unknown %-code or \-escape, or a lone
 * trailing % or \: the message names it and its position, from 1). */
int mq_writer_new(int fd, const mq_writer_opts_t *o, mq_writer_t **out, mq_err_t *err);
void mq_writer_free(mq_writer_t *w); /* does not flush; NULL ok */
/* When the output is a pipe that stays full, call fn(ctx) every every_ms
 * (and after a signal) while waiting for room; writes are then sized to
 * what the pipe takes without blocking.  A consumer can so keep its
 * group session alive behind a slow reader.  fn returns non-zero to give
 * up: the flush then fails with -MQ_EAGAIN, what was not written stays
 * unwritten (possibly from the middle of a record).  fn must not use
 * the writer. */
void mq_writer_on_wait(mq_writer_t *w, int every_ms, int (*fn)(void *ctx), void *ctx);
/* every_ms < 0 (fn may then be NULL): writes to a pipe are sized as
 * above, and the wait for room has no period (fn, if set, is called
 * after a signal only).  So a write(2) to a pipe never blocks, and a
 * kill -9 falls between writes, never inside one. */
/* fn(ctx, &upto, err) is called before each write(2): once it succeeds,
 * upto bytes (mq_writer_written) will have been handed to the fd.  fn
 * may lower upto (not to mq_writer_written or below) to write less this
 * time, e.g. to end at a record's end; a negative return fails the write
 * with that error (nothing written).  When the write then fails, fn is
 * called again with upto = what was handed over in fact (to be left
 * as is).  mq-dedup marks there which records are about to leave. */
void mq_writer_on_write(mq_writer_t *w, int (*fn)(void *ctx, uint64_t *upto, mq_err_t *err), void *ctx);

/* Format one message into the buffer (flushing when it is full). */
int mq_writer_put(mq_writer_t *w, const char *topic, uint32_t partition, const mq_record_t *rec, mq_err_t *err);
/* Format a record read by a reader (filters: key/value/id/headers and
 * envelope fields as read; lines/nul write value only).  When rec->raw
 * is set and rec->fmt equals the writer's format, the raw bytes are
 * written as they came (so -K lines and unknown envelope fields pass
 * through a filter intact), with the terminator added if the input's
 * last record lacked one. */
int mq_writer_put_rec(mq_writer_t *w, const mq_rec_t *rec, mq_err_t *err);
/* Write out everything buffered (retrying short writes; EPIPE is
 * -MQ_EIO with err->sys = EPIPE and a message saying the reader went
 * away; what was buffered is then dropped). */
int mq_writer_flush(mq_writer_t *w, mq_err_t *err);
size_t mq_writer_pending(const mq_writer_t *w); /* bytes buffered */
uint64_t mq_writer_written(const mq_writer_t *w); /* bytes handed to the fd so far */

/* base64 (RFC 4648, with padding). enc writes 4*ceil(n/3) bytes; dec
 * returns the decoded length or -1 on bad input. */
size_t mq_base64_enc(const uint8_t *in, size_t n, char *out);
long mq_base64_dec(const char *in, size_t n, uint8_t *out);

#endif
