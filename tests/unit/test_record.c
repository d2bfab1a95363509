/*
 * test_record.c -- unit tests for lib/record.c: every input format cut
 * from real file descriptors (temp files, pipes fed one byte per read,
 * a forked writer in small chunks), key delimiters, the record size
 * limit and recovery after it, the JSON parser's accepted forms and its
 * errors (each followed by a good line, to prove the reader goes on),
 * JSON and msgpack round trips of binary and Unicode data, templates,
 * pass-through of raw records, writer buffering, EPIPE and base64.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "batch.h"
#include "record.h"
#include "util.h"

/* ---- helpers ---- */

static void write_fully(int fd, const void *p, size_t n)
{
	assert_int_equal(mq_write_all(fd, p, n), 0);
}

/* A temp file (already unlinked) holding data, positioned at 0. */
static int tmp_fd(const void *data, size_t n)
{
	FILE *f = tmpfile();
	assert_non_null(f);
	int fd = dup(fileno(f));
	fclose(f);
	assert_true(fd >= 0);
	if (n)
		write_fully(fd, data, n);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* Everything in the file behind fd. */
static void slurp(int fd, mq_buf_t *b)
{
	b->len = 0;
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	for (;;) {
		assert_int_equal(mq_buf_reserve(b, 65536), 0);
		ssize_t n = read(fd, b->p + b->len, 65536);
		assert_true(n >= 0);
		if (n == 0)
			break;
		b->len += (size_t)n;
	}
}

/* A forked child writes data to a pipe in chunks of 1..max_chunk bytes
 * (cycling) and exits; returns the read end. */
static int spawn_writer(const void *data, size_t n, size_t max_chunk, pid_t *pid)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	*pid = fork();
	assert_true(*pid >= 0);
	if (*pid == 0) {
		close(p[0]);
		const uint8_t *s = data;
		size_t off = 0, c = 1;
		while (off < n) {
			size_t k = c < n - off ? c : n - off;
			if (mq_write_all(p[1], s + off, k) < 0)
				_exit(1);
			off += k;
			c = c % max_chunk + 1;
		}
		_exit(0);
	}
	close(p[1]);
	return p[0];
}

