/*
 * util.h -- errors, growable buffers, durations, sizes, clocks and
 * little-endian/varint helpers shared by every module.
 *
 * Conventions: a library function never prints and never exits.  It
 * returns 0 (or a non-negative count) on success and a negative MQ_E*
 * code on failure, after filling the caller's mq_err_t with a message
 * that names what failed, for which input, and what to do.
 */
#ifndef MQ_UTIL_H
#define MQ_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MQ_VERSION "0.1.0"

/* Error codes: returned negated (e.g. return -MQ_EINVAL). */
enum {
	MQ_OK = 0,
	MQ_EINVAL = 1,   /* bad argument or input */
	MQ_EIO = 2,      /* system call failed (errno in mq_err.sys) */
	MQ_ECORRUPT = 3, /* data on disk or on the wire fails its checks */
	MQ_ENOSPC = 4,   /* disk full */
	MQ_EBUSY = 5,    /* resource held by someone else (lock, port) */
	MQ_ENOENT = 6,   /* no such topic, partition, file, offset */
	MQ_ETOOBIG = 7,  /* record or batch over its size limit */
	MQ_ERANGE = 8,   /* offset out of range */
	MQ_ENOMEM = 9,   /* allocation failed */
	MQ_ETIMEDOUT = 10,
	MQ_EEXIST = 11,
	MQ_EPROTO = 12,  /* peer spoke something we do not understand */
	MQ_EAGAIN = 13,  /* would block or interrupted: try again */
	MQ_ESEQ = 14,    /* a producer's batch came out of order: resend in order */
	MQ_ECONNECT = 15, /* nothing listens at the broker endpoint (refused, unknown host) */
	MQ_EPERM = 16,   /* the client's key does not carry the right (mq-serve --curve-allow-admin) */
};

typedef struct mq_err {
	int code;      /* MQ_E* */
	int sys;       /* errno when code == MQ_EIO or MQ_ENOSPC, else 0 */
	char msg[512];
} mq_err_t;

/* How a loader that kept going past damage (a state file recovered up
 * to its last good record) tells its caller what was lost: one line,
 * no newline, naming the file, the byte and what was kept.  The library
 * never prints; the program decides where the line goes. */
typedef void (*mq_report_fn)(void *ctx, const char *msg);

/* Fill err (may be NULL) and return -code.  printf-style message. */
int mq_err_set(mq_err_t *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Like mq_err_set for a failed system call: appends ": strerror(errno)",
 * records errno, and maps ENOSPC/EDQUOT to MQ_ENOSPC, else MQ_EIO. */
int mq_err_sys(mq_err_t *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Growable byte buffer.  Owns p.  A zeroed struct is an empty buffer. */
typedef struct mq_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
} mq_buf_t;

int mq_buf_reserve(mq_buf_t *b, size_t extra); /* room for len+extra; 0 or -MQ_ENOMEM */
int mq_buf_append(mq_buf_t *b, const void *data, size_t n);
void mq_buf_free(mq_buf_t *b); /* frees p, zeroes b */

/* Parsing of user input.  Each returns 0 or -MQ_EINVAL with err naming
 * the text and the accepted forms. */
/* "250ms", "10s", "5m", "2h", "1d", plain number = seconds. */
int mq_parse_duration_ms(const char *s, int64_t *ms, mq_err_t *err);

/* A point in time given by people (mq-pub --at, the @TIME of -o, group
 * resets), with or without a leading '@':
 *   N                 seconds since the epoch when N < 10^11 (what
 *                     date +%s prints), else milliseconds (10^11 s is
 *                     the year 5138; 10^11 ms is March 1973)
 *   2026-11-24        local midnight
 *   2026-11-24T10:00, 2026-11-24T10:00:00[.fff]   local time ('T' or ' ')
 *   ...Z, ...+01:00   that time in UTC, or at that offset
 *   -1h30m, +10m      a duration before or after now_ms
 * Impossible dates (2026-02-30) are refused.  0, or -MQ_EINVAL naming
 * the text and the forms. */
int mq_time_parse(const char *s, int64_t now_ms, int64_t *ms, mq_err_t *err);
#define MQ_TIME_SECONDS_BELOW 100000000000LL
/* "512", "64KiB", "1MiB", "1GiB", "1TiB", also "KB", "MB", "GB", "TB"
 * (powers of 10); "K","M","G" alone are binary. */
int mq_parse_size(const char *s, uint64_t *bytes, mq_err_t *err);
/* Plain non-negative decimal integer with overflow check. */
int mq_parse_u64(const char *s, uint64_t *v, mq_err_t *err);

/* Clocks, milliseconds. */
int64_t mq_now_ms(void);      /* CLOCK_REALTIME, ms since the epoch */
int64_t mq_mono_ms(void);     /* CLOCK_MONOTONIC */
uint64_t mq_mono_ns(void);

/* Little-endian fixed-width load/store (unaligned safe). */
static inline void mq_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void mq_put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void mq_put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint16_t mq_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t mq_get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t mq_get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
/* (The build refuses big-endian targets; see util.c.) */

/* Unsigned LEB128 varints.  put returns bytes written (<= 10);
 * get returns bytes read, or 0 if the input ends or the varint is
 * longer than 10 bytes. */
static inline size_t mq_put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static inline size_t mq_get_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	unsigned shift = 0;
	size_t n = 0;
	while (p + n < end && n < 10) {
		uint8_t c = p[n++];
		r |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = r;
			return n;
		}
		shift += 7;
	}
	return 0;
}

