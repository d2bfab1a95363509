/*
 * record.c -- records on standard input and output: lines, NUL-separated
 * chunks, JSON and msgpack envelopes, and -F templates.  Every filter and
 * client goes through here, so it is a hot path: mq-sub must write
 * millions of records a second and mq-dedup pass millions through.
 *
 * Reader invariants: buf[start, end) holds bytes read but not yet handed
 * out; buf[start, scan) is known to hold no terminator, so a long record
 * arriving in many reads is scanned once, not once per read.  Records are
 * views into buf (or, for JSON strings with escapes, base64 and topics,
 * into the scratch buffer, which is sized once per line to twice its
 * length so that decoding never reallocates mid-record).  Only fill()
 * moves bytes: it rewinds for free when everything was consumed and
 * memmoves the unconsumed tail only when little room is left at the end
 * or more than half of buf is consumed, so a view handed out by next()
 * stays valid until the next call.  buf grows (doubling) only while a
 * single record does not fit, up to max_record + 1 bytes.  There is no
 * allocation per record in steady state: msgpack objects live in one
 * zone that is cleared, not freed, for each record.
 *
 * msgpack input is framed by a small walker of our own that reads only
 * type bytes and lengths, resumes where it stopped when more input comes,
 * and allocates nothing; msgpack_unpack then decodes each complete
 * envelope once.  The walker is what lets an over-long envelope be
 * skipped exactly (it walks on through the skipped bytes), and it keeps
 * a corrupt container count from reaching msgpack's allocator, which
 * reserves count * 24 bytes before the elements arrive.
 *
 * Writer invariants: buf[0, len) is output not yet written; it is
 * flushed when a piece does not fit and after any record that leaves at
 * least `thresh` bytes buffered.  A piece larger than half the buffer is
 * written directly after a flush, so the buffer never grows.  Templates
 * are compiled once into a list of ops over a literal pool.
 *
 * JSON strings are scanned eight bytes at a time for the bytes that end
 * a plain run ('"', '\\', controls), both when parsing and when escaping:
 * most values have no escape at all and become a view or one memcpy.
 *
 * Decisions: JSON input strings are taken as bytes (no UTF-8 check), so
 * other producers' Latin-1 passes through; our output is always valid
 * UTF-8 (invalid key/value/id go to *_b64, invalid header values to
 * headers_b64, invalid bytes in names and topics become U+FFFD).
 * Unknown JSON fields are skipped with a depth limit of 64.  Integers
 * (partition, offset, timestamp) must be JSON integers: "1.0" or "1e3"
 * is refused, so a float never rounds an offset.  When a field appears
 * twice the last one wins.  A filter passes a record through as its raw
 * bytes when its format is unchanged (see mq_writer_put_rec): cheaper
 * than formatting again, and unknown envelope fields survive.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#define READ_BUF_INIT ((size_t)1 << 20)
#define READ_MIN ((size_t)64 << 10)      /* compact or grow when less room than this */
#define MAX_RECORD_DEFAULT ((size_t)64 << 20)
#define WRITE_THRESH_DEFAULT ((size_t)256 << 10)
#define WRITE_CAP_MIN ((size_t)64 << 10)
#define JSON_MAX_DEPTH 64
#define JSON_CHUNK 4096 /* input bytes escaped per room check (6x out at most) */
#define B64_CHUNK 3072  /* multiple of 3: no padding mid-stream */
#define MP_WALK_DEPTH 256 /* msgpack framing; msgpack_unpack itself takes 32 */

static const uint8_t empty_value[1];

int mq_fmt_parse(const char *s, mq_fmt_t *fmt, mq_err_t *err)
{
	static const struct {
		const char *name;
		mq_fmt_t fmt;
	} names[] = {
		{"lines", MQ_FMT_LINES}, {"line", MQ_FMT_LINES}, {"text", MQ_FMT_LINES},
		{"nul", MQ_FMT_NUL},     {"json", MQ_FMT_JSON},  {"msgpack", MQ_FMT_MSGPACK},
	};
	for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++) {
		if (strcmp(s, names[i].name) == 0) {
			*fmt = names[i].fmt;
			return 0;
		}
	}
	return mq_err_set(err, MQ_EINVAL, "format '%.200s': unknown (use lines, nul, json or msgpack)",
			  s ? s : "");
}

static void fd_name(char *out, size_t n, const char *given, int fd, int fd_std, const char *std)
{
	if (given)
		snprintf(out, n, "%s", given);
	else if (fd == fd_std)
		snprintf(out, n, "%s", std);
	else
		snprintf(out, n, "fd %d", fd);
}

/* ---- base64 ---- */