static void reap(pid_t pid)
{
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void app(mq_buf_t *b, const void *p, size_t n)
{
	assert_int_equal(mq_buf_append(b, p, n), 0);
}

static void appf(mq_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appf(mq_buf_t *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	app(b, tmp, (size_t)n);
}

static void app_bytes(mq_buf_t *b, char tag, const uint8_t *p, size_t n)
{
	if (!p) {
		appf(b, "%c- ", tag);
		return;
	}
	appf(b, "%c%zu:", tag, n);
	app(b, p, n);
	app(b, " ", 1);
}

/* A record as one comparable string (binary-safe). */
static void describe(mq_buf_t *b, const mq_rec_t *r)
{
	assert_non_null(r->value);
	app_bytes(b, 'K', r->key, r->key_len);
	app_bytes(b, 'V', r->value, r->value_len);
	app_bytes(b, 'I', r->id, r->id_len);
	appf(b, "T%s P%lld O%lld S%lld H%u ", r->topic ? r->topic : "-", (long long)r->partition,
	     (long long)r->offset, (long long)r->timestamp, r->nheaders);
	for (uint32_t i = 0; i < r->nheaders; i++) {
		app_bytes(b, 'n', r->headers[i].name, r->headers[i].name_len);
		app_bytes(b, 'v', r->headers[i].value, r->headers[i].value_len);
	}
	app(b, ";\n", 2);
}

/* Drain what the reader has: records described, errors as "E:msg". */
static void drain(mq_reader_t *r, mq_buf_t *out)
{
	mq_rec_t rec;
	mq_err_t err;
	int rc;
	while ((rc = mq_reader_next(r, &rec, &err)) != 0) {
		if (rc > 0)
			describe(out, &rec);
		else
			appf(out, "E:%s\n", err.msg);
	}
}

static mq_reader_t *reader(int fd, mq_fmt_t fmt, const char *delim, size_t max)
{
	mq_reader_t *r;
	mq_err_t err;
	mq_reader_opts_t o = {.fmt = fmt, .key_delim = delim, .max_record = max};
	int rc = mq_reader_new(fd, &o, &r, &err);
	if (rc < 0)
		fail_msg("mq_reader_new: %s", err.msg);
	return r;
}

/* Read everything from fd with mq_reader_get, errors included. */
static void read_all_fd(int fd, mq_fmt_t fmt, const char *delim, size_t max, mq_buf_t *out)
{
	mq_reader_t *r = reader(fd, fmt, delim, max);
	mq_rec_t rec;
	mq_err_t err;
	int rc;
	out->len = 0;
	(void)lseek(fd, 0, SEEK_SET); /* a file just written; fails harmlessly on a pipe */
	for (int guard = 0; guard < 10000000; guard++) {
		rc = mq_reader_get(r, &rec, &err);
		if (rc == 0)
			break;
		if (rc > 0)
			describe(out, &rec);
		else
			appf(out, "E:%s\n", err.msg);
	}
	assert_true(mq_reader_eof(r));
	mq_reader_free(r);
}

static void read_all(const void *data, size_t n, mq_fmt_t fmt, const char *delim, size_t max,
		     mq_buf_t *out)
{
	int fd = tmp_fd(data, n);
	read_all_fd(fd, fmt, delim, max, out);
	close(fd);
}

/* Feed a pipe one byte at a time, filling after each: every fill reads
 * exactly one byte, so every record is split across reads. */
static void read_bytewise(const void *data, size_t n, mq_fmt_t fmt, const char *delim, mq_buf_t *out)
{
	int p[2];
	mq_err_t err;
	assert_int_equal(pipe(p), 0);
	mq_reader_t *r = reader(p[0], fmt, delim, 0);
	const uint8_t *s = data;
	out->len = 0;
	for (size_t i = 0; i < n; i++) {
		write_fully(p[1], s + i, 1);
		assert_int_equal(mq_reader_fill(r, &err), 1);
		drain(r, out);
	}
	close(p[1]);
	assert_int_equal(mq_reader_fill(r, &err), 0);
	drain(r, out);
	assert_true(mq_reader_eof(r));
	close(p[0]);
	mq_reader_free(r);
}

static void assert_buf_eq(const mq_buf_t *b, const char *want, size_t want_len)
{
	if (b->len == want_len && memcmp(b->p, want, want_len) == 0)
		return;
	/* cmocka cuts long messages: the whole of both goes to stderr. */
	fprintf(stderr, "got (%zu bytes):\n", b->len);
	fwrite(b->p, 1, b->len, stderr);
	fprintf(stderr, "\nwant (%zu bytes):\n", want_len);
	fwrite(want, 1, want_len, stderr);
	fprintf(stderr, "\n");
	fail_msg("output differs (see above)");
}
#define ASSERT_BUF(b, lit) assert_buf_eq((b), (lit), sizeof(lit) - 1)

static void assert_contains(const mq_buf_t *b, const char *want)
{
	if (memmem(b->p, b->len, want, strlen(want)))
		return;
	fprintf(stderr, "got (%zu bytes):\n", b->len);
	fwrite(b->p, 1, b->len, stderr);
	fail_msg("no '%s' in the output above", want);
}

static mq_writer_t *writer(int fd, mq_fmt_t fmt, const char *tpl, size_t buffer)
{
	mq_writer_t *w;
	mq_err_t err;
	mq_writer_opts_t o = {.fmt = fmt, .template = tpl, .buffer = buffer};
	if (mq_writer_new(fd, &o, &w, &err) < 0)
		fail_msg("mq_writer_new: %s", err.msg);
	return w;
}

static void put_rec(mq_writer_t *w, const mq_rec_t *rec)
{
	mq_err_t err;
	if (mq_writer_put_rec(w, rec, &err) < 0)
		fail_msg("put_rec: %s", err.msg);
}

static void flush(mq_writer_t *w)
{
	mq_err_t err;
	if (mq_writer_flush(w, &err) < 0)
		fail_msg("flush: %s", err.msg);
}

static void rec_init(mq_rec_t *r)
{
	memset(r, 0, sizeof *r);
	r->value = (const uint8_t *)"";
	r->partition = r->offset = -1;
}

#define B(s) (const uint8_t *)(s), sizeof(s) - 1

/* ---- formats ---- */

static void test_fmt_parse(void **state)
{
	(void)state;
	mq_fmt_t f;
	mq_err_t err;
	assert_int_equal(mq_fmt_parse("lines", &f, &err), 0);
	assert_int_equal(f, MQ_FMT_LINES);
	assert_int_equal(mq_fmt_parse("text", &f, &err), 0);
	assert_int_equal(f, MQ_FMT_LINES);
	assert_int_equal(mq_fmt_parse("line", &f, &err), 0);
	assert_int_equal(mq_fmt_parse("nul", &f, &err), 0);
	assert_int_equal(f, MQ_FMT_NUL);
	assert_int_equal(mq_fmt_parse("json", &f, &err), 0);
	assert_int_equal(f, MQ_FMT_JSON);
	assert_int_equal(mq_fmt_parse("msgpack", &f, &err), 0);
	assert_int_equal(f, MQ_FMT_MSGPACK);
	assert_int_equal(mq_fmt_parse("xml", &f, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "'xml'"));
	assert_non_null(strstr(err.msg, "msgpack"));
}

/* How far into the input the records returned reach, whatever the
 * reader has buffered beyond them. */
static void test_reader_consumed(void **state)
{
	(void)state;
	static const char text[] = "a\nbb\nccc\n";
	int fd = tmp_fd(text, sizeof text - 1);
	(void)lseek(fd, 0, SEEK_SET);
	mq_reader_t *r = reader(fd, MQ_FMT_LINES, NULL, 1 << 20);
	mq_rec_t rec;
	mq_err_t err;
	assert_int_equal(mq_reader_consumed(r), 0);
	static const uint64_t want[] = {2, 5, 9};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(mq_reader_get(r, &rec, &err), 1);
		assert_int_equal(mq_reader_consumed(r), want[i]);
	}
	assert_int_equal(mq_reader_get(r, &rec, &err), 0);
	assert_int_equal(mq_reader_consumed(r), 9);
	mq_reader_free(r);
	close(fd);
}

/* A read that took less than it had room for and under 4096 bytes says
 * the input trickles (mq-pub then sends without asking stdin again); a
 * writer filling the pipe, or a read that filled the room, does not. */
static void test_reader_trickle(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	mq_reader_t *r = reader(p[0], MQ_FMT_LINES, NULL, 1 << 20);
	mq_err_t err;
	assert_int_equal(mq_reader_trickle(r), 0); /* nothing read yet */
	assert_int_equal(write(p[1], "one line\n", 9), 9);
	assert_int_equal(mq_reader_fill(r, &err), 9);
	assert_int_equal(mq_reader_trickle(r), 1);
	static char page[8192];
	memset(page, 'x', sizeof page);
	page[sizeof page - 1] = '\n';
	assert_int_equal(write(p[1], page, sizeof page), (ssize_t)sizeof page);
	assert_int_equal(mq_reader_fill(r, &err), (long)sizeof page);
	assert_int_equal(mq_reader_trickle(r), 0);
	close(p[1]);
	mq_rec_t rec;
	while (mq_reader_next(r, &rec, &err) > 0)
		;
	assert_int_equal(mq_reader_fill(r, &err), 0); /* the end: nothing read */
	assert_int_equal(mq_reader_trickle(r), 0);
	mq_reader_free(r);
	close(p[0]);
}

static void test_reader_rejects(void **state)
{
	(void)state;
	mq_reader_t *r;
	mq_err_t err;
	mq_reader_opts_t o = {.fmt = MQ_FMT_TEMPLATE};
	assert_int_equal(mq_reader_new(0, &o, &r, &err), -MQ_EINVAL);
	assert_null(r);
	o = (mq_reader_opts_t){.fmt = MQ_FMT_LINES, .key_delim = ""};
	assert_int_equal(mq_reader_new(0, &o, &r, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "empty"));
	o = (mq_reader_opts_t){.fmt = MQ_FMT_JSON, .key_delim = ":"};
	assert_int_equal(mq_reader_new(0, &o, &r, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "lines and nul"));
	mq_reader_free(NULL);
	mq_writer_free(NULL);
}

/* ---- lines and nul ---- */

static void test_lines_basic(void **state)
{
	(void)state;
	mq_buf_t out = {0};
	static const char in[] = "a\n\nb\r\n\r\nlast";
	read_all(in, sizeof in - 1, MQ_FMT_LINES, NULL, 0, &out);
	ASSERT_BUF(&out, "K- V1:a I- T- P-1 O-1 S0 H0 ;\n"
			 "K- V0: I- T- P-1 O-1 S0 H0 ;\n"
			 "K- V2:b\r I- T- P-1 O-1 S0 H0 ;\n"
			 "K- V1:\r I- T- P-1 O-1 S0 H0 ;\n"
			 "K- V4:last I- T- P-1 O-1 S0 H0 ;\n");

	/* raw includes the terminator; the last line's raw has none. */
	int fd = tmp_fd(in, sizeof in - 1);
	mq_reader_t *r = reader(fd, MQ_FMT_LINES, NULL, 0);
	mq_rec_t rec;
	mq_err_t err;
	assert_int_equal(mq_reader_get(r, &rec, &err), 1);
	assert_int_equal(rec.raw_len, 2);
	assert_memory_equal(rec.raw, "a\n", 2);
	assert_int_equal(rec.fmt, MQ_FMT_LINES);
	for (int i = 0; i < 3; i++)
		assert_int_equal(mq_reader_get(r, &rec, &err), 1);
	assert_false(mq_reader_eof(r));
	assert_int_equal(mq_reader_get(r, &rec, &err), 1);
	assert_int_equal(rec.raw_len, 4);
	assert_int_equal(mq_reader_get(r, &rec, &err), 0);
	assert_int_equal(mq_reader_get(r, &rec, &err), 0);
	assert_true(mq_reader_eof(r));
	assert_int_equal(mq_reader_count(r), 5);
	mq_reader_free(r);
	close(fd);

	/* Empty input: no record; a lone newline: one empty record. */
	read_all("", 0, MQ_FMT_LINES, NULL, 0, &out);
	assert_int_equal(out.len, 0);
	read_all("\n", 1, MQ_FMT_LINES, NULL, 0, &out);
	ASSERT_BUF(&out, "K- V0: I- T- P-1 O-1 S0 H0 ;\n");
	mq_buf_free(&out);
}

static void test_lines_long(void **state)
{
	(void)state;
	/* 3 MiB and 1 MiB + 1 lines between short ones, through a pipe. */
	size_t big = 3u << 20, mid = (1u << 20) + 1;
	size_t n = 2 + big + 1 + mid + 1 + 2;
	uint8_t *in = malloc(n), *p = in;
	*p++ = 'x';
	*p++ = '\n';
	for (size_t i = 0; i < big; i++)
		*p++ = (uint8_t)('a' + i % 26);
	*p++ = '\n';
	memset(p, 'm', mid);
	p += mid;
	*p++ = '\n';
	*p++ = 'y';
	*p++ = '\n';
	pid_t pid;
	int fd = spawn_writer(in, n, 70000, &pid);
	mq_reader_t *r = reader(fd, MQ_FMT_LINES, NULL, 0);
	mq_rec_t rec;
	mq_err_t err;
	assert_int_equal(mq_reader_get(r, &rec, &err), 1);
	assert_int_equal(rec.value_len, 1);
	assert_int_equal(mq_reader_get(r, &rec, &err), 1);
	assert_int_equal(rec.value_len, big);
	assert_memory_equal(rec.value, in + 2, big);
	assert_int_equal(mq_reader_get(r, &rec, &err), 1);
	assert_int_equal(rec.value_len, mid);
	assert_memory_equal(rec.value, in + 3 + big, mid);
	assert_int_equal(mq_reader_get(r, &rec, &err), 1);
	assert_int_equal(rec.value_len, 1);
	assert_int_equal(rec.value[0], 'y');
	assert_int_equal(mq_reader_get(r, &rec, &err), 0);
	mq_reader_free(r);
	close(fd);
	reap(pid);
	free(in);
}

static void test_max_record(void **state)
{
	(void)state;
	mq_buf_t out = {0};
	/* Exactly the limit passes; one more is skipped, up to its newline. */
	static const char in[] = "0123456789\n01234567890\nok\n0123456789abcdef";
	read_all(in, sizeof in - 1, MQ_FMT_LINES, NULL, 10, &out);
	ASSERT_BUF(&out, "K- V10:0123456789 I- T- P-1 O-1 S0 H0 ;\n"
			 "E:record 2: longer than the limit of 10 bytes; skipped\n"
			 "K- V2:ok I- T- P-1 O-1 S0 H0 ;\n"
			 "E:record 4: longer than the limit of 10 bytes; skipped\n");

	/* A 3 MiB line over a 1 MiB limit, arriving through a pipe: the error
	 * comes before the line ends, the rest of it is skipped, and the
	 * next line is whole.  The buffer never needs more than the limit. */
	size_t lim = 1u << 20, big = 3u << 20;
	size_t n = big + 1 + 5;
	uint8_t *data = malloc(n);
	memset(data, 'z', big);
	memcpy(data + big, "\nnext\n", 6);
	pid_t pid;
	int fd = spawn_writer(data, n, 65536, &pid);
	read_all_fd(fd, MQ_FMT_LINES, NULL, lim, &out);
	ASSERT_BUF(&out, "E:record 1: longer than the limit of 1048576 bytes; skipped\n"
			 "K- V4:next I- T- P-1 O-1 S0 H0 ;\n");
	close(fd);
	reap(pid);

	/* The same in json mode, where the skipped line is not parsed. */
	memcpy(data + big, "\n{}   \n", 6);
	fd = spawn_writer(data, n, 65536, &pid);
	read_all_fd(fd, MQ_FMT_JSON, NULL, lim, &out);
	ASSERT_BUF(&out, "E:record 1: longer than the limit of 1048576 bytes; skipped\n"
			 "K- V0: I- T- P-1 O-1 S0 H0 ;\n");
	close(fd);
	reap(pid);
	free(data);
	mq_buf_free(&out);
}

static void test_nul(void **state)
{
	(void)state;
	mq_buf_t out = {0};
	static const char in[] = "a\nb\0c\r\n\0\0last\n";
	read_all(in, sizeof in - 1, MQ_FMT_NUL, NULL, 0, &out);
	ASSERT_BUF(&out, "K- V3:a\nb I- T- P-1 O-1 S0 H0 ;\n"
			 "K- V3:c\r\n I- T- P-1 O-1 S0 H0 ;\n"
			 "K- V0: I- T- P-1 O-1 S0 H0 ;\n"
			 "K- V5:last\n I- T- P-1 O-1 S0 H0 ;\n");
	/* With a key delimiter. */
	static const char kin[] = "k=v\0novalue\0";
	read_all(kin, sizeof kin - 1, MQ_FMT_NUL, "=", 0, &out);
	ASSERT_BUF(&out, "K1:k V1:v I- T- P-1 O-1 S0 H0 ;\n"
			 "K- V7:novalue I- T- P-1 O-1 S0 H0 ;\n");
	mq_buf_free(&out);
}

static void test_key_delim(void **state)
{
	(void)state;
	mq_buf_t out = {0};
	static const char in[] = "k1:v1\nnodelim\n:v\nk:\nk:a:b\n";
	read_all(in, sizeof in - 1, MQ_FMT_LINES, ":", 0, &out);
	ASSERT_BUF(&out, "K2:k1 V2:v1 I- T- P-1 O-1 S0 H0 ;\n"
			 "K- V7:nodelim I- T- P-1 O-1 S0 H0 ;\n"
			 "K0: V1:v I- T- P-1 O-1 S0 H0 ;\n"
			 "K1:k V0: I- T- P-1 O-1 S0 H0 ;\n"
			 "K1:k V3:a:b I- T- P-1 O-1 S0 H0 ;\n");

	/* Multi-byte: the first whole occurrence counts, a prefix does not. */
	static const char m[] = "a=b=>c\n=>x\nno=delim\na=>\nx=>y=>z";
	read_all(m, sizeof m - 1, MQ_FMT_LINES, "=>", 0, &out);
	ASSERT_BUF(&out, "K3:a=b V1:c I- T- P-1 O-1 S0 H0 ;\n"
			 "K0: V1:x I- T- P-1 O-1 S0 H0 ;\n"
			 "K- V8:no=delim I- T- P-1 O-1 S0 H0 ;\n"
			 "K1:a V0: I- T- P-1 O-1 S0 H0 ;\n"
			 "K1:x V4:y=>z I- T- P-1 O-1 S0 H0 ;\n");
	/* A delimiter across a line break does not join lines. */
	static const char x[] = "a:\n:b\n";
	read_all(x, sizeof x - 1, MQ_FMT_LINES, ":\n:", 0, &out);
	ASSERT_BUF(&out, "K- V2:a: I- T- P-1 O-1 S0 H0 ;\n"
			 "K- V2::b I- T- P-1 O-1 S0 H0 ;\n");
	mq_buf_free(&out);
}

/* Each format read one byte per read(2) gives the same records as read
 * at once. */
static void check_bytewise(const void *in, size_t n, mq_fmt_t fmt, const char *delim)
{
	mq_buf_t a = {0}, b = {0};
	read_all(in, n, fmt, delim, 0, &a);
	read_bytewise(in, n, fmt, delim, &b);
	assert_true(a.len > 0);
	assert_buf_eq(&b, (const char *)a.p, a.len);
	mq_buf_free(&a);
	mq_buf_free(&b);
}

static void make_msgpack_sample(mq_buf_t *out);

static void test_split_reads(void **state)
{
	(void)state;
	static const char lines[] = "key::value\nsecond\n\nk::v::w\r\nlast::";
	check_bytewise(lines, sizeof lines - 1, MQ_FMT_LINES, "::");
	static const char nul[] = "one\0two\nlines\0\0x";
	check_bytewise(nul, sizeof nul - 1, MQ_FMT_NUL, NULL);
	static const char json[] =
		"{\"topic\":\"t\",\"partition\":1,\"offset\":22,\"timestamp\":1700000000000,"
		"\"key\":\"\\u00e9\\ud83d\\ude00\",\"value_b64\":\"AP8=\",\"id\":null,"
		"\"headers\":{\"a\":\"b\"},\"x\":[1,{\"y\":2}]}\n"
		"{\"value\":\"second\"}\n"
		"{bad}\n"
		"{\"value\":\"after\"}";
	check_bytewise(json, sizeof json - 1, MQ_FMT_JSON, NULL);
	mq_buf_t mp = {0};
	make_msgpack_sample(&mp);
	check_bytewise(mp.p, mp.len, MQ_FMT_MSGPACK, NULL);
	mq_buf_free(&mp);
}

/* Many records from a forked writer in chunks of 1..13 bytes. */
static void test_forked_small_writes(void **state)
{
	(void)state;
	mq_buf_t in = {0}, want = {0}, got = {0};
	for (int i = 0; i < 20000; i++) {
		appf(&in, "k%d=value %d %s\n", i, i * 7, i % 3 ? "" : "with = sign");
		appf(&want, "k%d|value %d %s\n", i, i * 7, i % 3 ? "" : "with = sign");
	}
	pid_t pid;
	int fd = spawn_writer(in.p, in.len, 13, &pid);
	mq_reader_t *r = reader(fd, MQ_FMT_LINES, "=", 0);
	mq_rec_t rec;
	mq_err_t err;
	int rc;
	while ((rc = mq_reader_get(r, &rec, &err)) > 0) {
		app(&got, rec.key, rec.key_len);
		app(&got, "|", 1);
		app(&got, rec.value, rec.value_len);
		app(&got, "\n", 1);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(mq_reader_count(r), 20000);
	assert_buf_eq(&got, (const char *)want.p, want.len);
	mq_reader_free(r);
	close(fd);
	reap(pid);
	mq_buf_free(&in);
	mq_buf_free(&want);
	mq_buf_free(&got);
}

static void test_nonblocking(void **state)
{
	(void)state;
	int p[2];
	mq_err_t err;
	mq_rec_t rec;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	mq_reader_t *r = reader(p[0], MQ_FMT_LINES, NULL, 0);
	assert_int_equal(mq_reader_fill(r, &err), -MQ_EAGAIN);
	assert_int_equal(mq_reader_next(r, &rec, &err), 0);
	write_fully(p[1], "a\nb", 3);
	assert_int_equal(mq_reader_fill(r, &err), 3);
	assert_int_equal(mq_reader_next(r, &rec, &err), 1);
	assert_int_equal(mq_reader_next(r, &rec, &err), 0); /* "b" waits for more */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		usleep(50000);
		_exit(mq_write_all(p[1], "c\n", 2) == 0 ? 0 : 1);
	}
	close(p[1]);
	/* get polls the non-blocking fd instead of spinning or failing. */
	assert_int_equal(mq_reader_get(r, &rec, &err), 1);
	assert_int_equal(rec.value_len, 2);
	assert_memory_equal(rec.value, "bc", 2);
	assert_int_equal(mq_reader_get(r, &rec, &err), 0);
	reap(pid);
	mq_reader_free(r);
	close(p[0]);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* A signal during a blocking read: get returns -MQ_EAGAIN so that the
 * caller can look at its stop flag; read errors name the input. */
static void test_read_interrupted_and_errors(void **state)
{
	(void)state;
	int p[2];
	mq_err_t err;
	mq_rec_t rec;
	assert_int_equal(pipe(p), 0);
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm; /* no SA_RESTART */
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	mq_reader_t *r = reader(p[0], MQ_FMT_LINES, NULL, 0);
	struct itimerval it = {.it_value = {.tv_usec = 50000}};
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	assert_int_equal(mq_reader_get(r, &rec, &err), -MQ_EAGAIN);
	assert_int_equal(err.code, MQ_EAGAIN);
	write_fully(p[1], "x\n", 2);
	assert_int_equal(mq_reader_get(r, &rec, &err), 1);
	assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
	mq_reader_free(r);
	close(p[0]);
	close(p[1]);

	int dfd = open("/", O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	mq_reader_opts_t o = {.fmt = MQ_FMT_LINES, .name = "the root"};
	assert_int_equal(mq_reader_new(dfd, &o, &r, &err), 0);
	assert_int_equal(mq_reader_get(r, &rec, &err), -MQ_EIO);
	assert_int_equal(err.sys, EISDIR);
	assert_string_equal(err.msg, "reading the root: Is a directory");
	mq_reader_free(r);
	close(dfd);
}

/* ---- JSON ---- */

static void test_json_parse(void **state)
{
	(void)state;
	mq_buf_t out = {0};
	static const char in[] =
		/* every escape, surrogate pair, NUL */
		"{\"value\":\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20AC\\ud83d\\ude00\\u0000.\"}\n"
		/* whitespace everywhere, unknown nested fields, nulls */
		" \t{ \"x\" : { \"a\" : [ 1 , -2.5e+3 , { \"b\" : null } , [ ] , true , false ] } ,"
		" \"topic\" : \"top\\u0069c\" , \"partition\" : 7 , \"offset\" : 0 ,"
		" \"timestamp\" : 1700000000000 , \"key\" : null , \"id\" : \"i\" ,"
		" \"headers\" : { \"h\\u00e9\" : \"v\" , \"e\" : \"\" } , \"y\" : \"\\u0041\" } \r\n"
		/* base64 forms, headers_b64, null numbers and topic */
		"{\"key_b64\":\"/wA=\",\"value_b64\":\"\",\"id_b64\":\"aWQ=\",\"headers_b64\":{\"b\":\"AQI=\"},"
		"\"partition\":null,\"offset\":-5,\"timestamp\":null,\"topic\":null}\n"
		/* empty object; a value that is null is an empty value */
		"{}\n{\"value\":null,\"headers\":null,\"headers_b64\":{}}\n"
		/* extremes of int64 */
		"{\"offset\":9223372036854775807,\"timestamp\":-9223372036854775808}";
	read_all(in, sizeof in - 1, MQ_FMT_JSON, NULL, 0, &out);
	static const char want[] =
		"K- V23:q\"b\\s/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0. I- T- P-1 O-1 S0 H0 ;\n"
		"K- V0: I1:i Ttopic P7 O0 S1700000000000 H2 n3:h\xc3\xa9 v1:v n1:e v0: ;\n"
		"K2:\xff\0 V0: I2:id T- P-1 O-5 S0 H1 n1:b v2:\x01\x02 ;\n"
		"K- V0: I- T- P-1 O-1 S0 H0 ;\n"
		"K- V0: I- T- P-1 O-1 S0 H0 ;\n"
		"K- V0: I- T- P-1 O9223372036854775807 S-9223372036854775808 H0 ;\n";
	ASSERT_BUF(&out, want);
	mq_buf_free(&out);
}

static void test_json_errors(void **state)
{
	(void)state;
	mq_buf_t out = {0}, in = {0};
	static const char *bad[] = {
		"{\"value\":\"x\"",
		"\"value\":\"x\"}",
		"{\"value\" \"x\"}",
		"{\"value\":\"a\\qb\"}",
		"{\"value_b64\":\"@@@@\"}",
		"{\"value_b64\":\"YQ\"}",
		"{\"key_b64\":\"YQ=a\"}",
		"{\"partition\":1.5}",
		"{\"partition\":\"1\"}",
		"{\"timestamp\":1e3}",
		"{\"offset\":99999999999999999999}",
		"{\"offset\":012}",
		"",
		"   ",
		"{\"value\":\"x\"} junk",
		"{\"value\":\"\\ud800\"}",
		"{\"value\":\"\\udc00\"}",
		"{\"value\":\"\\u12\"}",
		"{\"value\":\"a\tb\"}",
		"{\"a\":1,}",
		"{\"a\":tru}",
		"{\"a\":-}",
		"{\"a\":1.}",
		"{\"key\":5}",
		"{\"topic\":\"a\\u0000b\"}",
		"{\"headers\":{\"a\":1}}",
		"{\"headers\":[]}",
		"[]",
		"{\"value\":\"unterminated",
		NULL, /* nesting, built below */
	};
	size_t nbad = sizeof bad / sizeof bad[0];
	for (size_t i = 0; i < nbad; i++) {
		if (bad[i]) {
			appf(&in, "%s\n", bad[i]);
		} else {
			app(&in, "{\"deep\":", 8);
			for (int d = 0; d < 100; d++)
				app(&in, "[", 1);
			app(&in, "}\n", 2);
		}
		appf(&in, "{\"value\":\"ok%zu\"}\n", i);
	}
	read_all(in.p, in.len, MQ_FMT_JSON, NULL, 0, &out);
	/* One error then one good record per case: the reader goes on. */
	static const char *want[] = {
		"record 1: invalid JSON envelope: expected ',' or '}' at the end of the line",
		"record 3: invalid JSON envelope: expected '{' at byte 1",
		"record 5: invalid JSON envelope: expected ':' at byte 10",
		"record 7: invalid JSON envelope: invalid escape '\\q' in a string at byte 12",
		"record 9: invalid JSON envelope: value_b64: invalid base64 at byte 14",
		"record 11: invalid JSON envelope: value_b64: invalid base64 at byte 14",
		"record 13: invalid JSON envelope: key_b64: invalid base64 at byte 12",
		"record 15: invalid JSON envelope: partition: expected an integer, not a fraction or exponent at byte 14",
		"record 17: invalid JSON envelope: partition: expected an integer at byte 14",
		"record 19: invalid JSON envelope: timestamp: expected an integer, not a fraction or exponent at byte 14",
		"record 21: invalid JSON envelope: offset: integer out of range at byte 11",
		"record 23: invalid JSON envelope: offset: leading zero in a number at byte 11",
		"record 25: empty line where a JSON envelope was expected",
		"record 27: empty line where a JSON envelope was expected",
		"record 29: invalid JSON envelope: unexpected data after the envelope at byte 15",
		"record 31: invalid JSON envelope: invalid \\u escape (high surrogate without a low one) at byte 11",
		"record 33: invalid JSON envelope: invalid \\u escape (low surrogate without a high one) at byte 11",
		"record 35: invalid JSON envelope: invalid \\u escape (want four hex digits) at byte 11",
		"record 37: invalid JSON envelope: control character 0x09 in a string (escape it) at byte 12",
		"record 39: invalid JSON envelope: expected a field name in double quotes at byte 8",
		"record 41: invalid JSON envelope: expected a value at byte 6",
		"record 43: invalid JSON envelope: expected a value at byte 6",
		"record 45: invalid JSON envelope: expected a digit after '.' at byte 8",
		"record 47: invalid JSON envelope: key: expected a string at byte 8",
		"record 49: invalid JSON envelope: topic: contains a NUL character at byte 10",
		"record 51: invalid JSON envelope: headers: value of 'a' must be a string or an array of strings at byte 17",
		"record 53: invalid JSON envelope: headers: expected an object of strings at byte 12",
		"record 55: invalid JSON envelope: expected '{' at byte 1",
		"record 57: invalid JSON envelope: unterminated string at byte 10",
		"record 59: invalid JSON envelope: nested more than 64 deep at byte 72",
	};
	assert_int_equal(sizeof want / sizeof want[0], nbad);
	mq_buf_t exp = {0};
	for (size_t i = 0; i < nbad; i++) {
		appf(&exp, "E:%s\n", want[i]);
		appf(&exp, "K- V%d:ok%zu I- T- P-1 O-1 S0 H0 ;\n", i < 10 ? 3 : 4, i);
	}
	assert_buf_eq(&out, (const char *)exp.p, exp.len);

	/* A reader counts only the good ones. */
	int fd = tmp_fd(in.p, in.len);
	mq_reader_t *r = reader(fd, MQ_FMT_JSON, NULL, 0);
	mq_rec_t rec;
	mq_err_t err;
	int rc;
	while ((rc = mq_reader_get(r, &rec, &err)) != 0)
		if (rc < 0)
			assert_int_equal(err.code, MQ_EINVAL);
	assert_int_equal(mq_reader_count(r), nbad);
	mq_reader_free(r);
	close(fd);
	mq_buf_free(&in);
	mq_buf_free(&out);
	mq_buf_free(&exp);
}

/* Records that exercise every path of the envelope writers. */
static void sample_recs(mq_rec_t *r, size_t *n)
{
	static const mq_header_t h0[] = {
		{B("h1"), B("v1")},
		{B("bin"), B("\xfe\xff")},
		{B("\xc3\xa9"), B("\xc3\xbc")},
	};
	static const mq_header_t h3[] = {{B("e"), B("")}};
	for (int i = 0; i < 6; i++)
		rec_init(&r[i]);
	r[0].topic = "orders";
	r[0].partition = 2;
	r[0].offset = 77;
	r[0].timestamp = 1700000000123;
	r[0].key = (const uint8_t *)"\xff\0k";
	r[0].key_len = 3;
	r[0].value = (const uint8_t *)"\x80\x81";
	r[0].value_len = 2;
	memcpy(r[0].headers, h0, sizeof h0);
	r[0].nheaders = 3;
	static const char v1[] = "h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80 \"q\" \\ \x01 \n \t / \x7f \x1f";
	r[1].value = (const uint8_t *)v1;
	r[1].value_len = sizeof v1 - 1;
	r[1].id = (const uint8_t *)"id-1";
	r[1].id_len = 4;
	r[2].key = (const uint8_t *)"";
	r[2].id = (const uint8_t *)"\xc0\x80"; /* overlong NUL: not UTF-8 */
	r[2].id_len = 2;
	r[2].value = (const uint8_t *)"\xed\xa0\x80"; /* a surrogate in UTF-8: not valid */
	r[2].value_len = 3;
	r[2].partition = 0;
	r[2].offset = 0;
	memcpy(r[3].headers, h3, sizeof h3);
	r[3].nheaders = 1;
	r[3].value = (const uint8_t *)"a\0b";
	r[3].value_len = 3;
	r[3].timestamp = -1;
	/* A large value with every byte: base64 across several chunks. */
	static uint8_t big[10000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7);
	r[4].value = big;
	r[4].value_len = sizeof big;
	/* A large text value with escapes across JSON_CHUNK boundaries. */
	static uint8_t text[9001];
	for (size_t i = 0; i < sizeof text; i++)
		text[i] = i % 5 == 0 ? '\n' : i % 7 == 0 ? '"' : 'a' + i % 26;
	r[5].value = text;
	r[5].value_len = sizeof text;
	r[5].key = (const uint8_t *)"k";
	r[5].key_len = 1;
	*n = 6;
}

static void test_json_roundtrip(void **state)
{
	(void)state;
	mq_rec_t recs[6];
	size_t n;
	sample_recs(recs, &n);
	int fd = tmp_fd(NULL, 0);
	mq_writer_t *w = writer(fd, MQ_FMT_JSON, NULL, 0);
	for (size_t i = 0; i < n; i++)
		put_rec(w, &recs[i]);
	flush(w);
	mq_writer_free(w);
	mq_buf_t file = {0}, got = {0}, want = {0};
	slurp(fd, &file);
	close(fd);
	/* Output is ASCII-or-UTF-8 JSON, one object per line, no raw controls. */
	size_t lines = 0;
	for (size_t i = 0; i < file.len; i++) {
		if (file.p[i] == '\n')
			lines++;
		else
			assert_true(file.p[i] >= 0x20);
	}
	assert_int_equal(lines, n);
	for (size_t i = 0, l; i < file.len; i += l)
		assert_true((l = mq_utf8_seq(file.p + i, file.len - i)) > 0);
	read_all(file.p, file.len, MQ_FMT_JSON, NULL, 0, &got);
	/* Header order: UTF-8 values first, then the headers_b64 ones. */
	mq_rec_t r0 = recs[0];
	r0.headers[1] = recs[0].headers[2];
	r0.headers[2] = recs[0].headers[1];
	describe(&want, &r0);
	for (size_t i = 1; i < n; i++)
		describe(&want, &recs[i]);
	assert_buf_eq(&got, (const char *)want.p, want.len);
	/* The writer picked the forms expected. */
	assert_non_null(memmem(file.p, file.len, "\"key_b64\":\"/wBr\"", 16));
	assert_non_null(memmem(file.p, file.len, "\"headers_b64\":{\"bin\":\"/v8=\"}", 28));
	assert_non_null(memmem(file.p, file.len, "\\\"q\\\" \\\\ \\u0001 \\n \\t / \x7f \\u001f", 32));
	assert_non_null(memmem(file.p, file.len, "\"id_b64\":\"wIA=\"", 15));
	assert_non_null(memmem(file.p, file.len, "\"value\":\"a\\u0000b\"", 18));
	mq_buf_free(&file);
	mq_buf_free(&got);
	mq_buf_free(&want);
}

static void test_json_exact(void **state)
{
	(void)state;
	mq_rec_t r;
	rec_init(&r);
	r.topic = "t";
	r.partition = 0;
	r.offset = 5;
	r.timestamp = 1700000000000;
	r.key = (const uint8_t *)"k";
	r.key_len = 1;
	r.value = (const uint8_t *)"v";
	r.value_len = 1;
	r.headers[0] = (mq_header_t){B("h"), B("x")};
	r.nheaders = 1;
	int fd = tmp_fd(NULL, 0);
	mq_writer_t *w = writer(fd, MQ_FMT_JSON, NULL, 0);
	put_rec(w, &r);
	rec_init(&r); /* a lines record written as JSON: absent fields */
	r.value = (const uint8_t *)"plain";
	r.value_len = 5;
	put_rec(w, &r);
	flush(w);
	mq_writer_free(w);
	mq_buf_t file = {0};
	slurp(fd, &file);
	close(fd);
	ASSERT_BUF(&file, "{\"topic\":\"t\",\"partition\":0,\"offset\":5,\"timestamp\":1700000000000,"
			  "\"key\":\"k\",\"value\":\"v\",\"id\":null,\"headers\":{\"h\":\"x\"}}\n"
			  "{\"topic\":null,\"partition\":null,\"offset\":null,\"timestamp\":0,"
			  "\"key\":null,\"value\":\"plain\",\"id\":null,\"headers\":{}}\n");
	mq_buf_free(&file);
}

/* ---- msgpack ---- */

static void test_msgpack_roundtrip(void **state)
{
	(void)state;
	mq_rec_t recs[6];
	size_t n;
	sample_recs(recs, &n);
	int fd = tmp_fd(NULL, 0);
	mq_writer_t *w = writer(fd, MQ_FMT_MSGPACK, NULL, 4096); /* small: values bypass it */
	for (size_t i = 0; i < n; i++)
		put_rec(w, &recs[i]);
	flush(w);
	mq_writer_free(w);
	mq_buf_t file = {0}, got = {0}, want = {0}, split = {0};
	slurp(fd, &file);
	close(fd);
	read_all(file.p, file.len, MQ_FMT_MSGPACK, NULL, 0, &got);
	for (size_t i = 0; i < n; i++)
		describe(&want, &recs[i]);
	assert_buf_eq(&got, (const char *)want.p, want.len);
	/* Split across fills, one byte at a time. */
	read_bytewise(file.p, file.len, MQ_FMT_MSGPACK, NULL, &split);
	assert_buf_eq(&split, (const char *)want.p, want.len);
	/* And in uneven chunks from another process. */
	pid_t pid;
	int pfd = spawn_writer(file.p, file.len, 97, &pid);
	read_all_fd(pfd, MQ_FMT_MSGPACK, NULL, 0, &split);
	assert_buf_eq(&split, (const char *)want.p, want.len);
	close(pfd);
	reap(pid);
	mq_buf_free(&file);
	mq_buf_free(&got);
	mq_buf_free(&want);
	mq_buf_free(&split);
}

static void pk_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

/* Envelopes written by someone else: str instead of bin, unknown keys of
 * every type, nil, a non-string key, negative numbers. */
static void make_msgpack_sample(mq_buf_t *out)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 9);
	pk_str(&pk, "value");
	pk_str(&pk, "v\xc3\xa9");
	pk_str(&pk, "key");
	pk_str(&pk, "k");
	pk_str(&pk, "unknown");
	msgpack_pack_array(&pk, 3);
	msgpack_pack_double(&pk, 1.5);
	msgpack_pack_true(&pk);
	msgpack_pack_map(&pk, 1);
	pk_str(&pk, "x");
	msgpack_pack_nil(&pk);
	msgpack_pack_int(&pk, 42); /* non-string key: ignored */
	pk_str(&pk, "ignored");
	pk_str(&pk, "topic");
	pk_str(&pk, "tp");
	pk_str(&pk, "offset");
	msgpack_pack_int64(&pk, -3);
	pk_str(&pk, "timestamp");
	msgpack_pack_uint64(&pk, 1700000000000ull);
	pk_str(&pk, "id");
	msgpack_pack_nil(&pk);
	pk_str(&pk, "headers");
	msgpack_pack_map(&pk, 2);
	pk_str(&pk, "a");
	pk_str(&pk, "1");
	msgpack_pack_bin(&pk, 1);
	msgpack_pack_bin_body(&pk, "b", 1);
	msgpack_pack_bin(&pk, 2);
	msgpack_pack_bin_body(&pk, "\0\1", 2);
	/* Not a map: an error, then the reader goes on. */
	msgpack_pack_array(&pk, 1);
	msgpack_pack_int(&pk, 1);
	/* A field of the wrong type. */
	msgpack_pack_map(&pk, 1);
	pk_str(&pk, "partition");
	pk_str(&pk, "1");
	/* An empty map: all absent. */
	msgpack_pack_map(&pk, 0);
	mq_buf_t b = {0};
	app(&b, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	*out = b;
}

static void test_msgpack_foreign(void **state)
{
	(void)state;
	mq_buf_t in = {0}, out = {0};
	make_msgpack_sample(&in);
	read_all(in.p, in.len, MQ_FMT_MSGPACK, NULL, 0, &out);
	ASSERT_BUF(&out, "K1:k V3:v\xc3\xa9 I- Ttp P-1 O-3 S1700000000000 H2 n1:a v1:1 n1:b v2:\0\1 ;\n"
			 "E:record 2: invalid msgpack envelope: not a map\n"
			 "E:record 3: invalid msgpack envelope: partition: expected an integer\n"
			 "K- V0: I- T- P-1 O-1 S0 H0 ;\n");

	/* Bytes that are not msgpack: reported once, the rest dropped. */
	app(&in, "\xc1\x80\x80", 3);
	read_all(in.p, in.len, MQ_FMT_MSGPACK, NULL, 0, &out);
	assert_contains(&out, "E:record 5: not msgpack (byte 0xc1 at byte 1 of the record); "
			      "the rest of the input is skipped\n");
	assert_int_equal(out.p[out.len - 1], '\n');
	in.len -= 3;

	/* A truncated last envelope. */
	app(&in, "\x81\xa5value\xa3va", 10);
	read_all(in.p, in.len, MQ_FMT_MSGPACK, NULL, 0, &out);
	assert_contains(&out, "K- V0: I- T- P-1 O-1 S0 H0 ;\n"
			      "E:record 5: truncated msgpack envelope at the end of input\n");

	/* Over the size limit. */
	mq_rec_t r;
	rec_init(&r);
	static uint8_t big[3000];
	r.value = big;
	r.value_len = sizeof big;
	int fd = tmp_fd(NULL, 0);
	mq_writer_t *w = writer(fd, MQ_FMT_MSGPACK, NULL, 0);
	put_rec(w, &r);
	r.value_len = 100;
	put_rec(w, &r);
	flush(w);
	mq_writer_free(w);
	read_all_fd(fd, MQ_FMT_MSGPACK, NULL, 1000, &out);
	ASSERT_BUF(&out, "E:record 1: longer than the limit of 1000 bytes; skipped\n"
			 "K- V100:" "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
			 "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
			 "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
			 "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
			 " I- T- P-1 O-1 S0 H0 ;\n");
	/* Through a pipe in small pieces: the long one is refused as soon as
	 * its header says so and skipped exactly, without being buffered. */
	slurp(fd, &in);
	close(fd);
	pid_t pid;
	int pfd = spawn_writer(in.p, in.len, 7, &pid);
	read_all_fd(pfd, MQ_FMT_MSGPACK, NULL, 1000, &out);
	close(pfd);
	reap(pid);
	assert_contains(&out, "E:record 1: longer than the limit of 1000 bytes; skipped\nK- V100:");
	/* Cut short inside the long one: the skip ends with the input. */
	read_all(in.p, 2000, MQ_FMT_MSGPACK, NULL, 1000, &out);
	ASSERT_BUF(&out, "E:record 1: longer than the limit of 1000 bytes; skipped\n");

	/* A corrupt count (map32 of 2^32-1 pairs, array32 likewise) must not
	 * reach msgpack's allocator: too big for any record, skipped. */
	read_all("\xdf\xff\xff\xff\xff\x01\x02", 7, MQ_FMT_MSGPACK, NULL, 0, &out);
	ASSERT_BUF(&out, "E:record 1: longer than the limit of 67108864 bytes; skipped\n");
	read_all("\x91\xdd\xff\xff\xff\xff", 6, MQ_FMT_MSGPACK, NULL, 0, &out);
	ASSERT_BUF(&out, "E:record 1: longer than the limit of 67108864 bytes; skipped\n");

	/* Nesting: 40 deep is msgpack_unpack's limit (32), one envelope is
	 * skipped; 300 deep loses the stream. */
	in.len = 0;
	for (int i = 0; i < 40; i++)
		app(&in, "\x91", 1);
	app(&in, "\xc0\x80", 2);
	read_all(in.p, in.len, MQ_FMT_MSGPACK, NULL, 0, &out);
	ASSERT_BUF(&out, "E:record 1: invalid msgpack envelope: msgpack-c cannot decode it (nested "
			 "more than 32 deep, or out of memory); skipped\n"
			 "K- V0: I- T- P-1 O-1 S0 H0 ;\n");
	in.len = 0;
	for (int i = 0; i < 300; i++)
		app(&in, "\x91", 1);
	app(&in, "\xc0\x80", 2);
	read_all(in.p, in.len, MQ_FMT_MSGPACK, NULL, 0, &out);
	ASSERT_BUF(&out, "E:record 1: msgpack nested more than 256 deep; the rest of the input is skipped\n");

	/* Every type of msgpack in an unknown field: ext, float, int widths,
	 * str8/16/32, bin8/16, fixext. */
	static const uint8_t kinds[] = {
		0x81, 0xa1, 'x', 0xdc, 0, 18,
		0xc7, 0x01, 0x05, 'a', 0xc8, 0x00, 0x01, 0x05, 'b', 0xc9, 0x00, 0x00, 0x00, 0x01, 0x05, 'c',
		0xca, 0, 0, 0, 0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xcc, 1, 0xcd, 0, 1, 0xce, 0, 0, 0, 1,
		0xcf, 0, 0, 0, 0, 0, 0, 0, 1, 0xd0, 0xff, 0xd1, 0xff, 0xff, 0xd4, 1, 'x',
		0xd8, 1, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f',
		0xd9, 1, 'x', 0xda, 0, 1, 'x', 0xdb, 0, 0, 0, 1, 'x', 0xc4, 1, 'x', 0xc5, 0, 1, 'x',
	};
	read_all(kinds, sizeof kinds, MQ_FMT_MSGPACK, NULL, 0, &out);
	ASSERT_BUF(&out, "K- V0: I- T- P-1 O-1 S0 H0 ;\n");
	check_bytewise(kinds, sizeof kinds, MQ_FMT_MSGPACK, NULL);
	mq_buf_free(&in);
	mq_buf_free(&out);
}

/* ---- templates ---- */

/* One batch record: topic t, partition 3, offset 5. */
static void batch_record(mq_buf_t *buf, mq_record_t *rec, int with_key)
{
	mq_batch_builder_t b;
	mq_err_t err;
	mq_header_t h[] = {{B("a"), B("1")}, {B("b"), B("2")}};
	buf->len = 0;
	mq_batch_begin(&b, buf);
	assert_int_equal(mq_batch_add(&b, 1700000000000, with_key ? "k" : NULL, 1, "hello", 5,
				      with_key ? "id1" : NULL, 3, h, with_key ? 2 : 0), 0);
	size_t len = mq_batch_finish(&b);
	mq_batch_set_base(buf->p, 5);
	mq_batch_iter_t it;
	assert_int_equal(mq_batch_iter_init(&it, buf->p, len, &err), 0);
	assert_int_equal(mq_batch_iter_next(&it, rec), 1);
}

/* Envelope "producer" and "seq": from the batch (its producer id and
 * base_seq + index), or from the origin headers, which are then not
 * written again; read back from JSON and msgpack, numbers or strings. */
/* A record delimiter of several bytes (mq-pub -D), found across reads
 * of any size, a last record without one, records over the limit
 * skipped up to the next delimiter; one byte works like -0's NUL. */
static void test_rec_delim(void **state)
{
	(void)state;
	static const char in[] = "a<=>bb<=><=>c<<=>=d<=>0123456789012345<=>e";
	for (size_t chunk = 1; chunk <= 7; chunk++) {
		pid_t pid;
		int fd = spawn_writer(in, sizeof in - 1, chunk, &pid);
		mq_reader_t *r;
		mq_err_t err;
		mq_reader_opts_t o = {.fmt = MQ_FMT_LINES, .rec_delim = "<=>", .rec_delim_len = 3, .max_record = 10};
		assert_int_equal(mq_reader_new(fd, &o, &r, &err), 0);
		mq_buf_t out = {0};
		mq_rec_t rec;
		int rc;
		while ((rc = mq_reader_get(r, &rec, &err)) != 0) {
			if (rc > 0)
				describe(&out, &rec);
			else
				appf(&out, "E:%s\n", err.msg);
		}
		ASSERT_BUF(&out, "K- V1:a I- T- P-1 O-1 S0 H0 ;\n"
				 "K- V2:bb I- T- P-1 O-1 S0 H0 ;\n"
				 "K- V0: I- T- P-1 O-1 S0 H0 ;\n"
				 "K- V2:c< I- T- P-1 O-1 S0 H0 ;\n"
				 "K- V2:=d I- T- P-1 O-1 S0 H0 ;\n"
				 "E:record 6: longer than the limit of 10 bytes; skipped\n"
				 "K- V1:e I- T- P-1 O-1 S0 H0 ;\n");
		mq_buf_free(&out);
		mq_reader_free(r);
		close(fd);
		reap(pid);
	}
	/* One byte: like any other terminator. */
	mq_buf_t out = {0};
	int fd = tmp_fd("x|y||z", 6);
	mq_reader_t *r;
	mq_err_t err;
	mq_reader_opts_t o = {.fmt = MQ_FMT_LINES, .rec_delim = "|", .rec_delim_len = 1};
	assert_int_equal(mq_reader_new(fd, &o, &r, &err), 0);
	mq_rec_t rec;
	while (mq_reader_get(r, &rec, &err) > 0) {
		assert_null(rec.raw); /* not passed through as a line */
		describe(&out, &rec);
	}
	ASSERT_BUF(&out, "K- V1:x I- T- P-1 O-1 S0 H0 ;\nK- V1:y I- T- P-1 O-1 S0 H0 ;\n"
			 "K- V0: I- T- P-1 O-1 S0 H0 ;\nK- V1:z I- T- P-1 O-1 S0 H0 ;\n");
	mq_reader_free(r);
	close(fd);
	mq_buf_free(&out);
	/* Refused: empty, or with envelopes. */
	o = (mq_reader_opts_t){.fmt = MQ_FMT_JSON, .rec_delim = "|", .rec_delim_len = 1};
	assert_int_equal(mq_reader_new(0, &o, &r, &err), -MQ_EINVAL);
	o = (mq_reader_opts_t){.fmt = MQ_FMT_LINES, .rec_delim = "", .rec_delim_len = 0};
	assert_int_equal(mq_reader_new(0, &o, &r, &err), -MQ_EINVAL);
}

static void test_origin(void **state)
{
	(void)state;
	mq_buf_t buf = {0}, file = {0};
	mq_batch_builder_t b;
	mq_err_t err;
	mq_header_t h[] = {{B("h"), B("1")}, {B(MQ_HDR_PRODUCER), B("sensor-7")}, {B(MQ_HDR_SEQ), B("7")}};
	mq_header_t bad[] = {{B(MQ_HDR_PRODUCER), B("x")}, {B(MQ_HDR_SEQ), B("07")}};
	mq_batch_begin(&b, &buf);
	b.hdr.producer_id = 42;
	b.hdr.base_seq = 0xffffffffu;
	assert_int_equal(mq_batch_add(&b, 1, NULL, 0, "a", 1, NULL, 0, NULL, 0), 0);
	assert_int_equal(mq_batch_add(&b, 1, NULL, 0, "b", 1, NULL, 0, h, 3), 0);
	assert_int_equal(mq_batch_add(&b, 1, NULL, 0, "c", 1, NULL, 0, bad, 2), 0);
	size_t len = mq_batch_finish(&b);
	mq_batch_iter_t it;
	mq_record_t rec;
	int fd = tmp_fd(NULL, 0);
	mq_writer_t *w, *w0 = writer(fd, MQ_FMT_JSON, NULL, 0);
	mq_writer_opts_t wo = {.fmt = MQ_FMT_JSON, .with_seq = 1};
	assert_int_equal(mq_writer_new(fd, &wo, &w, &err), 0);
	assert_int_equal(mq_batch_iter_init(&it, buf.p, len, &err), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(mq_batch_iter_next(&it, &rec), 1);
		assert_int_equal(mq_writer_put(w, "t", 0, &rec, &err), 0);
	}
	flush(w);
	mq_writer_free(w);
	slurp(fd, &file);
	/* Without with_seq only origin headers make the fields. */
	assert_int_equal(mq_batch_iter_init(&it, buf.p, len, &err), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(mq_batch_iter_next(&it, &rec), 1);
		assert_int_equal(mq_writer_put(w0, "t", 0, &rec, &err), 0);
	}
	flush(w0);
	mq_writer_free(w0);
	mq_buf_t all = {0};
	slurp(fd, &all);
	assert_true(all.len > file.len);
	static const char plain[] =
		"{\"topic\":\"t\",\"partition\":0,\"offset\":0,\"timestamp\":1,\"key\":null,\"value\":\"a\",\"id\":null,"
		"\"headers\":{}}\n"
		"{\"topic\":\"t\",\"partition\":0,\"offset\":1,\"timestamp\":1,\"key\":null,\"value\":\"b\",\"id\":null,"
		"\"headers\":{\"h\":\"1\"},\"producer\":\"sensor-7\",\"seq\":7}\n";
	assert_int_equal(all.len - file.len, sizeof plain - 1);
	assert_memory_equal(all.p + file.len, plain, sizeof plain - 1);
	mq_buf_free(&all);
	close(fd);
	/* base_seq + index wraps at 2^32; a bad mq.seq is an ordinary header. */
	ASSERT_BUF(&file,
		   "{\"topic\":\"t\",\"partition\":0,\"offset\":0,\"timestamp\":1,\"key\":null,\"value\":\"a\",\"id\":null,"
		   "\"headers\":{},\"producer\":\"42\",\"seq\":4294967295}\n"
		   "{\"topic\":\"t\",\"partition\":0,\"offset\":1,\"timestamp\":1,\"key\":null,\"value\":\"b\",\"id\":null,"
		   "\"headers\":{\"h\":\"1\"},\"producer\":\"sensor-7\",\"seq\":7}\n"
		   "{\"topic\":\"t\",\"partition\":0,\"offset\":2,\"timestamp\":1,\"key\":null,\"value\":\"c\",\"id\":null,"
		   "\"headers\":{\"mq.producer\":\"x\",\"mq.seq\":\"07\"},\"producer\":\"42\",\"seq\":1}\n");
	/* Reading: producer as a string or a number, seq up to 2^64-1. */
	static const char in[] = "{\"value\":\"a\",\"producer\":\"p\",\"seq\":18446744073709551615}\n"
				 "{\"value\":\"b\",\"producer\":12,\"seq\":0}\n"
				 "{\"value\":\"c\",\"producer\":\"p\"}\n"
				 "{\"value\":\"d\",\"seq\":3}\n"
				 "{\"value\":\"e\",\"producer\":\"p\",\"seq\":-1}\n"
				 "{\"value\":\"f\",\"producer\":\"p\",\"seq\":1.5}\n"
				 "{\"value\":\"g\",\"producer\":\"p\",\"seq\":18446744073709551616}\n";
	fd = tmp_fd(in, sizeof in - 1);
	mq_reader_t *r = reader(fd, MQ_FMT_JSON, NULL, 0);
	mq_rec_t rr;
	assert_int_equal(mq_reader_get(r, &rr, &err), 1);
	assert_true(rr.has_seq);
	assert_true(rr.seq == UINT64_MAX);
	assert_memory_equal(rr.producer, "p", 1);
	assert_int_equal(mq_reader_get(r, &rr, &err), 1);
	assert_true(rr.has_seq && rr.seq == 0 && rr.producer_len == 2 && memcmp(rr.producer, "12", 2) == 0);
	assert_int_equal(mq_reader_get(r, &rr, &err), 1);
	assert_false(rr.has_seq); /* producer alone */
	assert_int_equal(mq_reader_get(r, &rr, &err), 1);
	assert_false(rr.has_seq); /* seq alone */
	for (int i = 0; i < 3; i++) {
		assert_true(mq_reader_get(r, &rr, &err) < 0);
		assert_non_null(strstr(err.msg, "seq: "));
	}
	assert_int_equal(mq_reader_get(r, &rr, &err), 0);
	mq_reader_free(r);
	close(fd);
	/* msgpack: {"value":"a","producer":1234,"seq":7} and a str producer. */
	static const char mp[] = "\x83\xa5value\xc4\x01" "a\xa8producer\xcd\x04\xd2\xa3seq\x07"
				 "\x83\xa5value\xc4\x01" "b\xa8producer\xa1q\xa3seq\xcf\xff\xff\xff\xff\xff\xff\xff\xff";
	fd = tmp_fd(mp, sizeof mp - 1);
	r = reader(fd, MQ_FMT_MSGPACK, NULL, 0);
	assert_int_equal(mq_reader_get(r, &rr, &err), 1);
	assert_true(rr.has_seq && rr.seq == 7 && rr.producer_len == 4 && memcmp(rr.producer, "1234", 4) == 0);
	/* Written back: the same fields. */
	int fd2 = tmp_fd(NULL, 0);
	w = writer(fd2, MQ_FMT_JSON, NULL, 0);
	put_rec(w, &rr);
	assert_int_equal(mq_reader_get(r, &rr, &err), 1);
	assert_true(rr.has_seq && rr.seq == UINT64_MAX && rr.producer_len == 1);
	put_rec(w, &rr);
	flush(w);
	mq_writer_free(w);
	slurp(fd2, &file);
	close(fd2);
	ASSERT_BUF(&file, "{\"topic\":null,\"partition\":null,\"offset\":null,\"timestamp\":0,\"key\":null,\"value\":\"a\","
			  "\"id\":null,\"headers\":{},\"producer\":\"1234\",\"seq\":7}\n"
			  "{\"topic\":null,\"partition\":null,\"offset\":null,\"timestamp\":0,\"key\":null,\"value\":\"b\","
			  "\"id\":null,\"headers\":{},\"producer\":\"q\",\"seq\":18446744073709551615}\n");
	mq_reader_free(r);
	close(fd);
	mq_buf_free(&buf);
	mq_buf_free(&file);
}

static void test_template(void **state)
{
	(void)state;
	mq_buf_t batch = {0}, file = {0};
	mq_record_t rec;
	mq_err_t err;
	int fd = tmp_fd(NULL, 0);
	mq_writer_t *w = writer(fd, MQ_FMT_TEMPLATE,
				"%t|%p|%o|%k|%s|%T|%i|%h|%S|%%|\\n\\t\\r\\0\\\\|100%% done\\n", 0);
	batch_record(&batch, &rec, 1);
	assert_int_equal(mq_writer_put(w, "t", 3, &rec, &err), 0);
	batch_record(&batch, &rec, 0); /* no key, id or headers: nothing printed */
	assert_int_equal(mq_writer_put(w, "t", 3, &rec, &err), 0);
	mq_rec_t r; /* a record from lines input: no topic, partition, offset */
	rec_init(&r);
	r.value = (const uint8_t *)"v";
	r.value_len = 1;
	put_rec(w, &r);
	flush(w);
	mq_writer_free(w);
	slurp(fd, &file);
	close(fd);
	ASSERT_BUF(&file, "t|3|5|k|hello|1700000000000|id1|a=1,b=2|5|%|\n\t\r\0\\|100% done\n"
			  "t|3|5||hello|1700000000000|||5|%|\n\t\r\0\\|100% done\n"
			  "||||v|0|||1|%|\n\t\r\0\\|100% done\n");

	/* The same record as JSON and msgpack from the encoded headers. */
	fd = tmp_fd(NULL, 0);
	w = writer(fd, MQ_FMT_JSON, NULL, 0);
	batch_record(&batch, &rec, 1);
	assert_int_equal(mq_writer_put(w, "t", 3, &rec, &err), 0);
	flush(w);
	mq_writer_free(w);
	slurp(fd, &file);
	close(fd);
	ASSERT_BUF(&file, "{\"topic\":\"t\",\"partition\":3,\"offset\":5,\"timestamp\":1700000000000,"
			  "\"key\":\"k\",\"value\":\"hello\",\"id\":\"id1\",\"headers\":{\"a\":\"1\",\"b\":\"2\"}}\n");
	fd = tmp_fd(NULL, 0);
	w = writer(fd, MQ_FMT_MSGPACK, NULL, 0);
	assert_int_equal(mq_writer_put(w, "t", 3, &rec, &err), 0);
	flush(w);
	mq_writer_free(w);
	read_all_fd(fd, MQ_FMT_MSGPACK, NULL, 0, &file);
	close(fd);
	ASSERT_BUF(&file, "K1:k V5:hello I3:id1 Tt P3 O5 S1700000000000 H2 n1:a v1:1 n1:b v1:2 ;\n");
	/* Lines and nul from a batch record: the value and the terminator. */
	fd = tmp_fd(NULL, 0);
	w = writer(fd, MQ_FMT_NUL, NULL, 0);
	assert_int_equal(mq_writer_put(w, "t", 3, &rec, &err), 0);
	flush(w);
	mq_writer_free(w);
	slurp(fd, &file);
	close(fd);
	ASSERT_BUF(&file, "hello\0");
	mq_buf_free(&batch);
	mq_buf_free(&file);
}

/* A header name given more than once: one key with an array of its
 * values in JSON (jq keeps them all), read back as separate headers. */
static void test_json_repeated_headers(void **state)
{
	(void)state;
	mq_buf_t file = {0}, out = {0};
	mq_rec_t r;
	rec_init(&r);
	r.value = (const uint8_t *)"v";
	r.value_len = 1;
	r.headers[0] = (mq_header_t){B("a"), B("1")};
	r.headers[1] = (mq_header_t){B("b"), B("x")};
	r.headers[2] = (mq_header_t){B("a"), B("2")};
	r.headers[3] = (mq_header_t){B("bin"), (const uint8_t *)"\xff", 1};
	r.headers[4] = (mq_header_t){B("bin"), (const uint8_t *)"\xfe", 1};
	r.headers[5] = (mq_header_t){B("a"), B("")};
	r.nheaders = 6;
	int fd = tmp_fd(NULL, 0);
	mq_writer_t *w = writer(fd, MQ_FMT_JSON, NULL, 0);
	put_rec(w, &r);
	flush(w);
	mq_writer_free(w);
	slurp(fd, &file);
	close(fd);
	ASSERT_BUF(&file, "{\"topic\":null,\"partition\":null,\"offset\":null,\"timestamp\":0,\"key\":null,\"value\":\"v\","
			  "\"id\":null,\"headers\":{\"a\":[\"1\",\"2\",\"\"],\"b\":\"x\"},\"headers_b64\":{\"bin\":[\"/w==\",\"/g==\"]}}\n");
	/* Read back: every value, as its own header, in order per name. */
	read_all(file.p, file.len, MQ_FMT_JSON, NULL, 0, &out);
	ASSERT_BUF(&out, "K- V1:v I- T- P-1 O-1 S0 H6 n1:a v1:1 n1:a v1:2 n1:a v0: n1:b v1:x n3:bin v1:\xff n3:bin v1:\xfe ;\n");
	/* Arrays: empty, and not of strings. */
	static const char in[] = "{\"headers\":{\"a\":[],\"b\":[\"1\"]}}\n{\"headers\":{\"a\":[1]}}\n"
				 "{\"headers\":{\"a\":[\"1\" \"2\"]}}\n";
	read_all(in, sizeof in - 1, MQ_FMT_JSON, NULL, 0, &out);
	assert_non_null(strstr((const char *)out.p, "H1 n1:b v1:1 ;"));
	assert_non_null(strstr((const char *)out.p, "value of 'a' must be a string"));
	assert_non_null(strstr((const char *)out.p, "expected ',' or ']'"));
	mq_buf_free(&file);
	mq_buf_free(&out);
}

/* %D: the timestamp as ISO 8601 in UTC, milliseconds included. */
static void test_template_iso(void **state)
{
	(void)state;
	mq_buf_t file = {0};
	int fd = tmp_fd(NULL, 0);
	mq_writer_t *w = writer(fd, MQ_FMT_TEMPLATE, "%D|%T\\n", 0);
	static const int64_t ts[] = {1700000000000, 1795514400250, 0, -1, 951782400999};
	for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
		mq_rec_t r;
		rec_init(&r);
		r.value = (const uint8_t *)"v";
		r.value_len = 1;
		r.timestamp = ts[i];
		put_rec(w, &r);
	}
	flush(w);
	mq_writer_free(w);
	slurp(fd, &file);
	close(fd);
	ASSERT_BUF(&file, "2023-11-14T22:13:20.000Z|1700000000000\n"
			  "2026-11-24T10:00:00.250Z|1795514400250\n"
			  "1970-01-01T00:00:00.000Z|0\n"
			  "1969-12-31T23:59:59.999Z|-1\n"
			  "2000-02-29T00:00:00.999Z|951782400999\n");
	mq_buf_free(&file);
}

static void test_template_rejects(void **state)
{
	(void)state;
	static const struct {
		const char *tpl, *msg;
	} cases[] = {
		{"abc%x", "template: unknown code '%x' at position 4"},
		{"%s%", "template: lone '%' at the end, position 3"},
		{"%s\\", "template: lone '\\' at the end, position 3"},
		{"a\\qb", "template: unknown escape '\\q' at position 2"},
		{"%", "template: lone '%' at the end, position 1"},
		{"%K", "template: unknown code '%K' at position 1"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mq_writer_t *w = (mq_writer_t *)&w;
		mq_err_t err;
		mq_writer_opts_t o = {.fmt = MQ_FMT_TEMPLATE, .template = cases[i].tpl};
		assert_int_equal(mq_writer_new(1, &o, &w, &err), -MQ_EINVAL);
		assert_null(w);
		if (strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)) != 0)
			fail_msg("template '%s': got '%s', want '%s...'", cases[i].tpl, err.msg, cases[i].msg);
	}
	mq_writer_t *w;
	mq_err_t err;
	mq_writer_opts_t o = {.fmt = MQ_FMT_TEMPLATE};
	assert_int_equal(mq_writer_new(1, &o, &w, &err), -MQ_EINVAL);
	o.template = "";
	assert_int_equal(mq_writer_new(1, &o, &w, &err), 0);
	mq_writer_free(w);
}