static inline size_t mq_varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Length (1-4) of the valid UTF-8 sequence starting at p[0..n), or 0
 * if the bytes there are not valid UTF-8 (overlong forms, surrogates and
 * code points past U+10FFFF are invalid). */
size_t mq_utf8_seq(const uint8_t *p, size_t n);

/* Large zeroed allocations (hash tables, rings) from mmap, asking for
 * transparent huge pages: random access over tens of MiB then costs a
 * cache miss, not a cache miss and a page walk.  NULL when out of
 * memory; free with the same n. */
void *mq_big_alloc(size_t n);
void mq_big_free(void *p, size_t n); /* NULL ok */

/* Write all of buf to fd at the current position / at off, retrying
 * short writes and EINTR.  0 or -1 with errno set. */
int mq_write_all(int fd, const void *buf, size_t n);
/* Read a non-blocking descriptor empty (a self-pipe that woke a wait). */
void mq_drain_fd(int fd);
int mq_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);
/* Read exactly n bytes at off; returns bytes read (< n only at EOF) or -1. */
long long mq_pread_full(int fd, void *buf, size_t n, uint64_t off);
/* A byte string given on the command line with C escapes: \n \t \r
 * \0 \\ and \xHH.  Writes at most strlen(s) bytes to out; 0 with
 * *n, or -MQ_EINVAL naming the bad escape. */
int mq_unescape(const char *s, uint8_t *out, size_t *n, mq_err_t *err);

/* p[0, n) for a message: printable ASCII kept, other bytes as \xHH,
 * cut with "..." to fit out[0, size) (size >= 8).  Returns out. */
char *mq_printable(char *out, size_t size, const void *p, size_t n);

/* fsync a directory so that a create/rename/unlink in it is durable. */
int mq_fsync_dir(const char *path, mq_err_t *err);
/* fsync the directory that holds path, so that path's own name is durable
 * (after making it there). */
int mq_fsync_parent(const char *path, mq_err_t *err);
/* Replace dir/final with data[0, n): written to dir/tmp, fsynced, renamed
 * over dir/final, and the directory fsynced, so that a reader (or a
 * restart after a crash) sees the old file or the new one, never a mix.
 * On failure dir/tmp is removed and dir/final is untouched. */
int mq_write_file_atomic(const char *dir, const char *tmp, const char *final, const void *data, size_t n,
			 mq_err_t *err);

#ifdef MQ_FAULT_INJECT
/* Test builds only (make FAULT=1): with MQ_FAULT_SYNC_RECORD=FILE, each
 * successful sync appends what it made durable to FILE, one write a line:
 * "PATH SIZE" for a segment file (dir_fd -1), "DIR/ NAME..." (the entries
 * then in it) for a directory.  tests/fault/power-cut.sh cuts a data
 * directory back to that, as a power cut would. */
void mq_fault_record_sync(const char *path, uint64_t size, int dir_fd);
#endif

#endif