static const char b64_alphabet[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* value + 1 for the 64 letters of the alphabet, 0 for any other byte
 * ('=' included), so that the table needs no filler. */
static const uint8_t b64_value[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7,
	['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14,
	['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21,
	['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28,
	['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35,
	['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
	['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49,
	['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
	['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63,
	['/'] = 64,
};

size_t mq_base64_enc(const uint8_t *in, size_t n, char *out)
{
	char *o = out;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		o[0] = b64_alphabet[v >> 18];
		o[1] = b64_alphabet[(v >> 12) & 63];
		o[2] = b64_alphabet[(v >> 6) & 63];
		o[3] = b64_alphabet[v & 63];
		o += 4;
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		o[0] = b64_alphabet[v >> 18];
		o[1] = b64_alphabet[(v >> 12) & 63];
		o[2] = o[3] = '=';
		o += 4;
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		o[0] = b64_alphabet[v >> 18];
		o[1] = b64_alphabet[(v >> 12) & 63];
		o[2] = b64_alphabet[(v >> 6) & 63];
		o[3] = '=';
		o += 4;
	}
	return (size_t)(o - out);
}

/* Strict: length a multiple of 4, '=' only as one or two final pad
 * characters, nothing outside the alphabet (no whitespace).  out may be
 * in (decoding in place only ever writes behind what it reads). */
long mq_base64_dec(const char *in, size_t n, uint8_t *out)
{
	const uint8_t *s = (const uint8_t *)in;
	uint8_t *o = out;
	if (n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t a = b64_value[s[i]], b = b64_value[s[i + 1]];
		uint32_t c = b64_value[s[i + 2]], d = b64_value[s[i + 3]];
		if (a && b && c && d) {
			uint32_t v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
			o[0] = (uint8_t)(v >> 16);
			o[1] = (uint8_t)(v >> 8);
			o[2] = (uint8_t)v;
			o += 3;
			continue;
		}
		/* Padding: only in the last quad, after two or three letters. */
		if (i + 4 != n || !a || !b || s[i + 3] != '=')
			return -1;
		uint32_t v = (a - 1) << 18 | (b - 1) << 12;
		if (c) {
			v |= (c - 1) << 6;
			o[0] = (uint8_t)(v >> 16);
			o[1] = (uint8_t)(v >> 8);
			o += 2;
		} else if (s[i + 2] == '=') {
			*o++ = (uint8_t)(v >> 16);
		} else {
			return -1;
		}
	}
	return (long)(o - out);
}

/* ---- eight bytes at a time ---- */

/* JSON strings are scanned for '"', '\\' and control bytes a word at a
 * time (the "has a zero byte" trick from Bit Twiddling Hacks): exact
 * about whether a word holds one, and the byte loop finds which. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t load8(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint64_t json_special8(uint64_t v)
{
	uint64_t q = v ^ (ONES * '"'), b = v ^ (ONES * '\\');
	return (((v - ONES * 0x20) & ~v) | ((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS;
}

/* Length of the leading run of p[0..n) that needs no JSON escape. */
static inline size_t json_plain_run(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (n - i >= 8 && !json_special8(load8(p + i)))
		i += 8;
	while (i < n && p[i] >= 0x20 && p[i] != '"' && p[i] != '\\')
		i++;
	return i;
}

/* Field names and literals are short: a byte loop beats a call to memcmp here. */
static inline int same(const uint8_t *s, const char *lit, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != (uint8_t)lit[i])
			return 0;
	return 1;
}

/* ---- UTF-8 ---- */

static int utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (n - i >= 8) {
			uint64_t v;
			memcpy(&v, p + i, 8);
			if (!(v & 0x8080808080808080ull)) {
				i += 8;
				continue;
			}
		}
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t l = mq_utf8_seq(p + i, n - i);
		if (!l)
			return 0;
		i += l;
	}
	return 1;
}

/* ==== reader ==== */

struct mq_reader {
	int fd;
	mq_fmt_t fmt;
	uint8_t term;     /* '\n' for lines and json, '\0' for nul */
	uint8_t *rdelim;  /* lines: a record delimiter of several bytes (else term) */
	size_t rdelim_len;
	int eof;          /* read(2) returned 0 */
	int trickle;      /* the last read: short, and less than a page */
	int skipping;     /* dropping the rest of an over-long record */
	int dead;         /* msgpack: lost sync, dropping all input */
	uint8_t *buf;
	size_t cap, start, end, scan;
	size_t limit;     /* buf never grows past this */
	size_t max_record;
	uint8_t *delim;
	size_t delim_len;
	uint64_t count;   /* records returned */
	uint64_t got;     /* bytes read from fd */
	uint64_t recno;   /* records seen, bad ones included: for messages */
	mq_buf_t scratch;
	msgpack_zone *zone;
	size_t mp_pos;    /* msgpack framing: bytes of this envelope walked */
	int mp_depth;     /* containers open, the envelope itself included */
	uint64_t mp_left[MP_WALK_DEPTH]; /* objects still to walk in each */
	char name[128];
};

static int json_envelope(mq_reader_t *r, const uint8_t *s, size_t len, mq_rec_t *rec, mq_err_t *err);
static int next_msgpack(mq_reader_t *r, mq_rec_t *rec, mq_err_t *err);
static void walk_reset(mq_reader_t *r);

int mq_reader_new(int fd, const mq_reader_opts_t *o, mq_reader_t **out, mq_err_t *err)
{
	mq_reader_t *r;
	*out = NULL;
	if (o->fmt != MQ_FMT_LINES && o->fmt != MQ_FMT_NUL && o->fmt != MQ_FMT_JSON &&
	    o->fmt != MQ_FMT_MSGPACK)
		return mq_err_set(err, MQ_EINVAL, "input format: only lines, nul, json and msgpack can be read");
	if (o->key_delim && !o->key_delim[0])
		return mq_err_set(err, MQ_EINVAL, "key delimiter: empty (give at least one character)");
	if (o->key_delim && (o->fmt == MQ_FMT_JSON || o->fmt == MQ_FMT_MSGPACK))
		return mq_err_set(err, MQ_EINVAL,
				  "key delimiter: only for lines and nul input (envelopes carry their key)");
	if (o->rec_delim && (o->fmt != MQ_FMT_LINES || o->rec_delim_len == 0))
		return mq_err_set(err, MQ_EINVAL, "record delimiter: %s",
				  o->rec_delim_len ? "only for lines input" : "empty (give at least one byte)");
	if (!(r = calloc(1, sizeof *r)))
		goto nomem;
	r->fd = fd;
	r->fmt = o->fmt;
	r->term = o->fmt == MQ_FMT_NUL ? '\0' : '\n';
	r->max_record = o->max_record ? o->max_record : MAX_RECORD_DEFAULT;
	if (r->max_record > (size_t)PTRDIFF_MAX / 4)
		r->max_record = (size_t)PTRDIFF_MAX / 4; /* scratch is twice a line */
	r->limit = r->max_record + 1 > READ_BUF_INIT ? r->max_record + 1 : READ_BUF_INIT;
	r->cap = READ_BUF_INIT;
	fd_name(r->name, sizeof r->name, o->name, fd, 0, "standard input");
	if (!(r->buf = malloc(r->cap)))
		goto nomem;
	if (o->rec_delim && o->rec_delim_len == 1) {
		r->term = *(const uint8_t *)o->rec_delim;
	} else if (o->rec_delim) {
		if (!(r->rdelim = malloc(o->rec_delim_len)))
			goto nomem;
		memcpy(r->rdelim, o->rec_delim, o->rec_delim_len);
		r->rdelim_len = o->rec_delim_len;
	}
	if (o->key_delim) {
		r->delim_len = strlen(o->key_delim);
		if (!(r->delim = (uint8_t *)strdup(o->key_delim)))
			goto nomem;
	}
	if (o->fmt == MQ_FMT_MSGPACK && !(r->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE)))
		goto nomem;
	walk_reset(r);
	*out = r;
	return 0;
nomem:
	mq_reader_free(r);
	return mq_err_set(err, MQ_ENOMEM, "reader: out of memory");
}

void mq_reader_free(mq_reader_t *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r->delim);
	free(r->rdelim);
	mq_buf_free(&r->scratch);
	if (r->zone)
		msgpack_zone_free(r->zone);
	free(r);
}

int mq_reader_trickle(const mq_reader_t *r)
{
	return r->trickle;
}

int mq_reader_eof(const mq_reader_t *r)
{
	return r->eof && r->start == r->end;
}

uint64_t mq_reader_count(const mq_reader_t *r)
{
	return r->count;
}

uint64_t mq_reader_consumed(const mq_reader_t *r)
{
	return r->got - (r->end - r->start);
}

/* Room at the end of buf for a read: rewind, compact or grow. */
static int make_room(mq_reader_t *r, mq_err_t *err)
{
	size_t pending = r->end - r->start;
	if (pending == 0) {
		r->start = r->end = r->scan = 0;
	} else if (r->start > 0 && (r->cap - r->end < READ_MIN || r->start >= r->cap / 2)) {
		memmove(r->buf, r->buf + r->start, pending);
		r->scan -= r->start;
		r->end = pending;
		r->start = 0;
	}
	if (r->cap - r->end >= READ_MIN || r->cap >= r->limit) {
		if (r->end < r->cap)
			return 0;
		return mq_err_set(err, MQ_ETOOBIG, "record %llu: longer than the limit of %zu bytes",
				  (unsigned long long)r->recno + 1, r->max_record);
	}
	size_t cap = r->cap > r->limit / 2 ? r->limit : r->cap * 2;
	uint8_t *p = realloc(r->buf, cap);
	if (!p)
		return mq_err_set(err, MQ_ENOMEM, "reading %s: out of memory for a record of %zu bytes",
				  r->name, pending);
	r->buf = p;
	r->cap = cap;
	return 0;
}

long mq_reader_fill(mq_reader_t *r, mq_err_t *err)
{
	if (r->eof)
		return 0;
	int rc = make_room(r, err);
	if (rc < 0)
		return rc;
	size_t room = r->cap - r->end;
	ssize_t n = read(r->fd, r->buf + r->end, room);
	r->trickle = n > 0 && (size_t)n < room && n < 4096;
	if (n > 0) {
		r->end += (size_t)n;
		r->got += (uint64_t)n;
		return (long)n;
	}
	if (n == 0) {
		r->eof = 1;
		return 0;
	}
	if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
		return mq_err_set(err, MQ_EAGAIN, "reading %s: %s", r->name,
				  errno == EINTR ? "interrupted" : "no data yet");
	return mq_err_sys(err, "reading %s", r->name);
}

static void rec_clear(mq_rec_t *rec, mq_fmt_t fmt)
{
	rec->key = NULL;
	rec->key_len = 0;
	rec->value = empty_value;
	rec->value_len = 0;
	rec->id = NULL;
	rec->id_len = 0;
	rec->nheaders = 0;
	rec->topic = NULL;
	rec->partition = -1;
	rec->offset = -1;
	rec->timestamp = 0;
	rec->fmt = fmt;
	rec->producer = NULL;
	rec->producer_len = 0;
	rec->has_seq = 0;
}

static int too_big(mq_reader_t *r, mq_err_t *err)
{
	return mq_err_set(err, MQ_ETOOBIG, "record %llu: longer than the limit of %zu bytes; skipped",
			  (unsigned long long)r->recno, r->max_record);
}


/* The terminator in buf[from, r->end), or NULL. */
static uint8_t *find_term(mq_reader_t *r, size_t from)
{
	if (!r->rdelim)
		return memchr(r->buf + from, r->term, r->end - from);
	return memmem(r->buf + from, r->end - from, r->rdelim, r->rdelim_len);
}

/* Where to look again once more is read, after a search of [from, end)
 * found nothing: a terminator of several bytes may have begun there. */
static size_t rescan_from(const mq_reader_t *r, size_t from)
{
	size_t keep = r->rdelim ? r->rdelim_len - 1 : 0;
	return r->end - from > keep ? r->end - keep : from;
}

/* lines, nul and json: cut at the terminator. */
static int next_line(mq_reader_t *r, mq_rec_t *rec, mq_err_t *err)
{
	uint8_t *b = r->buf;
	size_t tlen = r->rdelim ? r->rdelim_len : 1;
	if (r->skipping) {
		uint8_t *q = find_term(r, r->start);
		if (!q) {
			r->start = r->scan = r->eof ? r->end : rescan_from(r, r->start);
			if (r->eof)
				r->skipping = 0;
			return 0;
		}
		r->start = r->scan = (size_t)(q - b) + tlen;
		r->skipping = 0;
	}
	if (r->start == r->end)
		return 0;
	const uint8_t *s = b + r->start;
	size_t len, raw_len;
	uint8_t *q = find_term(r, r->scan);
	if (q) {
		len = (size_t)(q - s);
		raw_len = len + tlen;
	} else {
		r->scan = rescan_from(r, r->start);
		if (r->end - r->start > r->max_record) {
			r->recno++;
			/* Keep what may be the start of a terminator of several
			 * bytes: the skip must find it once the rest is read. */
			r->start = r->scan = r->eof ? r->end : rescan_from(r, r->start);
			r->skipping = !r->eof;
			return too_big(r, err);
		}
		if (!r->eof)
			return 0;
		len = raw_len = r->end - r->start;
	}
	r->start += raw_len;
	r->scan = r->start;
	r->recno++;
	if (len > r->max_record)
		return too_big(r, err);
	rec->raw = s;
	rec->raw_len = raw_len;
	if (r->fmt == MQ_FMT_LINES && (r->rdelim || r->term != '\n'))
		rec->raw = NULL; /* a writer of lines would not end it the same way */
	if (r->fmt == MQ_FMT_JSON) {
		int rc = json_envelope(r, s, len, rec, err);
		if (rc < 0)
			return rc;
		r->count++;
		return 1;
	}
	rec->id = NULL;
	rec->id_len = 0;
	rec->nheaders = 0;
	rec->topic = NULL;
	rec->partition = -1;
	rec->offset = -1;
	rec->timestamp = 0;
	rec->fmt = r->fmt;
	rec->producer = NULL;
	rec->producer_len = 0;
	rec->has_seq = 0;
	const uint8_t *d = NULL;
	if (r->delim)
		d = r->delim_len == 1 ? memchr(s, r->delim[0], len) : memmem(s, len, r->delim, r->delim_len);
	if (d) {
		rec->key = s;
		rec->key_len = (size_t)(d - s);
		rec->value = d + r->delim_len;
		rec->value_len = len - rec->key_len - r->delim_len;
	} else {
		rec->key = NULL;
		rec->key_len = 0;
		rec->value = s;
		rec->value_len = len;
	}
	r->count++;
	return 1;
}

int mq_reader_next(mq_reader_t *r, mq_rec_t *rec, mq_err_t *err)
{
	if (r->fmt == MQ_FMT_MSGPACK)
		return next_msgpack(r, rec, err);
	return next_line(r, rec, err);
}

int mq_reader_get(mq_reader_t *r, mq_rec_t *rec, mq_err_t *err)
{
	for (;;) {
		int rc = mq_reader_next(r, rec, err);
		if (rc != 0)
			return rc;
		if (mq_reader_eof(r))
			return 0;
		long n = mq_reader_fill(r, err);
		if (n == -MQ_EAGAIN && errno != EINTR) { /* non-blocking fd */
			struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
			if (poll(&pfd, 1, -1) >= 0)
				continue;
			if (errno != EINTR)
				return mq_err_sys(err, "waiting for %s", r->name);
			return mq_err_set(err, MQ_EAGAIN, "reading %s: interrupted", r->name);
		}
		if (n < 0)
			return (int)n;
	}
}

/* ---- JSON envelopes ---- */

/* A strict parser for one line.  Strings without escapes are views into
 * the line; others are decoded into scratch, which the caller sized to
 * twice the line: a decoded string never exceeds its source, base64 of
 * it adds three quarters more, and a topic's NUL fits in its quotes. */
typedef struct jp {
	const uint8_t *p, *end, *base;
	uint8_t *out;        /* next free byte of scratch */
	uint8_t *scratch;
	const uint8_t *at;   /* where the error is */
	char msg[160];
} jp_t;

static int jfail(jp_t *j, const uint8_t *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int jfail(jp_t *j, const uint8_t *at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(j->msg, sizeof j->msg, fmt, ap);
	va_end(ap);
	j->at = at;
	return -1;
}

static inline void jws(jp_t *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The four hex digits at p (p + 4 <= end checked by the caller). */
static long hex4(const uint8_t *p)
{
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

static uint8_t *put_utf8(uint8_t *o, uint32_t cp)
{
	if (cp < 0x80) {
		*o++ = (uint8_t)cp;
	} else if (cp < 0x800) {
		*o++ = (uint8_t)(0xc0 | cp >> 6);
		*o++ = (uint8_t)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*o++ = (uint8_t)(0xe0 | cp >> 12);
		*o++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (uint8_t)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (uint8_t)(0xf0 | cp >> 18);
		*o++ = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		*o++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (uint8_t)(0x80 | (cp & 0x3f));
	}
	return o;
}

/* The escape sequence at p (just after the backslash); writes its bytes
 * at *o and returns the position after it, or NULL after jfail. */
static const uint8_t *junescape(jp_t *j, const uint8_t *p, uint8_t **o)
{
	static const uint8_t simple[256] = {
		['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b',
		['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t',
	};
	if (p == j->end) {
		jfail(j, p, "unterminated string");
		return NULL;
	}
	if (simple[*p]) {
		*(*o)++ = simple[*p];
		return p + 1;
	}
	if (*p != 'u') {
		jfail(j, p - 1, "invalid escape '\\%c' in a string", *p >= 0x20 && *p < 0x7f ? *p : '?');
		return NULL;
	}
	long cp = j->end - p >= 5 ? hex4(p + 1) : -1;
	if (cp < 0) {
		jfail(j, p - 1, "invalid \\u escape (want four hex digits)");
		return NULL;
	}
	p += 5;
	if (cp >= 0xdc00 && cp <= 0xdfff) {
		jfail(j, p - 6, "invalid \\u escape (low surrogate without a high one)");
		return NULL;
	}
	if (cp >= 0xd800 && cp <= 0xdbff) {
		long lo = j->end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
		if (lo < 0xdc00 || lo > 0xdfff) {
			jfail(j, p - 6, "invalid \\u escape (high surrogate without a low one)");
			return NULL;
		}
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		p += 6;
	}
	*o = put_utf8(*o, (uint32_t)cp);
	return p;
}

/* String at j->p (on its opening quote). */
static int jstring(jp_t *j, const uint8_t **out, size_t *outlen)
{
	const uint8_t *s = j->p + 1, *e = j->end;
	const uint8_t *p = s + json_plain_run(s, (size_t)(e - s));
	if (p < e && *p == '"') {
		*out = s;
		*outlen = (size_t)(p - s);
		j->p = p + 1;
		return 0;
	}
	uint8_t *o0 = j->out, *o = o0;
	memcpy(o, s, (size_t)(p - s));
	o += p - s;
	for (;;) {
		if (p == e)
			return jfail(j, j->p, "unterminated string");
		uint8_t c = *p;
		if (c == '"')
			break;
		if (c < 0x20)
			return jfail(j, p, "control character 0x%02x in a string (escape it)", c);
		if (c == '\\') {
			if (!(p = junescape(j, p + 1, &o)))
				return -1;
			continue;
		}
		const uint8_t *q = p + json_plain_run(p, (size_t)(e - p));
		memcpy(o, p, (size_t)(q - p));
		o += q - p;
		p = q;
	}
	j->out = o;
	j->p = p + 1;
	*out = o0;
	*outlen = (size_t)(o - o0);
	return 0;
}

/* A string made NUL-terminated in scratch. */
static int jstring_z(jp_t *j, const char **out, const char *field)
{
	const uint8_t *s;
	size_t n;
	const uint8_t *at = j->p;
	if (jstring(j, &s, &n) < 0)
		return -1;
	if (memchr(s, 0, n))
		return jfail(j, at, "%s: contains a NUL character", field);
	if (s != j->out - n) { /* a view into the line: copy it */
		memcpy(j->out, s, n);
		s = j->out;
		j->out += n;
	}
	*j->out++ = '\0';
	*out = (const char *)s;
	return 0;
}

static int jlit(jp_t *j, const char *word)
{
	size_t n = word[0] == 'f' ? 5 : 4; /* true, null or false */
	if ((size_t)(j->end - j->p) < n || !same(j->p, word, n))
		return jfail(j, j->p, "expected a value");
	j->p += n;
	return 0;
}

static int is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Any JSON number (for skipped fields). */
static int jnumber(jp_t *j)
{
	const uint8_t *p = j->p, *e = j->end;
	if (p < e && *p == '-')
		p++;
	if (p == e || !is_digit(*p))
		return jfail(j, j->p, "expected a value");
	if (*p == '0')
		p++;
	else
		while (p < e && is_digit(*p))
			p++;
	if (p < e && *p == '.') {
		if (++p == e || !is_digit(*p))
			return jfail(j, p, "expected a digit after '.'");
		while (p < e && is_digit(*p))
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p == e || !is_digit(*p))
			return jfail(j, p, "expected a digit in the exponent");
		while (p < e && is_digit(*p))
			p++;
	}
	j->p = p;
	return 0;
}

/* An integer field: 1 with *v set, 0 for null. */
static int jint(jp_t *j, int64_t *v, const char *field)
{
	const uint8_t *p = j->p, *e = j->end, *at = j->p;
	if (p < e && *p == 'n')
		return jlit(j, "null") < 0 ? -1 : 0;
	int neg = p < e && *p == '-';
	p += neg;
	if (p == e || !is_digit(*p))
		return jfail(j, at, "%s: expected an integer", field);
	if (*p == '0' && p + 1 < e && is_digit(p[1]))
		return jfail(j, at, "%s: leading zero in a number", field);
	uint64_t u = 0, max = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; p < e && is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (u > (max - d) / 10)
			return jfail(j, at, "%s: integer out of range", field);
		u = u * 10 + d;
	}
	if (p < e && (*p == '.' || *p == 'e' || *p == 'E'))
		return jfail(j, at, "%s: expected an integer, not a fraction or exponent", field);
	*v = neg ? (int64_t)(0 - u) : (int64_t)u;
	j->p = p;
	return 1;
}

/* A non-negative integer below 2^64: its digits in *t (views into the
 * input) and, with v, its value. */
static int juint_text(jp_t *j, const uint8_t **t, size_t *tn, uint64_t *v, const char *field)
{
	const uint8_t *p = j->p, *e = j->end, *at = j->p;
	while (p < e && is_digit(*p))
		p++;
	uint64_t u;
	if (p == at)
		return jfail(j, at, "%s: expected a non-negative integer", field);
	if (p < e && (*p == '.' || *p == 'e' || *p == 'E'))
		return jfail(j, at, "%s: expected an integer, not a fraction or exponent", field);
	if (!mq_parse_u64_dec(at, (size_t)(p - at), &u))
		return jfail(j, at, "%s: %s", field, *at == '0' ? "leading zero in a number" : "integer out of range");
	if (v)
		*v = u;
	*t = at;
	*tn = (size_t)(p - at);
	j->p = p;
	return 0;
}

static int jexpect(jp_t *j, uint8_t c)
{
	jws(j);
	if (j->p == j->end || *j->p != c)
		return jfail(j, j->p, "expected '%c'", c);
	j->p++;
	return 0;
}

/* Skip any value (unknown fields), nesting at most JSON_MAX_DEPTH. */
static int jskip(jp_t *j, int depth)
{
	const uint8_t *s;
	size_t n;
	jws(j);
	if (j->p == j->end)
		return jfail(j, j->p, "expected a value");
	switch (*j->p) {
	case '"':
		return jstring(j, &s, &n);
	case 't':
		return jlit(j, "true");
	case 'f':
		return jlit(j, "false");
	case 'n':
		return jlit(j, "null");
	case '{':
	case '[': {
		uint8_t close = *j->p == '{' ? '}' : ']';
		if (depth >= JSON_MAX_DEPTH)
			return jfail(j, j->p, "nested more than %d deep", JSON_MAX_DEPTH);
		j->p++;
		jws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		for (;;) {
			if (close == '}') {
				jws(j);
				if (j->p == j->end || *j->p != '"')
					return jfail(j, j->p, "expected a field name in double quotes");
				if (jstring(j, &s, &n) < 0 || jexpect(j, ':') < 0)
					return -1;
			}
			if (jskip(j, depth + 1) < 0)
				return -1;
			jws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == close) {
				j->p++;
				return 0;
			}
			return jfail(j, j->p, "expected ',' or '%c'", close);
		}
	}
	default:
		return jnumber(j);
	}
}

/* A bytes field: a string, or base64 in a string when b64; null = absent. */
static int jbytes(jp_t *j, const uint8_t **out, size_t *n, int b64, const char *field)
{
	const uint8_t *at = j->p;
	if (j->p < j->end && *j->p == 'n') {
		*out = NULL;
		*n = 0;
		return jlit(j, "null");
	}
	if (j->p == j->end || *j->p != '"')
		return jfail(j, at, "%s: expected a string", field);
	if (jstring(j, out, n) < 0)
		return -1;
	if (!b64)
		return 0;
	long d = mq_base64_dec((const char *)*out, *n, j->out);
	if (d < 0)
		return jfail(j, at, "%s: invalid base64", field);
	*out = j->out;
	*n = (size_t)d;
	j->out += d;
	return 0;
}

static int jheaders(jp_t *j, mq_rec_t *rec, int b64, const char *field)
{
	if (j->p < j->end && *j->p == 'n')
		return jlit(j, "null");
	if (j->p == j->end || *j->p != '{')
		return jfail(j, j->p, "%s: expected an object of strings", field);
	j->p++;
	jws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		jws(j);
		if (j->p == j->end || *j->p != '"')
			return jfail(j, j->p, "%s: expected a header name in double quotes", field);
		if (rec->nheaders == MQ_REC_MAX_HEADERS)
			return jfail(j, j->p, "%s: more than %d headers", field, MQ_REC_MAX_HEADERS);
		mq_header_t *h = &rec->headers[rec->nheaders];
		if (jstring(j, &h->name, &h->name_len) < 0 || jexpect(j, ':') < 0)
			return -1;
		jws(j);
		/* A name given several times is written as an array of its values. */
		int many = j->p < j->end && *j->p == '[';
		if (many) {
			j->p++;
			jws(j);
		}
		for (int first = 1;; first = 0) {
			if (many && first && j->p < j->end && *j->p == ']')
				break;
			if (rec->nheaders == MQ_REC_MAX_HEADERS)
				return jfail(j, j->p, "%s: more than %d headers", field, MQ_REC_MAX_HEADERS);
			mq_header_t *v = &rec->headers[rec->nheaders];
			if (v != h)
				v->name = h->name, v->name_len = h->name_len;
			if (j->p == j->end || *j->p != '"')
				return jfail(j, j->p, "%s: value of '%.*s' must be a string%s", field,
					     (int)(h->name_len > 40 ? 40 : h->name_len), (const char *)h->name,
					     many ? "" : " or an array of strings");
			if (jbytes(j, &v->value, &v->value_len, b64, field) < 0)
				return -1;
			rec->nheaders++;
			if (!many)
				break;
			jws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				jws(j);
				continue;
			}
			if (j->p == j->end || *j->p != ']')
				return jfail(j, j->p, "%s: expected ',' or ']'", field);
			break;
		}
		if (many)
			j->p++;
		jws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return 0;
		}
		return jfail(j, j->p, "%s: expected ',' or '}'", field);
	}
}

#define FIELD_IS(s, n, lit) ((n) == sizeof(lit) - 1 && same((s), (lit), sizeof(lit) - 1))

static int jfield(jp_t *j, const uint8_t *name, size_t n, mq_rec_t *rec)
{
	int rc;
	switch (n ? name[0] : 0) {
	case 't':
		if (FIELD_IS(name, n, "topic")) {
			if (j->p < j->end && *j->p == 'n') {
				rec->topic = NULL;
				return jlit(j, "null");
			}
			if (j->p == j->end || *j->p != '"')
				return jfail(j, j->p, "topic: expected a string");
			return jstring_z(j, &rec->topic, "topic");
		}
		if (FIELD_IS(name, n, "timestamp"))
			return (rc = jint(j, &rec->timestamp, "timestamp")) == 0 ? (rec->timestamp = 0, 0) : rc;
		break;
	case 'p':
		if (FIELD_IS(name, n, "partition"))
			return (rc = jint(j, &rec->partition, "partition")) == 0 ? (rec->partition = -1, 0) : rc;
		if (FIELD_IS(name, n, "producer") && j->p < j->end && is_digit(*j->p))
			return juint_text(j, &rec->producer, &rec->producer_len, NULL, "producer");
		if (FIELD_IS(name, n, "producer") || FIELD_IS(name, n, "producer_b64"))
			return jbytes(j, &rec->producer, &rec->producer_len, n > 8, n > 8 ? "producer_b64" : "producer");
		break;
	case 's':
		if (FIELD_IS(name, n, "seq")) {
			if (j->p < j->end && *j->p == 'n')
				return rec->has_seq = 0, jlit(j, "null");
			const uint8_t *t;
			size_t tn;
			rc = juint_text(j, &t, &tn, &rec->seq, "seq");
			rec->has_seq = rc == 0;
			return rc;
		}
		break;
	case 'o':
		if (FIELD_IS(name, n, "offset"))
			return (rc = jint(j, &rec->offset, "offset")) == 0 ? (rec->offset = -1, 0) : rc;
		break;
	case 'k':
		if (FIELD_IS(name, n, "key"))
			return jbytes(j, &rec->key, &rec->key_len, 0, "key");
		if (FIELD_IS(name, n, "key_b64"))
			return jbytes(j, &rec->key, &rec->key_len, 1, "key_b64");
		break;
	case 'v':
		if (FIELD_IS(name, n, "value") || FIELD_IS(name, n, "value_b64")) {
			rc = jbytes(j, &rec->value, &rec->value_len, n > 5, n > 5 ? "value_b64" : "value");
			if (rc == 0 && !rec->value)
				rec->value = empty_value;
			return rc;
		}
		break;
	case 'i':
		if (FIELD_IS(name, n, "id"))
			return jbytes(j, &rec->id, &rec->id_len, 0, "id");
		if (FIELD_IS(name, n, "id_b64"))
			return jbytes(j, &rec->id, &rec->id_len, 1, "id_b64");
		break;
	case 'h':
		if (FIELD_IS(name, n, "headers"))
			return jheaders(j, rec, 0, "headers");
		if (FIELD_IS(name, n, "headers_b64"))
			return jheaders(j, rec, 1, "headers_b64");
		break;
	}
	return jskip(j, 1);
}

static int jobject(jp_t *j, mq_rec_t *rec)
{
	if (*j->p != '{')
		return jfail(j, j->p, "expected '{'");
	j->p++;
	jws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
	} else {
		for (;;) {
			const uint8_t *name;
			size_t n;
			jws(j);
			if (j->p == j->end || *j->p != '"')
				return jfail(j, j->p, "expected a field name in double quotes");
			if (jstring(j, &name, &n) < 0 || jexpect(j, ':') < 0)
				return -1;
			jws(j);
			if (jfield(j, name, n, rec) < 0)
				return -1;
			jws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == '}') {
				j->p++;
				break;
			}
			return jfail(j, j->p, "expected ',' or '}'");
		}
	}
	jws(j);
	if (j->p != j->end)
		return jfail(j, j->p, "unexpected data after the envelope");
	return 0;
}