/* ---- pass-through ---- */

static void passthrough(const char *in, size_t n, mq_fmt_t rfmt, const char *delim, mq_fmt_t wfmt,
			mq_buf_t *out)
{
	int ifd = tmp_fd(in, n), ofd = tmp_fd(NULL, 0);
	mq_reader_t *r = reader(ifd, rfmt, delim, 0);
	mq_writer_t *w = writer(ofd, wfmt, NULL, 0);
	mq_rec_t rec;
	mq_err_t err;
	int rc;
	while ((rc = mq_reader_get(r, &rec, &err)) != 0)
		if (rc > 0)
			put_rec(w, &rec);
	flush(w);
	slurp(ofd, out);
	mq_writer_free(w);
	mq_reader_free(r);
	close(ifd);
	close(ofd);
}

static void test_passthrough(void **state)
{
	(void)state;
	mq_buf_t out = {0};
	/* Lines with -K keep key and delimiter; a last line gains its newline. */
	static const char l[] = "k:v\r\nplain\nlast:x";
	passthrough(l, sizeof l - 1, MQ_FMT_LINES, ":", MQ_FMT_LINES, &out);
	ASSERT_BUF(&out, "k:v\r\nplain\nlast:x\n");
	/* Lines to nul: the value only. */
	passthrough(l, sizeof l - 1, MQ_FMT_LINES, ":", MQ_FMT_NUL, &out);
	ASSERT_BUF(&out, "v\r\0plain\0x\0");
	static const char n0[] = "a\nb\0c";
	passthrough(n0, sizeof n0 - 1, MQ_FMT_NUL, NULL, MQ_FMT_NUL, &out);
	ASSERT_BUF(&out, "a\nb\0c\0");
	/* JSON keeps unknown fields and spacing as they came. */
	static const char j[] = "{ \"value\":\"v\", \"extra\": [1,2] }\n{\"value\":\"w\"}";
	passthrough(j, sizeof j - 1, MQ_FMT_JSON, NULL, MQ_FMT_JSON, &out);
	ASSERT_BUF(&out, "{ \"value\":\"v\", \"extra\": [1,2] }\n{\"value\":\"w\"}\n");
	passthrough(j, sizeof j - 1, MQ_FMT_JSON, NULL, MQ_FMT_LINES, &out);
	ASSERT_BUF(&out, "v\nw\n");
	/* msgpack is copied byte for byte, unknown keys included. */
	mq_buf_t mp = {0};
	make_msgpack_sample(&mp);
	passthrough((const char *)mp.p, mp.len, MQ_FMT_MSGPACK, NULL, MQ_FMT_MSGPACK, &out);
	/* Records 2 and 3 are invalid and dropped: [1] (2 bytes) and
	 * {"partition":"1"} (13 bytes); the last, {}, is 0x80. */
	size_t first = mp.len - 16;
	assert_int_equal(out.len, first + 1);
	assert_memory_equal(out.p, mp.p, first);
	assert_int_equal(out.p[first], 0x80);
	/* A changed record (raw cleared) is formatted again. */
	int ifd = tmp_fd(l, sizeof l - 1), ofd = tmp_fd(NULL, 0);
	mq_reader_t *r = reader(ifd, MQ_FMT_LINES, ":", 0);
	mq_writer_t *w = writer(ofd, MQ_FMT_JSON, NULL, 0);
	mq_rec_t rec;
	mq_err_t err;
	assert_int_equal(mq_reader_get(r, &rec, &err), 1);
	put_rec(w, &rec);
	flush(w);
	slurp(ofd, &out);
	ASSERT_BUF(&out, "{\"topic\":null,\"partition\":null,\"offset\":null,\"timestamp\":0,"
			 "\"key\":\"k\",\"value\":\"v\\r\",\"id\":null,\"headers\":{}}\n");
	mq_writer_free(w);
	mq_reader_free(r);
	close(ifd);
	close(ofd);
	mq_buf_free(&mp);
	mq_buf_free(&out);
}

/* ---- writer ---- */

static void test_writer_buffering(void **state)
{
	(void)state;
	int fd = tmp_fd(NULL, 0);
	mq_writer_t *w = writer(fd, MQ_FMT_LINES, NULL, 4096);
	mq_buf_t want = {0}, got = {0};
	mq_err_t err;
	mq_record_t rec;
	memset(&rec, 0, sizeof rec);
	static uint8_t big[300000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)('A' + i % 50);
	for (int i = 0; i < 100000; i++) {
		char v[64];
		const uint8_t *p = (const uint8_t *)v;
		size_t n = (size_t)snprintf(v, sizeof v, "record %d %.*s", i, i % 40, "........................................");
		if (i % 25000 == 7) { /* now and then one larger than the buffer */
			p = big;
			n = sizeof big;
		}
		rec.value = p;
		rec.value_len = n;
		assert_int_equal(mq_writer_put(w, "t", 0, &rec, &err), 0);
		app(&want, p, n);
		app(&want, "\n", 1);
		assert_true(mq_writer_pending(w) < 4096);
		if (i % 997 == 0) {
			struct stat st;
			assert_int_equal(fstat(fd, &st), 0);
			assert_int_equal((size_t)st.st_size + mq_writer_pending(w), want.len);
		}
	}
	assert_true(mq_writer_pending(w) > 0);
	flush(w);
	assert_int_equal(mq_writer_pending(w), 0);
	flush(w); /* nothing left: a no-op */
	slurp(fd, &got);
	assert_buf_eq(&got, (const char *)want.p, want.len);
	mq_writer_free(w);
	close(fd);

	/* Default buffer: nothing reaches the fd until 256 KiB are buffered. */
	fd = tmp_fd(NULL, 0);
	w = writer(fd, MQ_FMT_LINES, NULL, 0);
	rec.value = (const uint8_t *)"x";
	rec.value_len = 1;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(mq_writer_put(w, "t", 0, &rec, &err), 0);
	assert_int_equal(mq_writer_pending(w), 2000);
	assert_int_equal(lseek(fd, 0, SEEK_END), 0);
	mq_writer_free(w); /* does not flush */
	assert_int_equal(lseek(fd, 0, SEEK_END), 0);
	close(fd);
	mq_buf_free(&want);
	mq_buf_free(&got);
}