static int json_envelope(mq_reader_t *r, const uint8_t *s, size_t len, mq_rec_t *rec, mq_err_t *err)
{
	r->scratch.len = 0;
	if (mq_buf_reserve(&r->scratch, 2 * len + 16) < 0)
		return mq_err_set(err, MQ_ENOMEM, "record %llu: out of memory decoding %zu bytes",
				  (unsigned long long)r->recno, len);
	jp_t j;
	j.p = j.base = s;
	j.end = s + len;
	j.out = j.scratch = r->scratch.p;
	rec_clear(rec, MQ_FMT_JSON);
	jws(&j);
	if (j.p == j.end)
		return mq_err_set(err, MQ_EINVAL, "record %llu: empty line where a JSON envelope was expected",
				  (unsigned long long)r->recno);
	if (jobject(&j, rec) == 0) {
		rec->has_seq &= rec->producer != NULL;
		return 0;
	}
	if (j.at >= j.end)
		return mq_err_set(err, MQ_EINVAL, "record %llu: invalid JSON envelope: %s at the end of the line",
				  (unsigned long long)r->recno, j.msg);
	return mq_err_set(err, MQ_EINVAL, "record %llu: invalid JSON envelope: %s at byte %zu",
			  (unsigned long long)r->recno, j.msg, (size_t)(j.at - j.base) + 1);
}