static void test_writer_epipe(void **state)
{
	(void)state;
	int p[2];
	mq_err_t err;
	mq_rec_t r;
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	mq_writer_t *w = writer(p[1], MQ_FMT_LINES, NULL, 0);
	rec_init(&r);
	r.value = (const uint8_t *)"x";
	r.value_len = 1;
	assert_int_equal(mq_writer_put_rec(w, &r, &err), 0);
	assert_int_equal(mq_writer_flush(w, &err), -MQ_EIO);
	assert_int_equal(err.sys, EPIPE);
	char want[128];
	snprintf(want, sizeof want, "writing to fd %d: the reader went away (Broken pipe)", p[1]);
	assert_string_equal(err.msg, want);
	assert_int_equal(mq_writer_pending(w), 0);
	mq_writer_free(w);

	/* The name for standard output, and a given name. */
	mq_writer_opts_t o = {.fmt = MQ_FMT_LINES, .name = "rejects.txt"};
	assert_int_equal(mq_writer_new(p[1], &o, &w, &err), 0);
	assert_int_equal(mq_writer_put_rec(w, &r, &err), 0);
	assert_int_equal(mq_writer_flush(w, &err), -MQ_EIO);
	assert_string_equal(err.msg, "writing to rejects.txt: the reader went away (Broken pipe)");
	mq_writer_free(w);
	int saved = dup(1);
	assert_int_equal(dup2(p[1], 1), 1);
	w = writer(1, MQ_FMT_LINES, NULL, 0);
	assert_int_equal(mq_writer_put_rec(w, &r, &err), 0);
	assert_int_equal(mq_writer_flush(w, &err), -MQ_EIO);
	assert_int_equal(dup2(saved, 1), 1);
	close(saved);
	assert_string_equal(err.msg, "writing to standard output: the reader went away (Broken pipe)");
	mq_writer_free(w);
	signal(SIGPIPE, old);
	close(p[1]);
}

/* mq_writer_on_write: told before each write with what will have left,
 * it can end the write earlier; after a failed write, told what left. */
typedef struct hook_log {
	uint64_t calls[16];
	int n;
	uint64_t cut; /* lower upto to this, when above it */
	int fail;     /* return this error on the next call */
} hook_log_t;

static int log_write(void *ctx, uint64_t *upto, mq_err_t *err)
{
	hook_log_t *l = ctx;
	if (l->n < 16)
		l->calls[l->n++] = *upto;
	if (l->fail)
		return mq_err_set(err, MQ_EIO, "refused by the hook");
	if (l->cut && *upto > l->cut)
		*upto = l->cut;
	return 0;
}

static void test_writer_on_write(void **state)
{
	(void)state;
	int p[2];
	mq_err_t err;
	mq_rec_t r;
	char buf[64];
	assert_int_equal(pipe(p), 0);
	mq_writer_t *w = writer(p[1], MQ_FMT_LINES, NULL, 0);
	mq_writer_on_wait(w, -1, NULL, NULL); /* sized to the pipe, no period, no hook */
	hook_log_t l = {.cut = 4};
	mq_writer_on_write(w, log_write, &l);
	rec_init(&r);
	r.value = (const uint8_t *)"abc";
	r.value_len = 3;
	assert_int_equal(mq_writer_put_rec(w, &r, &err), 0);
	assert_int_equal(mq_writer_put_rec(w, &r, &err), 0);
	assert_int_equal(mq_writer_flush(w, &err), 0);
	/* 8 bytes: cut at 4 (the first record's end), then the other 4. */
	assert_int_equal(l.n, 2);
	assert_int_equal(l.calls[0], 8);
	assert_int_equal(l.calls[1], 8);
	assert_int_equal(mq_writer_written(w), 8);
	assert_int_equal(read(p[0], buf, sizeof buf), 8);
	assert_memory_equal(buf, "abc\nabc\n", 8);
	/* A hook's error fails the write, nothing written. */
	l = (hook_log_t){.fail = 1};
	assert_int_equal(mq_writer_put_rec(w, &r, &err), 0);
	assert_int_equal(mq_writer_flush(w, &err), -MQ_EIO);
	assert_string_equal(err.msg, "refused by the hook");
	assert_int_equal(mq_writer_written(w), 8);
	/* A write that fails: told again with what left in fact. */
	close(p[0]);
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	l = (hook_log_t){0};
	assert_int_equal(mq_writer_put_rec(w, &r, &err), 0);
	assert_int_equal(mq_writer_flush(w, &err), -MQ_EIO);
	assert_int_equal(err.sys, EPIPE);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.calls[0], 12);
	assert_int_equal(l.calls[1], 8);
	signal(SIGPIPE, old);
	mq_writer_free(w);
	close(p[1]);
}