/* ---- msgpack envelopes ---- */

static int mp_bytes(const msgpack_object *o, const uint8_t **p, size_t *n)
{
	if (o->type == MSGPACK_OBJECT_STR) {
		*p = (const uint8_t *)o->via.str.ptr;
		*n = o->via.str.size;
		return 1;
	}
	if (o->type == MSGPACK_OBJECT_BIN) {
		*p = (const uint8_t *)o->via.bin.ptr;
		*n = o->via.bin.size;
		return 1;
	}
	return 0;
}

/* NULL after setting *why, or the field's value. */
static const char *mp_field(mq_reader_t *r, const uint8_t *name, size_t n, const msgpack_object *v,
			    mq_rec_t *rec)
{
	const uint8_t *p;
	size_t len;
	int nil = v->type == MSGPACK_OBJECT_NIL;
	int64_t *iv = NULL;
	const uint8_t **bp = NULL;
	size_t *bn = NULL;
	if (FIELD_IS(name, n, "topic")) {
		rec->topic = NULL;
		if (nil)
			return NULL;
		if (!mp_bytes(v, &p, &len))
			return "topic: expected a string";
		if (memchr(p, 0, len))
			return "topic: contains a NUL character";
		r->scratch.len = 0;
		if (mq_buf_reserve(&r->scratch, len + 1) < 0)
			return "topic: out of memory";
		memcpy(r->scratch.p, p, len);
		r->scratch.p[len] = '\0';
		rec->topic = (const char *)r->scratch.p;
		return NULL;
	}
	if (FIELD_IS(name, n, "partition"))
		iv = &rec->partition;
	else if (FIELD_IS(name, n, "offset"))
		iv = &rec->offset;
	else if (FIELD_IS(name, n, "timestamp"))
		iv = &rec->timestamp;
	if (iv) {
		if (nil)
			*iv = iv == &rec->timestamp ? 0 : -1;
		else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			*iv = v->via.i64;
		else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= (uint64_t)INT64_MAX)
			*iv = (int64_t)v->via.u64;
		else if (iv == &rec->partition)
			return "partition: expected an integer";
		else
			return iv == &rec->offset ? "offset: expected an integer" : "timestamp: expected an integer";
		return NULL;
	}
	if (FIELD_IS(name, n, "key"))
		bp = &rec->key, bn = &rec->key_len;
	else if (FIELD_IS(name, n, "value"))
		bp = &rec->value, bn = &rec->value_len;
	else if (FIELD_IS(name, n, "id"))
		bp = &rec->id, bn = &rec->id_len;
	if (bp) {
		if (nil) {
			*bp = bp == &rec->value ? empty_value : NULL;
			*bn = 0;
		} else if (!mp_bytes(v, bp, bn)) {
			return bp == &rec->key ? "key: expected bin or str"
			     : bp == &rec->value ? "value: expected bin or str" : "id: expected bin or str";
		}
		return NULL;
	}
	if (FIELD_IS(name, n, "producer")) {
		rec->producer = NULL;
		rec->producer_len = 0;
		if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			int k = snprintf(rec->producer_num, sizeof rec->producer_num, "%" PRIu64, v->via.u64);
			rec->producer = (const uint8_t *)rec->producer_num;
			rec->producer_len = (size_t)k;
		} else if (!nil && !mp_bytes(v, &rec->producer, &rec->producer_len)) {
			return "producer: expected bin, str or a non-negative integer";
		}
		return NULL;
	}
	if (FIELD_IS(name, n, "seq")) {
		rec->has_seq = 0;
		if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			rec->seq = v->via.u64;
			rec->has_seq = 1;
		} else if (!nil) {
			return "seq: expected a non-negative integer";
		}
		return NULL;
	}
	if (FIELD_IS(name, n, "headers")) {
		if (nil)
			return NULL;
		if (v->type != MSGPACK_OBJECT_MAP)
			return "headers: expected a map";
		for (uint32_t i = 0; i < v->via.map.size; i++) {
			if (rec->nheaders == MQ_REC_MAX_HEADERS)
				return "headers: more than 64";
			mq_header_t *h = &rec->headers[rec->nheaders];
			if (!mp_bytes(&v->via.map.ptr[i].key, &h->name, &h->name_len))
				return "headers: a name is not a string";
			if (!mp_bytes(&v->via.map.ptr[i].val, &h->value, &h->value_len))
				return "headers: a value is not bin or str";
			rec->nheaders++;
		}
	}
	return NULL; /* unknown: ignored */
}

static int mp_lost(mq_reader_t *r, mq_err_t *err, const char *why)
{
	r->dead = 1;
	r->start = r->scan = r->end;
	return mq_err_set(err, MQ_EINVAL, "record %llu: %s; the rest of the input is skipped",
			  (unsigned long long)r->recno, why);
}

static void walk_reset(mq_reader_t *r)
{
	r->mp_pos = 0;
	r->mp_depth = 1;
	r->mp_left[0] = 1;
}

static uint32_t be_len(const uint8_t *p, int n)
{
	return n == 1 ? p[0] : n == 2 ? (uint32_t)p[0] << 8 | p[1]
				      : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Header size, length-field size, and what follows (body bytes, or
 * child objects) of the msgpack type byte c; hdr 0 for 0xc1. */
static void mp_type(uint8_t c, size_t *hdr, int *lenb, int *kind)
{
	static const uint8_t fixed[32] = { /* 0xc0..0xdf: header size, 0 = see below */
		1, 0, 1, 1, 2, 3, 5, 3, 4, 6, 5, 9, 2, 3, 5, 9,
		2, 3, 5, 9, 3, 4, 6, 10, 18, 2, 3, 5, 3, 5, 3, 5,
	};
	*lenb = 0;
	*kind = 0; /* 0 scalar, 1 body of len bytes, 2 array of len, 3 map of len */
	*hdr = 1;
	if (c <= 0x7f || c >= 0xe0)
		return;
	if (c <= 0x8f) {
		*kind = 3;
		return;
	}
	if (c <= 0x9f) {
		*kind = 2;
		return;
	}
	if (c <= 0xbf) {
		*kind = 1;
		return;
	}
	*hdr = fixed[c - 0xc0];
	if (c == 0xc1)
		*hdr = 0;
	else if ((c >= 0xc4 && c <= 0xc9) || (c >= 0xd9 && c <= 0xdb))
		*kind = 1, *lenb = c <= 0xc6 ? 1 << (c - 0xc4) : c <= 0xc9 ? 1 << (c - 0xc7) : 1 << (c - 0xd9);
	else if (c >= 0xdc)
		*kind = c <= 0xdd ? 2 : 3, *lenb = (c & 1) ? 4 : 2;
	if (c >= 0xc7 && c <= 0xc9)
		(*hdr)--; /* ext: hdr counts the type byte, not part of the body */
}

/* Finds where the envelope at buf[start] ends, resuming where the last
 * call stopped, without allocating: 1 when it is complete (mp_pos bytes),
 * 0 when more input is needed, WALK_BIG when it cannot fit in max_record
 * (a long str/bin or a container count no record of that size can hold),
 * WALK_BAD at a byte that is not msgpack (mp_pos on it), WALK_DEEP past
 * MP_WALK_DEPTH.  msgpack_unpack only ever sees complete envelopes, so
 * what it allocates is bounded by bytes that are there, not by a count
 * a corrupt header claims, and it parses each envelope once. */
enum { WALK_BIG = -1, WALK_BAD = -2, WALK_DEEP = -3 };

static int mp_walk(mq_reader_t *r, const uint8_t *p, size_t avail, int skipping)
{
	for (;;) {
		while (r->mp_depth > 0 && r->mp_left[r->mp_depth - 1] == 0)
			r->mp_depth--;
		if (r->mp_depth == 0)
			return r->mp_pos <= avail;
		size_t pos = r->mp_pos, hdr;
		int lenb, kind;
		if (pos >= avail)
			return 0;
		uint8_t c = p[pos];
		mp_type(c, &hdr, &lenb, &kind);
		if (hdr == 0)
			return WALK_BAD;
		if (avail - pos < hdr)
			return 0;
		uint64_t len = kind == 0 ? 0 : lenb ? be_len(p + pos + 1, lenb)
				     : kind == 1 ? (uint64_t)(c & 0x1f) : (uint64_t)(c & 0x0f);
		if (c >= 0xc7 && c <= 0xc9)
			len++; /* the ext type byte */
		if (kind >= 2 && len > 0 && r->mp_depth == MP_WALK_DEPTH)
			return WALK_DEEP;
		r->mp_left[r->mp_depth - 1]--;
		r->mp_pos = pos + hdr + (kind == 1 ? len : 0);
		if (kind >= 2 && len > 0) {
			uint64_t n = kind == 3 ? 2 * len : len;
			r->mp_left[r->mp_depth++] = n;
			if (!skipping && n > r->max_record) /* each object takes a byte at least */
				return WALK_BIG;
		}
		if (!skipping && r->mp_pos > r->max_record)
			return WALK_BIG;
	}
}

/* Skipping an over-long envelope: walk on, dropping what was walked. */
static int mp_skip(mq_reader_t *r)
{
	size_t avail = r->end - r->start;
	int rc = mp_walk(r, r->buf + r->start, avail, 1);
	if (rc == 1) {
		r->start += r->mp_pos;
		r->skipping = 0;
		walk_reset(r);
		return 1;
	}
	size_t drop = r->mp_pos < avail ? r->mp_pos : avail;
	r->start += drop;
	r->mp_pos -= drop;
	if (rc < 0 || r->eof) { /* cut short, or garbage inside: nothing to sync on */
		r->dead = rc < 0;
		r->start = r->end;
		r->skipping = 0;
		walk_reset(r);
	}
	return 0;
}

static int mp_decode(mq_reader_t *r, const uint8_t *s, size_t len, mq_rec_t *rec, mq_err_t *err)
{
	size_t off = 0;
	msgpack_object o;
	msgpack_zone_clear(r->zone);
	msgpack_unpack_return ret = msgpack_unpack((const char *)s, len, &off, r->zone, &o);
	rec_clear(rec, MQ_FMT_MSGPACK);
	rec->raw = s;
	rec->raw_len = len;
	if (ret != MSGPACK_UNPACK_SUCCESS || off != len)
		return mq_err_set(err, MQ_EINVAL,
				  "record %llu: invalid msgpack envelope: msgpack-c cannot decode it (nested "
				  "more than 32 deep, or out of memory); skipped",
				  (unsigned long long)r->recno);
	if (o.type != MSGPACK_OBJECT_MAP)
		return mq_err_set(err, MQ_EINVAL, "record %llu: invalid msgpack envelope: not a map",
				  (unsigned long long)r->recno);
	for (uint32_t i = 0; i < o.via.map.size; i++) {
		const uint8_t *name;
		size_t n;
		if (!mp_bytes(&o.via.map.ptr[i].key, &name, &n))
			continue;
		const char *why = mp_field(r, name, n, &o.via.map.ptr[i].val, rec);
		if (why)
			return mq_err_set(err, MQ_EINVAL, "record %llu: invalid msgpack envelope: %s",
					  (unsigned long long)r->recno, why);
	}
	rec->has_seq &= rec->producer != NULL;
	return 0;
}

static int next_msgpack(mq_reader_t *r, mq_rec_t *rec, mq_err_t *err)
{
	if (r->dead)
		r->start = r->scan = r->end;
	if (r->skipping && !mp_skip(r))
		return 0;
	if (r->start == r->end)
		return 0;
	const uint8_t *s = r->buf + r->start;
	size_t avail = r->end - r->start;
	int rc = mp_walk(r, s, avail, 0);
	if (rc == 0) {
		if (!r->eof)
			return 0;
		r->recno++;
		r->start = r->end;
		walk_reset(r);
		return mq_err_set(err, MQ_EINVAL, "record %llu: truncated msgpack envelope at the end of input",
				  (unsigned long long)r->recno);
	}
	r->recno++;
	if (rc == WALK_BAD || rc == WALK_DEEP) {
		char why[80];
		if (rc == WALK_BAD)
			snprintf(why, sizeof why, "not msgpack (byte 0x%02x at byte %zu of the record)",
				 s[r->mp_pos], r->mp_pos + 1);
		else
			snprintf(why, sizeof why, "msgpack nested more than %d deep", MP_WALK_DEPTH);
		walk_reset(r);
		return mp_lost(r, err, why);
	}
	if (rc == WALK_BIG) {
		r->skipping = 1;
		mp_skip(r);
		return too_big(r, err);
	}
	size_t len = r->mp_pos;
	r->start += len;
	walk_reset(r);
	if (mp_decode(r, s, len, rec, err) < 0)
		return -MQ_EINVAL;
	r->count++;
	return 1;
}

/* ==== writer ==== */

enum { OP_LIT, OP_TOPIC, OP_PART, OP_OFF, OP_KEY, OP_VAL, OP_TS, OP_ID, OP_HDRS, OP_SIZE, OP_ISO };

typedef struct tpl_op {
	uint32_t kind;
	uint32_t off, len; /* OP_LIT: bytes in the literal pool */
} tpl_op_t;

struct mq_writer {
	int fd;
	mq_fmt_t fmt;
	int with_seq; /* mq_writer_opts_t.with_seq */
	uint8_t *buf;
	size_t len, cap, thresh;
	tpl_op_t *ops;
	size_t nops;
	uint8_t *lit;
	msgpack_packer pk;
	mq_err_t *cb_err; /* for the msgpack callback */
	int cb_rc;
	char name[128];
	/* mq_writer_on_wait: called while a full pipe keeps us waiting */
	int (*wait_fn)(void *ctx);
	void *wait_ctx;
	int wait_ms; /* -1: no period */
	int pipe_cap; /* > 0: fd is a pipe of this capacity */
	int sock;     /* fd is a socket: sent to without waiting, a piece at a time */
	size_t page;  /* the size of its slots */
	uint32_t hist[256]; /* the sizes of our last writes to it, hist[hist_n - 1 & 255] last */
	size_t hist_n;
	size_t qbound; /* bytes it holds at most: the last FIONREAD and what we wrote since */
	int qknown;    /* qbound is set */
	/* mq_writer_on_write: told before each write(2) */
	int (*write_fn)(void *ctx, uint64_t *upto, mq_err_t *err);
	void *write_ctx;
	uint64_t written; /* bytes write(2) took, in all */
};

void mq_writer_on_wait(mq_writer_t *w, int every_ms, int (*fn)(void *ctx), void *ctx)
{
	struct stat st;
	w->wait_fn = fn;
	w->wait_ctx = ctx;
	w->wait_ms = every_ms > 0 ? every_ms : every_ms < 0 ? -1 : 1000;
	w->pipe_cap = 0;
	w->sock = 0;
	if ((!fn && every_ms >= 0) || fstat(w->fd, &st) != 0)
		return;
	int type = 0;
	socklen_t tl = sizeof type;
	w->sock = S_ISSOCK(st.st_mode) && getsockopt(w->fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
		  type == SOCK_STREAM; /* a byte stream: cut anywhere */
	if (S_ISFIFO(st.st_mode)) {
		int cap = fcntl(w->fd, F_GETPIPE_SZ);
		long page = sysconf(_SC_PAGESIZE);
		w->pipe_cap = cap > 0 ? cap : 65536;
		w->page = page > 0 ? (size_t)page : 4096;
		w->hist_n = 0;
		w->qknown = 0;
	}
}

void mq_writer_on_write(mq_writer_t *w, int (*fn)(void *ctx, uint64_t *upto, mq_err_t *err), void *ctx)
{
	w->write_fn = fn;
	w->write_ctx = ctx;
}

/* How many of a pipe's slots can hold the last `queued` bytes written
 * to it, at most; (size_t)-1 when our writes do not account for them all
 * (someone else wrote too, or they span more writes than we remember).
 * Linux keeps a pipe in page-sized slots and a write blocks when it needs
 * more free slots than there are.  A write of n bytes fills pages from a
 * fresh slot, or first tops up the last slot with its n % page bytes when
 * they fit there; either way its bytes lie in at most ceil(n / page)
 * slots.  So the slots still holding queued bytes are at most that sum
 * over the writes the queued bytes came from.  Counting the queued bytes
 * as full pages instead is wrong: writes cut at records' ends leave most
 * slots a little short, and in a pipe of 256 slots that adds up to more
 * than any fixed margin. */
static size_t slots_held(const mq_writer_t *w, size_t queued)
{
	size_t slots = 0, n = w->hist_n < 256 ? w->hist_n : 256;
	for (size_t i = 0; i < n && queued > 0; i++) {
		size_t len = w->hist[(w->hist_n - 1 - i) & 255];
		slots += (len + w->page - 1) / w->page;
		queued -= len < queued ? len : queued;
	}
	return queued > 0 ? (size_t)-1 : slots;
}

/* Wait until fd polls writable (calling the hook every wait_ms; 0 when
 * it says to give up), then: how much of n to write, at most piece. */
static size_t when_writable(mq_writer_t *w, size_t n, size_t piece)
{
	for (;;) {
		struct pollfd pfd = {.fd = w->fd, .events = POLLOUT};
		int r = poll(&pfd, 1, w->wait_ms);
		if (r <= 0 && w->wait_fn && w->wait_fn(w->wait_ctx)) /* timeout, or a signal */
			return 0;
		if (r > 0)
			return (pfd.revents & POLLOUT) && n > piece ? piece : n; /* errors: let the write say */
	}
}

/* With a wait hook on a pipe: how much can be written without blocking,
 * waiting if need be.  When the pipe polls writable, at least one slot
 * is free, and a write of one page or less needs no more.  This holds
 * while we are the pipe's only writer. */
static size_t writable(mq_writer_t *w, size_t n)
{
	size_t slots = (size_t)w->pipe_cap / w->page, used;
	/* The reader only takes bytes out: what the pipe held when last
	 * asked plus what we wrote since bounds what it holds now, and more
	 * bytes never sit in fewer of our writes' slots.  While that bound
	 * fills at most half the pipe and leaves room for all of n, the pipe
	 * is not asked again (the other half is a margin for bytes another
	 * writer put there since, such as a program's 2>&1 warnings, which
	 * only asking shows). */
	if (w->qknown && (used = slots_held(w, w->qbound)) <= slots / 2 && (slots - used) * w->page >= n)
		return n;
	int queued = 0;
	if (ioctl(w->fd, FIONREAD, &queued) < 0 || queued < 0) {
		w->qknown = 0;
		return n; /* cannot tell: just write */
	}
	w->qbound = (size_t)queued;
	w->qknown = 1;
	used = slots_held(w, (size_t)queued);
	if (used < slots)
		return (slots - used) * w->page < n ? (slots - used) * w->page : n;
	return when_writable(w, n, w->page);
}

/* A socket's room cannot be told from outside: once it polls writable
 * (a Unix stream socket then has three quarters of its send buffer
 * free), send at most SOCK_PIECE, without waiting in the send.  A send
 * that finds less room takes what fits. */
#define SOCK_PIECE ((size_t)32 << 10)

/* Tell the write hook what left in fact (before a wait, or after a
 * failed write). */
static int say_left(mq_writer_t *w, mq_err_t *err)
{
	uint64_t upto = w->written;
	return w->write_fn ? w->write_fn(w->write_ctx, &upto, err) : 0;
}

/* What every output format needs of one message, whichever way it came:
 * headers either as an array (reader) or encoded (batch). */
typedef struct env {
	const char *topic;
	int64_t partition, offset, timestamp;
	const uint8_t *key, *value, *id;
	size_t key_len, value_len, id_len;
	const mq_header_t *hdrs;
	uint32_t nhdrs;
	const uint8_t *hraw, *hraw_end;
	/* "producer" and "seq" (has_seq); hide_origin: they came from the
	 * mq.producer / mq.seq headers, which are then not written again. */
	const uint8_t *producer;
	size_t producer_len;
	uint64_t seq;
	int has_seq, hide_origin;
} env_t;

static int hdr_next(const env_t *e, uint32_t *i, const uint8_t **p, mq_header_t *h)
{
	for (;;) {
		if (e->hdrs) {
			if (*i >= e->nhdrs)
				return 0;
			*h = e->hdrs[(*i)++];
		} else if (!e->hraw || !mq_header_next(p, e->hraw_end, h)) {
			return 0;
		}
		if (!e->hide_origin || !mq_header_is_origin(h))
			return 1;
	}
}

static int write_out(mq_writer_t *w, const uint8_t *p, size_t n, mq_err_t *err)
{
	while (n > 0) {
		size_t want = w->pipe_cap ? writable(w, n) : w->sock ? when_writable(w, n, SOCK_PIECE) : n;
		if (want == 0)
			return mq_err_set(err, MQ_EAGAIN, "writing to %s: gave up waiting for the reader", w->name);
		int rc;
		if (w->write_fn) {
			uint64_t upto = w->written + want;
			if ((rc = w->write_fn(w->write_ctx, &upto, err)) < 0)
				return rc;
			if (upto > w->written && upto - w->written < want)
				want = (size_t)(upto - w->written);
		}
		ssize_t k = w->sock ? send(w->fd, p, want, MSG_DONTWAIT) : write(w->fd, p, want);
		if (k > 0) {
			if (w->pipe_cap) {
				w->hist[w->hist_n++ & 255] = (uint32_t)k;
				w->qbound += (size_t)k;
			}
			w->written += (uint64_t)k;
			p += k;
			n -= (size_t)k;
			if (w->sock && (size_t)k < want && (rc = say_left(w, err)) < 0) /* before waiting */
				return rc;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((rc = say_left(w, err)) < 0) /* not while we wait */
				return rc;
			if (w->sock)
				continue; /* when_writable() waits, and asks the wait hook */
			struct pollfd pfd = {.fd = w->fd, .events = POLLOUT};
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return mq_err_sys(err, "waiting to write to %s", w->name);
			continue;
		}
		if (w->write_fn) { /* it did not leave after all: say what did */
			mq_err_t e;
			int saved = errno;
			(void)say_left(w, &e);
			errno = saved;
		}
		if (k < 0 && errno == EPIPE) {
			rc = mq_err_set(err, MQ_EIO, "writing to %s: the reader went away (%s)", w->name,
					strerror(EPIPE));
			if (err)
				err->sys = EPIPE;
			return rc;
		}
		if (k == 0)
			errno = EIO;
		return mq_err_sys(err, "writing to %s", w->name);
	}
	return 0;
}

int mq_writer_flush(mq_writer_t *w, mq_err_t *err)
{
	if (w->len == 0)
		return 0;
	int rc = write_out(w, w->buf, w->len, err);
	w->len = 0; /* on error too: a retry would repeat what was written */
	return rc;
}

size_t mq_writer_pending(const mq_writer_t *w)
{
	return w->len;
}

uint64_t mq_writer_written(const mq_writer_t *w)
{
	return w->written;
}

/* Room for n more bytes (n <= cap): flush if need be. */
static inline int room(mq_writer_t *w, size_t n, mq_err_t *err)
{
	if (w->cap - w->len >= n)
		return 0;
	return mq_writer_flush(w, err);
}

static int put_bytes_slow(mq_writer_t *w, const void *p, size_t n, mq_err_t *err)
{
	int rc = mq_writer_flush(w, err);
	if (rc < 0)
		return rc;
	if (n > w->cap / 2)
		return write_out(w, p, n, err);
	if (n)
		memcpy(w->buf, p, n);
	w->len = n;
	return 0;
}

static inline int put_bytes(mq_writer_t *w, const void *p, size_t n, mq_err_t *err)
{
	if (w->cap - w->len < n)
		return put_bytes_slow(w, p, n, err);
	if (n) {
		memcpy(w->buf + w->len, p, n);
		w->len += n;
	}
	return 0;
}

/* The caller made room. */
static inline void add_lit(mq_writer_t *w, const char *s, size_t n)
{
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}
#define ADD_LIT(w, s) add_lit((w), (s), sizeof(s) - 1)

static size_t fmt_u64(char *out, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* The caller made room for 20 bytes. */
static void add_i64(mq_writer_t *w, int64_t v)
{
	char *o = (char *)w->buf + w->len;
	if (v < 0) {
		*o++ = '-';
		w->len++;
		w->len += fmt_u64(o, 0 - (uint64_t)v);
	} else {
		w->len += fmt_u64(o, (uint64_t)v);
	}
}

static inline int put_end(mq_writer_t *w, mq_err_t *err)
{
	return w->len >= w->thresh ? mq_writer_flush(w, err) : 0;
}

/* value + terminator: the lines and nul hot path. */
static inline int put_term(mq_writer_t *w, const uint8_t *p, size_t n, uint8_t term, mq_err_t *err)
{
	if (w->cap - w->len > n) {
		if (n)
			memcpy(w->buf + w->len, p, n);
		w->len += n;
		w->buf[w->len++] = term;
		return put_end(w, err);
	}
	int rc = put_bytes_slow(w, p, n, err);
	if (rc == 0)
		rc = put_bytes(w, &term, 1, err);
	return rc < 0 ? rc : put_end(w, err);
}

/* ---- JSON output ---- */

/* 0: as is; else the character after the backslash ('u': \u00XX). */
static const uint8_t json_esc[256] = {
	[0 ... 7] = 'u', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', [11] = 'u', ['\f'] = 'f',
	['\r'] = 'r', [14 ... 0x1f] = 'u', ['"'] = '"', ['\\'] = '\\',
};

/* Escaped string body (no quotes); valid UTF-8 assumed. */
static int put_json_body(mq_writer_t *w, const uint8_t *p, size_t n, mq_err_t *err)
{
	static const char hex[] = "0123456789abcdef";
	while (n > 0) {
		size_t chunk = n < JSON_CHUNK ? n : JSON_CHUNK;
		int rc = room(w, chunk * 6, err);
		if (rc < 0)
			return rc;
		uint8_t *o = w->buf + w->len;
		for (size_t i = 0; i < chunk;) {
			size_t k = i + json_plain_run(p + i, chunk - i);
			memcpy(o, p + i, k - i);
			o += k - i;
			if (k == chunk)
				break;
			uint8_t c = p[k], e = json_esc[c];
			*o++ = '\\';
			*o++ = e;
			if (e == 'u') {
				*o++ = '0';
				*o++ = '0';
				*o++ = (uint8_t)hex[c >> 4];
				*o++ = (uint8_t)hex[c & 15];
			}
			i = k + 1;
		}
		w->len = (size_t)(o - w->buf);
		p += chunk;
		n -= chunk;
	}
	return 0;
}

/* Names and topics: never base64, so bytes that are not UTF-8 become
 * U+FFFD rather than invalid JSON. */
static int put_json_lossy(mq_writer_t *w, const uint8_t *p, size_t n, mq_err_t *err)
{
	int rc = put_bytes(w, "\"", 1, err);
	while (rc == 0 && n > 0) {
		size_t i = 0;
		while (i < n) {
			size_t l = p[i] < 0x80 ? 1 : mq_utf8_seq(p + i, n - i);
			if (!l)
				break;
			i += l;
		}
		if ((rc = put_json_body(w, p, i, err)) < 0 || i == n)
			break;
		rc = put_bytes(w, "\xef\xbf\xbd", 3, err);
		p += i + 1;
		n -= i + 1;
	}
	return rc < 0 ? rc : put_bytes(w, "\"", 1, err);
}

static int put_b64(mq_writer_t *w, const uint8_t *p, size_t n, mq_err_t *err)
{
	while (n > 0) {
		size_t chunk = n < B64_CHUNK ? n : B64_CHUNK;
		int rc = room(w, B64_CHUNK / 3 * 4, err);
		if (rc < 0)
			return rc;
		w->len += mq_base64_enc(p, chunk, (char *)w->buf + w->len);
		p += chunk;
		n -= chunk;
	}
	return 0;
}

/* ,"name":"text" or ,"name_b64":"base64" or ,"name":null */
static int put_json_field(mq_writer_t *w, const char *name, const uint8_t *p, size_t n, mq_err_t *err)
{
	size_t nl = strlen(name);
	int rc = room(w, nl + 16, err);
	if (rc < 0)
		return rc;
	ADD_LIT(w, ",\"");
	add_lit(w, name, nl);
	if (!p) {
		ADD_LIT(w, "\":null");
		return 0;
	}
	int text = utf8_valid(p, n);
	if (text)
		ADD_LIT(w, "\":\"");
	else
		ADD_LIT(w, "_b64\":\"");
	if ((rc = text ? put_json_body(w, p, n, err) : put_b64(w, p, n, err)) < 0)
		return rc;
	return put_bytes(w, "\"", 1, err);
}

static int put_json_int(mq_writer_t *w, const char *name, int64_t v, int null_if_neg, mq_err_t *err)
{
	size_t nl = strlen(name);
	int rc = room(w, nl + 32, err);
	if (rc < 0)
		return rc;
	ADD_LIT(w, ",\"");
	add_lit(w, name, nl);
	ADD_LIT(w, "\":");
	if (null_if_neg && v < 0)
		ADD_LIT(w, "null");
	else
		add_i64(w, v);
	return 0;
}

/* "headers":{...} with the UTF-8 values, then "headers_b64":{...} with
 * the others, if any.  A name that comes more than once (in one of the
 * two) is written once, with an array of its values in order: JSON
 * objects with a repeated key lose all but one in jq and most parsers. */
static int hdr_value(mq_writer_t *w, const mq_header_t *h, int b64, mq_err_t *err)
{
	int rc = put_bytes(w, "\"", 1, err);
	if (rc == 0)
		rc = b64 ? put_b64(w, h->value, h->value_len, err) : put_json_body(w, h->value, h->value_len, err);
	if (rc == 0)
		rc = put_bytes(w, "\"", 1, err);
	return rc;
}

static int same_name(const mq_header_t *a, const mq_header_t *b)
{
	return a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0;
}

static int put_json_headers(mq_writer_t *w, const env_t *e, mq_err_t *err)
{
	mq_header_t small[MQ_REC_MAX_HEADERS], *hs = small;
	uint8_t cls_small[MQ_REC_MAX_HEADERS], *cls = cls_small;
	uint32_t n = 0, cap = MQ_REC_MAX_HEADERS, i = 0;
	const uint8_t *hp = e->hraw;
	mq_header_t h;
	int rc = 0;
	while (rc == 0 && hdr_next(e, &i, &hp, &h)) {
		if (n == cap) {
			uint32_t nc = cap * 2;
			mq_header_t *nh = malloc((size_t)nc * sizeof *nh);
			uint8_t *ncl = malloc(nc);
			if (!nh || !ncl) {
				free(nh);
				free(ncl);
				rc = mq_err_set(err, MQ_ENOMEM, "writing headers: out of memory");
				break;
			}
			memcpy(nh, hs, (size_t)n * sizeof *nh);
			memcpy(ncl, cls, n);
			if (hs != small) {
				free(hs);
				free(cls);
			}
			hs = nh;
			cls = ncl;
			cap = nc;
		}
		hs[n] = h;
		cls[n] = !utf8_valid(h.value, h.value_len);
		n++;
	}
	if (rc == 0)
		rc = put_bytes(w, ",\"headers\":{", 12, err);
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		uint32_t written = 0;
		for (uint32_t a = 0; a < n && rc == 0; a++) {
			if (cls[a] != pass)
				continue;
			uint32_t more = 0, b;
			for (b = 0; b < a && !(cls[b] == pass && same_name(&hs[b], &hs[a])); b++)
				;
			if (b < a)
				continue; /* written with the first of its name */
			for (b = a + 1; b < n; b++)
				more += cls[b] == pass && same_name(&hs[b], &hs[a]);
			if (pass == 1 && written == 0)
				rc = put_bytes(w, ",\"headers_b64\":{", 16, err);
			if (rc == 0 && written++ > 0)
				rc = put_bytes(w, ",", 1, err);
			if (rc == 0)
				rc = put_json_lossy(w, hs[a].name, hs[a].name_len, err);
			if (rc == 0)
				rc = put_bytes(w, more ? ":[" : ":", more ? 2 : 1, err);
			if (rc == 0)
				rc = hdr_value(w, &hs[a], pass, err);
			for (b = a + 1; more && b < n && rc == 0; b++)
				if (cls[b] == pass && same_name(&hs[b], &hs[a]) && (rc = put_bytes(w, ",", 1, err)) == 0)
					rc = hdr_value(w, &hs[b], pass, err);
			if (rc == 0 && more)
				rc = put_bytes(w, "]", 1, err);
		}
		if (rc == 0 && (pass == 0 || written > 0))
			rc = put_bytes(w, "}", 1, err);
	}
	if (hs != small) {
		free(hs);
		free(cls);
	}
	return rc;
}

static int put_json(mq_writer_t *w, const env_t *e, mq_err_t *err)
{
	int rc = put_bytes(w, "{\"topic\":", 9, err);
	if (rc == 0)
		rc = e->topic ? put_json_lossy(w, (const uint8_t *)e->topic, strlen(e->topic), err)
			      : put_bytes(w, "null", 4, err);
	if (rc == 0)
		rc = put_json_int(w, "partition", e->partition, 1, err);
	if (rc == 0)
		rc = put_json_int(w, "offset", e->offset, 1, err);
	if (rc == 0)
		rc = put_json_int(w, "timestamp", e->timestamp, 0, err);
	if (rc == 0)
		rc = put_json_field(w, "key", e->key, e->key_len, err);
	if (rc == 0)
		rc = put_json_field(w, "value", e->value ? e->value : empty_value, e->value_len, err);
	if (rc == 0)
		rc = put_json_field(w, "id", e->id, e->id_len, err);
	if (rc == 0)
		rc = put_json_headers(w, e, err);
	if (rc == 0 && e->has_seq)
		rc = put_json_field(w, "producer", e->producer, e->producer_len, err);
	if (rc == 0 && e->has_seq && (rc = room(w, 32, err)) == 0) {
		ADD_LIT(w, ",\"seq\":");
		w->len += fmt_u64((char *)w->buf + w->len, e->seq);
	}
	if (rc == 0)
		rc = put_bytes(w, "}\n", 2, err);
	return rc;
}

/* ---- msgpack output ---- */

static int mp_write(void *data, const char *buf, size_t len)
{
	mq_writer_t *w = data;
	int rc = put_bytes(w, buf, len, w->cb_err);
	if (rc < 0) {
		w->cb_rc = rc;
		return -1;
	}
	return 0;
}

static int mp_key(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int mp_bin(msgpack_packer *pk, const uint8_t *p, size_t n)
{
	if (!p)
		return msgpack_pack_nil(pk);
	return msgpack_pack_bin(pk, n) || msgpack_pack_bin_body(pk, p, n);
}

static int mp_int(msgpack_packer *pk, int64_t v, int nil_if_neg)
{
	return nil_if_neg && v < 0 ? msgpack_pack_nil(pk) : msgpack_pack_int64(pk, v);
}

static int put_msgpack(mq_writer_t *w, const env_t *e, mq_err_t *err)
{
	msgpack_packer *pk = &w->pk;
	uint32_t i = 0, nh = 0;
	const uint8_t *hp = e->hraw;
	mq_header_t h;
	while (hdr_next(e, &i, &hp, &h))
		nh++;
	w->cb_err = err;
	w->cb_rc = 0;
	int bad = msgpack_pack_map(pk, e->has_seq ? 10 : 8) || mp_key(pk, "topic") ||
		  (e->topic ? msgpack_pack_str(pk, strlen(e->topic)) ||
				      msgpack_pack_str_body(pk, e->topic, strlen(e->topic))
			    : msgpack_pack_nil(pk)) ||
		  mp_key(pk, "partition") || mp_int(pk, e->partition, 1) ||
		  mp_key(pk, "offset") || mp_int(pk, e->offset, 1) ||
		  mp_key(pk, "timestamp") || mp_int(pk, e->timestamp, 0) ||
		  mp_key(pk, "key") || mp_bin(pk, e->key, e->key_len) ||
		  mp_key(pk, "value") || mp_bin(pk, e->value ? e->value : empty_value, e->value_len) ||
		  mp_key(pk, "id") || mp_bin(pk, e->id, e->id_len) ||
		  mp_key(pk, "headers") || msgpack_pack_map(pk, nh);
	i = 0;
	hp = e->hraw;
	while (!bad && hdr_next(e, &i, &hp, &h))
		bad = msgpack_pack_str(pk, h.name_len) ||
		      msgpack_pack_str_body(pk, h.name, h.name_len) || mp_bin(pk, h.value, h.value_len);
	if (!bad && e->has_seq)
		bad = mp_key(pk, "producer") || mp_bin(pk, e->producer, e->producer_len) || mp_key(pk, "seq") ||
		      msgpack_pack_uint64(pk, e->seq);
	return bad ? (w->cb_rc ? w->cb_rc : mq_err_set(err, MQ_EIO, "writing to %s: msgpack", w->name))
		   : 0;
}

/* ---- templates ---- */

static int tpl_compile(mq_writer_t *w, const char *t, mq_err_t *err)
{
	static const char codes[] = "tpokTsihSD";
	static const uint32_t kinds[] = {OP_TOPIC, OP_PART, OP_OFF, OP_KEY, OP_TS,
					 OP_VAL,   OP_ID,   OP_HDRS, OP_SIZE, OP_ISO};
	size_t n = strlen(t), lit = 0;
	w->ops = malloc((n + 1) * sizeof *w->ops);
	w->lit = malloc(n + 1);
	if (!w->ops || !w->lit)
		return mq_err_set(err, MQ_ENOMEM, "template: out of memory");
	for (size_t i = 0; i < n; i++) {
		char c = t[i], byte;
		if (c == '%' || c == '\\') {
			if (i + 1 == n)
				return mq_err_set(err, MQ_EINVAL,
						  "template: lone '%c' at the end, position %zu (write %c%c for a %s)",
						  c, i + 1, c, c, c == '%' ? "percent sign" : "backslash");
			char x = t[++i];
			const char *k = c == '%' ? strchr(codes, x) : NULL;
			if (c == '%' && x && k) {
				w->ops[w->nops++] = (tpl_op_t){kinds[k - codes], 0, 0};
				continue;
			}
			if (x == c)
				byte = c;
			else if (c == '\\' && (x == 'n' || x == 't' || x == 'r' || x == '0'))
				byte = x == 'n' ? '\n' : x == 't' ? '\t' : x == 'r' ? '\r' : '\0';
			else if (c == '%')
				return mq_err_set(err, MQ_EINVAL,
						  "template: unknown code '%%%c' at position %zu (use %%t %%p %%o %%k "
						  "%%s %%T %%D %%i %%h %%S or %%%%)",
						  x >= 0x20 && x < 0x7f ? x : '?', i);
			else
				return mq_err_set(err, MQ_EINVAL,
						  "template: unknown escape '\\%c' at position %zu (use \\n \\t \\r "
						  "\\0 or \\\\)",
						  x >= 0x20 && x < 0x7f ? x : '?', i);
		} else {
			byte = c;
		}
		if (w->nops && w->ops[w->nops - 1].kind == OP_LIT) {
			w->ops[w->nops - 1].len++;
		} else {
			w->ops[w->nops++] = (tpl_op_t){OP_LIT, (uint32_t)lit, 1};
		}
		w->lit[lit++] = (uint8_t)byte;
	}
	return 0;
}

static int put_num(mq_writer_t *w, int64_t v, mq_err_t *err)
{
	int rc = room(w, 20, err);
	if (rc == 0)
		add_i64(w, v);
	return rc;
}

static int put_template(mq_writer_t *w, const env_t *e, mq_err_t *err)
{
	int rc = 0;
	for (size_t k = 0; k < w->nops && rc == 0; k++) {
		const tpl_op_t *op = &w->ops[k];
		switch (op->kind) {
		case OP_LIT:
			rc = put_bytes(w, w->lit + op->off, op->len, err);
			break;
		case OP_TOPIC:
			if (e->topic)
				rc = put_bytes(w, e->topic, strlen(e->topic), err);
			break;
		case OP_PART:
			if (e->partition >= 0)
				rc = put_num(w, e->partition, err);
			break;
		case OP_OFF:
			if (e->offset >= 0)
				rc = put_num(w, e->offset, err);
			break;
		case OP_KEY:
			if (e->key)
				rc = put_bytes(w, e->key, e->key_len, err);
			break;
		case OP_VAL:
			if (e->value)
				rc = put_bytes(w, e->value, e->value_len, err);
			break;
		case OP_TS:
			rc = put_num(w, e->timestamp, err);
			break;
		case OP_ISO: {
			/* ISO 8601 in UTC with milliseconds: 2026-11-24T10:00:00.250Z */
			char iso[40];
			int64_t ms = e->timestamp;
			time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
			struct tm tm;
			size_t n = gmtime_r(&secs, &tm) ? strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S", &tm) : 0;
			n += (size_t)snprintf(iso + n, sizeof iso - n, ".%03dZ", (int)(ms - (int64_t)secs * 1000));
			rc = put_bytes(w, iso, n, err);
			break;
		}
		case OP_ID:
			if (e->id)
				rc = put_bytes(w, e->id, e->id_len, err);
			break;
		case OP_SIZE:
			rc = put_num(w, (int64_t)e->value_len, err);
			break;
		case OP_HDRS: {
			uint32_t i = 0;
			const uint8_t *hp = e->hraw;
			mq_header_t h;
			for (int first = 1; rc == 0 && hdr_next(e, &i, &hp, &h); first = 0) {
				if (!first)
					rc = put_bytes(w, ",", 1, err);
				if (rc == 0)
					rc = put_bytes(w, h.name, h.name_len, err);
				if (rc == 0)
					rc = put_bytes(w, "=", 1, err);
				if (rc == 0)
					rc = put_bytes(w, h.value, h.value_len, err);
			}
			break;
		}
		}
	}
	return rc;
}

/* ---- writer API ---- */

int mq_writer_new(int fd, const mq_writer_opts_t *o, mq_writer_t **out, mq_err_t *err)
{
	mq_writer_t *w;
	int rc;
	*out = NULL;
	if ((int)o->fmt < 0 || o->fmt > MQ_FMT_TEMPLATE)
		return mq_err_set(err, MQ_EINVAL, "output format: unknown (%d)", (int)o->fmt);
	if (o->fmt == MQ_FMT_TEMPLATE && !o->template)
		return mq_err_set(err, MQ_EINVAL, "template: none given");
	if (!(w = calloc(1, sizeof *w)))
		return mq_err_set(err, MQ_ENOMEM, "writer: out of memory");
	w->fd = fd;
	w->fmt = o->fmt;
	w->with_seq = o->with_seq;
	w->thresh = o->buffer ? o->buffer : WRITE_THRESH_DEFAULT;
	w->cap = w->thresh > WRITE_CAP_MIN ? w->thresh : WRITE_CAP_MIN;
	fd_name(w->name, sizeof w->name, o->name, fd, 1, "standard output");
	if (!(w->buf = malloc(w->cap))) {
		rc = mq_err_set(err, MQ_ENOMEM, "writer: out of memory for a %zu-byte buffer", w->cap);
		goto fail;
	}
	if (o->fmt == MQ_FMT_TEMPLATE && (rc = tpl_compile(w, o->template, err)) < 0)
		goto fail;
	msgpack_packer_init(&w->pk, w, mp_write);
	*out = w;
	return 0;
fail:
	mq_writer_free(w);
	return rc;
}

void mq_writer_free(mq_writer_t *w)
{
	if (!w)
		return;
	free(w->buf);
	free(w->ops);
	free(w->lit);
	free(w);
}

static int put_env(mq_writer_t *w, const env_t *e, mq_err_t *err)
{
	int rc;
	switch (w->fmt) {
	case MQ_FMT_JSON:
		rc = put_json(w, e, err);
		break;
	case MQ_FMT_MSGPACK:
		rc = put_msgpack(w, e, err);
		break;
	default:
		rc = put_template(w, e, err);
		break;
	}
	return rc < 0 ? rc : put_end(w, err);
}

int mq_writer_put(mq_writer_t *w, const char *topic, uint32_t partition, const mq_record_t *rec,
		  mq_err_t *err)
{
	if (w->fmt == MQ_FMT_LINES || w->fmt == MQ_FMT_NUL)
		return put_term(w, rec->value, rec->value_len, w->fmt == MQ_FMT_NUL ? '\0' : '\n', err);
	env_t e = {
		.topic = topic, .partition = partition, .offset = (int64_t)rec->offset,
		.timestamp = rec->timestamp, .key = rec->key, .key_len = rec->key_len,
		.value = rec->value, .value_len = rec->value_len, .id = rec->id, .id_len = rec->id_len,
		.hraw = rec->headers, .hraw_end = rec->headers_end,
	};
	char num[24];
	if (!rec->headers || rec->header_count == 0)
		e.hraw = NULL;
	if (w->fmt == MQ_FMT_JSON || w->fmt == MQ_FMT_MSGPACK) {
		if (e.hraw && mq_record_origin(rec, &e.producer, &e.producer_len, &e.seq)) {
			e.has_seq = e.hide_origin = 1;
		} else if (rec->producer_id && w->with_seq) {
			e.producer_len = (size_t)snprintf(num, sizeof num, "%" PRIu64, rec->producer_id);
			e.producer = (const uint8_t *)num;
			e.seq = rec->seq;
			e.has_seq = 1;
		}
	}
	return put_env(w, &e, err);
}

int mq_writer_put_rec(mq_writer_t *w, const mq_rec_t *rec, mq_err_t *err)
{
	uint8_t term = w->fmt == MQ_FMT_NUL ? '\0' : '\n';
	if (rec->raw && rec->fmt == w->fmt) {
		size_t n = rec->raw_len;
		if (w->fmt == MQ_FMT_MSGPACK) {
			int rc = put_bytes(w, rec->raw, n, err);
			return rc < 0 ? rc : put_end(w, err);
		}
		if (n && rec->raw[n - 1] == term)
			n--;
		return put_term(w, rec->raw, n, term, err);
	}
	if (w->fmt == MQ_FMT_LINES || w->fmt == MQ_FMT_NUL)
		return put_term(w, rec->value, rec->value_len, term, err);
	env_t e = {
		.topic = rec->topic, .partition = rec->partition, .offset = rec->offset,
		.timestamp = rec->timestamp, .key = rec->key, .key_len = rec->key_len,
		.value = rec->value, .value_len = rec->value_len, .id = rec->id, .id_len = rec->id_len,
		.hdrs = rec->headers, .nhdrs = rec->nheaders,
		.producer = rec->producer, .producer_len = rec->producer_len, .seq = rec->seq,
		.has_seq = rec->has_seq && rec->producer,
	};
	return put_env(w, &e, err);
}