/* A writer sized to a pipe never blocks, however the reader reads: one
 * that is slow keeps it full, and writes cut at records' ends leave most
 * of its slots a little short of full.  The
 * write end is non-blocking here, so what would have blocked shows as a
 * write that took less than it was given. */
typedef struct cut_log {
	const uint64_t *ends; /* each record's end, in bytes from the first */
	size_t n, i;
	uint64_t expect; /* what the last write was given to reach */
	mq_writer_t *w;
	int short_writes; /* writes that took less than they were given */
	int told_left;    /* calls saying what left (upto = written), before a wait */
} cut_log_t;

static int cut_at_record(void *ctx, uint64_t *upto, mq_err_t *err)
{
	(void)err;
	cut_log_t *c = ctx;
	uint64_t out = mq_writer_written(c->w);
	if (c->expect && out != c->expect)
		c->short_writes++;
	if (*upto == out)
		c->told_left++;
	while (c->i < c->n && c->ends[c->i] <= out)
		c->i++;
	uint64_t end = 0;
	for (size_t j = c->i; j < c->n && c->ends[j] <= *upto; j++)
		end = c->ends[j];
	if (end > out)
		*upto = end;
	c->expect = *upto;
	return 0;
}

/* Lines of many lengths: record i has REC_LEN(i) bytes and its newline. */
#define REC_LEN(i) ((i) * 7 % 390 + 10)

static uint64_t lengths(uint64_t *ends, size_t n)
{
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++)
		ends[i] = total += REC_LEN(i) + 1;
	return total;
}

/* Writes the lines to fd through a writer sized to it, each write cut at
 * a record's end; closes fd, checks the reader (pid) exited 0, and
 * returns what the write hook saw. */
static cut_log_t write_lengths(int fd, const uint64_t *ends, size_t n, pid_t pid)
{
	static char line[512];
	mq_err_t err;
	mq_rec_t r;
	mq_writer_t *w = writer(fd, MQ_FMT_LINES, NULL, 0);
	mq_writer_on_wait(w, -1, NULL, NULL);
	cut_log_t c = {.ends = ends, .n = n, .w = w};
	mq_writer_on_write(w, cut_at_record, &c);
	memset(line, 'y', sizeof line);
	rec_init(&r);
	r.value = (const uint8_t *)line;
	for (size_t i = 0; i < n; i++) {
		r.value_len = REC_LEN(i);
		assert_int_equal(mq_writer_put_rec(w, &r, &err), 0);
	}
	assert_int_equal(mq_writer_flush(w, &err), 0);
	assert_int_equal(mq_writer_written(w), ends[n - 1]);
	mq_writer_free(w);
	close(fd);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	return c;
}

static void test_writer_pipe_never_blocks(void **state)
{
	(void)state;
	enum { NREC = 12000 };
	int p[2];
	static uint64_t ends[NREC];
	assert_int_equal(pipe(p), 0);
	uint64_t total = lengths(ends, NREC);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* 97 bytes at a time, pausing now and then */
		close(p[1]);
		uint64_t got = 0, paused = 0;
		char b[97];
		ssize_t k;
		while ((k = read(p[0], b, sizeof b)) > 0)
			if ((got += (uint64_t)k) - paused >= 65536) {
				paused = got;
				usleep(2000);
			}
		_exit(k == 0 && got == total ? 0 : 1);
	}
	close(p[0]);
	/* 256 slots, as mq-dedup and mq-sub ask for: a small error per slot adds up */
	assert_true(fcntl(p[1], F_SETPIPE_SZ, 1 << 20) > 0);
	assert_int_equal(fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK), 0);
	assert_int_equal(write_lengths(p[1], ends, NREC, pid).short_writes, 0);
}

/* To a socket (stdout of a child of libuv or socat): sent a piece at a
 * time without waiting in send(2); a send that finds less room than it
 * was given tells the hook what left (upto = written) before waiting.
 * Every byte arrives, in order, past a reader slower than the writer. */
static void test_writer_socket(void **state)
{
	(void)state;
	enum { NREC = 4000 };
	int sv[2];
	static uint64_t ends[NREC];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	int small = 16384;
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
	(void)lengths(ends, NREC);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* checks each line's length, pausing now and then */
		close(sv[1]);
		FILE *in = fdopen(sv[0], "r");
		char *l = NULL;
		size_t cap = 0, i = 0;
		ssize_t k;
		while ((k = getline(&l, &cap, in)) > 0) {
			if (i >= NREC || (size_t)k != REC_LEN(i) + 1 || l[k - 1] != '\n')
				_exit(1);
			if (++i % 500 == 0)
				usleep(2000);
		}
		_exit(i == NREC ? 0 : 2);
	}
	close(sv[0]);
	/* sends come up short here; each is followed by word of what left */
	cut_log_t c = write_lengths(sv[1], ends, NREC, pid);
	assert_true(c.short_writes > 0);
	assert_int_equal(c.told_left, c.short_writes);
}

/* ---- base64 ---- */

static void test_base64(void **state)
{
	(void)state;
	static const char *vec[][2] = {
		{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
		{"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
	};
	char enc[16];
	uint8_t dec[16];
	for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
		size_t n = strlen(vec[i][0]);
		assert_int_equal(mq_base64_enc((const uint8_t *)vec[i][0], n, enc), strlen(vec[i][1]));
		assert_memory_equal(enc, vec[i][1], strlen(vec[i][1]));
		assert_int_equal(mq_base64_dec(vec[i][1], strlen(vec[i][1]), dec), n);
		assert_memory_equal(dec, vec[i][0], n);
	}
	/* All 256 byte values, and decoding in place. */
	uint8_t all[256], buf[344];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	assert_int_equal(mq_base64_enc(all, 256, (char *)buf), 344);
	assert_int_equal(mq_base64_dec((const char *)buf, 344, buf), 256);
	assert_memory_equal(buf, all, 256);
	static const char *bad[] = {"Zg=", "Zg", "Zg=a", "Z===", "====", "Zm9v\n", "Zm=v",
				    "=AAA", "Zm9-", "Zm9_", "Zm 9", "Zg==Zg==", "Zm9v====", "\xc3\xa9xx"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (mq_base64_dec(bad[i], strlen(bad[i]), dec) != -1)
			fail_msg("'%s' decoded", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fmt_parse),
		cmocka_unit_test(test_reader_rejects),
		cmocka_unit_test(test_reader_trickle),
		cmocka_unit_test(test_reader_consumed),
		cmocka_unit_test(test_lines_basic),
		cmocka_unit_test(test_lines_long),
		cmocka_unit_test(test_max_record),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_key_delim),
		cmocka_unit_test(test_split_reads),
		cmocka_unit_test(test_forked_small_writes),
		cmocka_unit_test(test_nonblocking),
		cmocka_unit_test(test_read_interrupted_and_errors),
		cmocka_unit_test(test_json_parse),
		cmocka_unit_test(test_json_errors),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_json_exact),
		cmocka_unit_test(test_msgpack_roundtrip),
		cmocka_unit_test(test_msgpack_foreign),
		cmocka_unit_test(test_rec_delim),
		cmocka_unit_test(test_origin),
		cmocka_unit_test(test_template),
		cmocka_unit_test(test_template_iso),
		cmocka_unit_test(test_json_repeated_headers),
		cmocka_unit_test(test_template_rejects),
		cmocka_unit_test(test_passthrough),
		cmocka_unit_test(test_writer_buffering),
		cmocka_unit_test(test_writer_epipe),
		cmocka_unit_test(test_writer_on_write),
		cmocka_unit_test(test_writer_pipe_never_blocks),
		cmocka_unit_test(test_writer_socket),
		cmocka_unit_test(test_base64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
