/*
 * util.c -- the small things every module needs: error messages,
 * growable buffers, parsing of durations, sizes and integers typed by
 * people, clocks, and system-call loops that do not give up on a short
 * write or an EINTR.
 *
 * Invariants: nothing here prints, exits or keeps global mutable state;
 * every function is safe to call from any thread.  Parsers are strict:
 * they take the whole string or refuse it, never skip blanks or signs,
 * and leave their output untouched on failure.  Durations take whole
 * numbers only ("1.5s" is refused with a hint to write "1500ms"): a
 * fraction would bring floating-point rounding into timeouts and
 * retention for no gain, since a smaller unit always says it exactly.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* The fixed-width helpers in util.h copy host integers with memcpy and
 * the on-disk and wire formats are little-endian, so a big-endian build
 * would write data no other machine could read. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mq supports little-endian targets only (see mq_put_u32 in util.h)"
#endif

/* Longest user input quoted back in a message, so the hint after it fits. */
#define QUOTE_MAX 200

/* ---- errors ---- */

int mq_err_set(mq_err_t *err, int code, const char *fmt, ...)
{
	int saved = errno;
	if (err) {
		/* Through a copy: an argument may be err->msg itself
		 * ("-l: %s", err->msg), which vsnprintf may not overlap. */
		char msg[sizeof err->msg];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		memcpy(err->msg, msg, sizeof msg);
		err->code = code;
		err->sys = 0;
	}
	errno = saved;
	return -code;
}

/* strerror() may share a buffer between threads for unknown codes;
 * strerror_r comes in a GNU and an XSI flavour, hence the #if. */
static const char *sys_text(int e, char *buf, size_t n)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
	return strerror_r(e, buf, n);
#else
	if (strerror_r(e, buf, n) != 0)
		snprintf(buf, n, "error %d", e);
	return buf;
#endif
}

int mq_err_sys(mq_err_t *err, const char *fmt, ...)
{
	int saved = errno;
	int code = MQ_EIO;
	if (saved == ENOSPC)
		code = MQ_ENOSPC;
#ifdef EDQUOT
	if (saved == EDQUOT)
		code = MQ_ENOSPC;
#endif
	if (err) {
		char tmp[128], suffix[160], msg[sizeof err->msg];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap); /* a copy: an argument may be err->msg */
		va_end(ap);
		memcpy(err->msg, msg, sizeof msg);
		/* The system's reason is the useful part: cut the caller's
		 * text, never the reason, when both do not fit. */
		snprintf(suffix, sizeof suffix, ": %s", sys_text(saved, tmp, sizeof tmp));
		size_t slen = strlen(suffix);
		size_t keep = strlen(err->msg);
		if (keep > sizeof err->msg - 1 - slen)
			keep = sizeof err->msg - 1 - slen;
		memcpy(err->msg + keep, suffix, slen + 1);
		err->code = code;
		err->sys = saved;
	}
	errno = saved;
	return -code;
}

/* ---- buffers ---- */

/* Objects over PTRDIFF_MAX break pointer subtraction and malloc refuses
 * them anyway; refusing early also spares sanitizers a doomed request. */
#define BUF_MAX ((size_t)PTRDIFF_MAX)

int mq_buf_reserve(mq_buf_t *b, size_t extra)
{
	if (extra > BUF_MAX - b->len)
		return -MQ_ENOMEM;
	size_t need = b->len + extra;
	if (need <= b->cap)
		return 0;
	/* Doubling keeps appends amortised O(1): a buffer that grows to n
	 * bytes has been copied fewer than 2n bytes in all. */
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > BUF_MAX / 2 ? need : cap * 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return -MQ_ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int mq_buf_append(mq_buf_t *b, const void *data, size_t n)
{
	int rc = mq_buf_reserve(b, n);
	if (rc < 0)
		return rc;
	if (n) {
		memcpy(b->p + b->len, data, n);
		b->len += n;
	}
	return 0;
}

void mq_buf_free(mq_buf_t *b)
{
	if (!b)
		return;
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- parsing ---- */

/* Leading decimal digits of *sp into *v, advancing *sp past them.
 * 0 on success, -1 when there is no digit, -2 on overflow (the digits
 * are still consumed, so the caller can tell overflow from junk). */
static int scan_u64(const char **sp, uint64_t *v)
{
	const char *s = *sp;
	uint64_t r = 0;
	int over = 0;
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (r > (UINT64_MAX - d) / 10)
			over = 1;
		else
			r = r * 10 + d;
	}
	*sp = s;
	*v = r;
	return over ? -2 : 0;
}

/* ASCII-only, so the answer does not depend on the locale. */
static int ascii_caseeq(const char *a, const char *b)
{
	for (;; a++, b++) {
		int x = (*a >= 'A' && *a <= 'Z') ? *a + 32 : *a;
		int y = (*b >= 'A' && *b <= 'Z') ? *b + 32 : *b;
		if (x != y)
			return 0;
		if (!x)
			return 1;
	}
}

#define DUR_HINT "use e.g. 250ms, 10s, 5m, 2h, 1d or 1h30m"

/* Units are lower case only: "M" could as well mean months. */
static const struct { const char *unit; int64_t ms; } dur_units[] = {
	{ "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 }, { "h", 3600 * 1000 }, { "d", 86400 * 1000 },
};

/* The unit at *p (longest match: "ms" before "m"): its index, -1 if none. */
static int dur_unit(const char **p)
{
	int best = -1;
	size_t bl = 0;
	for (size_t i = 0; i < sizeof dur_units / sizeof dur_units[0]; i++) {
		size_t l = strlen(dur_units[i].unit);
		if (l > bl && strncmp(*p, dur_units[i].unit, l) == 0) {
			best = (int)i;
			bl = l;
		}
	}
	*p += bl;
	return best;
}

/* A plain number of seconds, or one or more NUMBER UNIT parts, each unit
 * at most once and from larger to smaller (1h30m, 1d2h, 1s500ms). */
int mq_parse_duration_ms(const char *s, int64_t *ms, mq_err_t *err)
{
	const char *p = s;
	int64_t total = 0;
	int last = (int)(sizeof dur_units / sizeof dur_units[0]);
	for (int parts = 0;; parts++) {
		uint64_t n;
		int rc = scan_u64(&p, &n);
		if (rc == -1)
			break;
		if (*p == '.')
			return mq_err_set(err, MQ_EINVAL, "duration '%.*s': fractions are not accepted; "
					  "use a smaller unit (e.g. 1500ms for 1.5s, 1h30m for 1.5h)", QUOTE_MAX, s);
		int64_t mult;
		if (*p == '\0' && parts == 0) {
			mult = 1000; /* a plain number: seconds */
		} else {
			int u = dur_unit(&p);
			if (u < 0)
				break;
			if (u >= last)
				return mq_err_set(err, MQ_EINVAL, "duration '%.*s': write the parts from the largest "
						  "unit to the smallest, each once (e.g. 1h30m)", QUOTE_MAX, s);
			last = u;
			mult = dur_units[u].ms;
		}
		if (rc == -2 || n > (uint64_t)(INT64_MAX / mult) || (int64_t)n * mult > INT64_MAX - total)
			return mq_err_set(err, MQ_EINVAL, "duration '%.*s': too large", QUOTE_MAX, s);
		total += (int64_t)n * mult;
		if (*p == '\0') {
			*ms = total;
			return 0;
		}
	}
	return mq_err_set(err, MQ_EINVAL, "duration '%.*s': not understood (" DUR_HINT ")",
	                  QUOTE_MAX, s);
}

/* Exactly n digits at *p: 0 with *v, the pointer moved; -1 otherwise. */
static int digits(const char **p, int n, int *v)
{
	int r = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		r = r * 10 + (c - '0');
	}
	*p += n;
	*v = r;
	return 0;
}

static int days_in_month(int y, int m)
{
	static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : d[m - 1];
}

/* 2026-11-24[(T| )HH:MM[:SS[.fff]][Z|+HH:MM|-HH:MM]]: local time unless
 * a zone is given (a zone needs the time of day). */
static int parse_calendar(const char *s, int64_t *ms)
{
	const char *p = s;
	int Y, M, D, h = 0, m = 0, sec = 0;
	if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' || digits(&p, 2, &D))
		return -1;
	if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > days_in_month(Y, M))
		return -1;
	int64_t frac = 0, tz = 0;
	int zoned = 0;
	if (*p == 'T' || *p == ' ') {
		p++;
		if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &m) || h > 23 || m > 59)
			return -1;
		if (*p == ':') {
			p++;
			if (digits(&p, 2, &sec) || sec > 60)
				return -1;
			if (*p == '.') {
				int n = 0;
				for (p++; *p >= '0' && *p <= '9'; p++, n++)
					if (n < 3)
						frac = frac * 10 + (*p - '0');
				if (!n)
					return -1;
				for (; n < 3; n++)
					frac *= 10;
			}
		}
		if (*p == 'Z') {
			p++;
			zoned = 1;
		} else if (*p == '+' || *p == '-') {
			int th, tm, sign = *p++ == '+' ? 1 : -1;
			if (digits(&p, 2, &th) || *p++ != ':' || digits(&p, 2, &tm) || th > 23 || tm > 59)
				return -1;
			tz = sign * (th * 3600 + tm * 60);
			zoned = 1;
		}
	}
	if (*p)
		return -1;
	struct tm t = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m,
		       .tm_sec = sec, .tm_isdst = -1};
	time_t secs = zoned ? timegm(&t) : mktime(&t);
	if (secs == (time_t)-1)
		return -1;
	*ms = ((int64_t)secs - tz) * 1000 + frac;
	return 0;
}

int mq_time_parse(const char *s, int64_t now_ms, int64_t *ms, mq_err_t *err)
{
	uint64_t v;
	int64_t d;
	if (s[0] == '@')
		s++;
	if ((s[0] == '-' || s[0] == '+') && mq_parse_duration_ms(s + 1, &d, NULL) == 0) {
		*ms = s[0] == '-' ? now_ms - d : now_ms + d;
		return 0;
	}
	if (mq_parse_u64(s, &v, NULL) == 0 && v <= INT64_MAX) {
		if (v < MQ_TIME_SECONDS_BELOW)
			v *= 1000;
		*ms = (int64_t)v;
		return 0;
	}
	if (parse_calendar(s, ms) == 0)
		return 0;
	return mq_err_set(err, MQ_EINVAL, "time '%.200s' not understood (use SECONDS or MS since the epoch "
			  "(below 10^11: seconds), 2026-11-24, 2026-11-24T10:00 local time, 2026-11-24T10:00:00Z, "
			  "-1h30m or +10m)", s);
}

#define SIZE_HINT "use e.g. 512, 64KiB, 1MiB, 1GiB"

/* Matched without regard to case.  "KB" is 1000 as the SI says, so
 * people who mean 1024 have "KiB" and the bare "K". */
static const struct { const char *unit; uint64_t mult; } size_units[] = {
	{ "", 1 }, { "b", 1 },
	{ "k", 1ull << 10 }, { "kib", 1ull << 10 }, { "kb", 1000ull },
	{ "m", 1ull << 20 }, { "mib", 1ull << 20 }, { "mb", 1000000ull },
	{ "g", 1ull << 30 }, { "gib", 1ull << 30 }, { "gb", 1000000000ull },
	{ "t", 1ull << 40 }, { "tib", 1ull << 40 }, { "tb", 1000000000000ull },
};

int mq_parse_size(const char *s, uint64_t *bytes, mq_err_t *err)
{
	const char *p = s;
	uint64_t n;
	int rc = scan_u64(&p, &n);
	for (size_t i = 0; rc != -1 && i < sizeof size_units / sizeof size_units[0]; i++) {
		if (!ascii_caseeq(p, size_units[i].unit))
			continue;
		if (rc == -2 || n > UINT64_MAX / size_units[i].mult)
			return mq_err_set(err, MQ_EINVAL, "size '%.*s': too large", QUOTE_MAX, s);
		*bytes = n * size_units[i].mult;
		return 0;
	}
	return mq_err_set(err, MQ_EINVAL, "size '%.*s': not understood (" SIZE_HINT ")",
	                  QUOTE_MAX, s);
}

int mq_parse_u64(const char *s, uint64_t *v, mq_err_t *err)
{
	const char *p = s;
	uint64_t n;
	int rc = scan_u64(&p, &n);
	if (rc == -2 && *p == '\0')
		return mq_err_set(err, MQ_EINVAL, "number '%.*s': too large (at most %llu)",
		                  QUOTE_MAX, s, (unsigned long long)UINT64_MAX);
	if (rc != 0 || *p != '\0')
		return mq_err_set(err, MQ_EINVAL,
		                  "number '%.*s': not understood (use digits only, e.g. 42)",
		                  QUOTE_MAX, s);
	*v = n;
	return 0;
}

/* ---- clocks ---- */

/* clock_gettime cannot fail for these clocks on any system we build
 * on, so the result is not checked. */
int64_t mq_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mq_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t mq_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- large allocations ---- */

void *mq_big_alloc(size_t n)
{
	if (n == 0)
		n = 1;
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	if (n >= ((size_t)2 << 20))
		madvise(p, n, MADV_HUGEPAGE); /* a hint: failure changes nothing */
#endif
	return p;
}

void mq_big_free(void *p, size_t n)
{
	if (p)
		munmap(p, n ? n : 1);
}

/* ---- system-call loops ---- */

/* One call never asks for more than this, which keeps the count within
 * ssize_t everywhere and is what Linux caps a single transfer at anyway. */
#define IO_CHUNK ((size_t)1 << 30)

void mq_drain_fd(int fd)
{
	char buf[64];
	while (fd >= 0 && read(fd, buf, sizeof buf) > 0)
		;
}

int mq_write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = write(fd, p, n < IO_CHUNK ? n : IO_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) { /* no progress and no reason: do not spin */
			errno = EIO;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* off and off+n must fit in off_t, which is signed. */
static int off_ok(uint64_t off, size_t n)
{
	uint64_t max = sizeof(off_t) >= 8 ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX;
	return off <= max && n <= max - off;
}

int mq_pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	const uint8_t *p = buf;
	if (!off_ok(off, n)) {
		errno = EINVAL;
		return -1;
	}
	while (n > 0) {
		ssize_t r = pwrite(fd, p, n < IO_CHUNK ? n : IO_CHUNK, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = EIO;
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

long long mq_pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	uint8_t *p = buf;
	size_t got = 0;
	if (!off_ok(off, n)) {
		errno = EINVAL;
		return -1;
	}
	while (got < n) {
		size_t want = n - got < IO_CHUNK ? n - got : IO_CHUNK;
		ssize_t r = pread(fd, p + got, want, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break; /* end of file */
		got += (size_t)r;
	}
	return (long long)got;
}

int mq_fsync_dir(const char *path, mq_err_t *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return mq_err_sys(err, "open directory %s", path);
	if (fsync(fd) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return mq_err_sys(err, "fsync directory %s", path);
	}
#ifdef MQ_FAULT_INJECT
	mq_fault_record_sync(path, 0, fd);
#endif
	close(fd);
	return 0;
}

int mq_fsync_parent(const char *path, mq_err_t *err)
{
	char parent[4096];
	int n = snprintf(parent, sizeof parent, "%s", path);
	if (n < 0 || (size_t)n >= sizeof parent)
		return mq_err_set(err, MQ_EINVAL, "path too long: '%.64s...'", path);
	while (n > 1 && parent[n - 1] == '/')
		parent[--n] = '\0';
	char *slash = strrchr(parent, '/');
	if (!slash)
		return mq_fsync_dir(".", err);
	slash[slash == parent] = '\0'; /* "/x" keeps its "/" */
	return mq_fsync_dir(parent, err);
}

#ifdef MQ_FAULT_INJECT
void mq_fault_record_sync(const char *path, uint64_t size, int dir_fd)
{
	const char *file = getenv("MQ_FAULT_SYNC_RECORD");
	mq_buf_t line = {0};
	char num[32];
	if (!file || !*file)
		return;
	mq_buf_append(&line, path, strlen(path));
	if (dir_fd < 0) {
		snprintf(num, sizeof(num), " %" PRIu64, size);
		mq_buf_append(&line, num, strlen(num));
	} else {
		int fd = dup(dir_fd);
		DIR *d = fd < 0 ? NULL : fdopendir(fd);
		struct dirent *de;
		mq_buf_append(&line, "/", 1);
		if (!d && fd >= 0)
			close(fd);
		while (d && (de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
				mq_buf_append(&line, " ", 1);
				mq_buf_append(&line, de->d_name, strlen(de->d_name));
			}
		if (d)
			closedir(d);
	}
	int out = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (out >= 0 && mq_buf_append(&line, "\n", 1) == 0)
		mq_write_all(out, line.p, line.len);
	if (out >= 0)
		close(out);
	mq_buf_free(&line);
}
#endif

int mq_write_file_atomic(const char *dir, const char *tmp, const char *final, const void *data, size_t n,
			 mq_err_t *err)
{
	char tpath[4096], fpath[4096];
	int fd, rc, a = snprintf(tpath, sizeof tpath, "%s/%s", dir, tmp),
		    b = snprintf(fpath, sizeof fpath, "%s/%s", dir, final);
	if (a < 0 || (size_t)a >= sizeof tpath || b < 0 || (size_t)b >= sizeof fpath)
		return mq_err_set(err, MQ_EINVAL, "path too long: '%.64s...' (use a shorter data directory path)", dir);
	fd = open(tpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return mq_err_sys(err, "cannot create '%s'", tpath);
	if (mq_write_all(fd, data, n) < 0) {
		rc = mq_err_sys(err, "cannot write '%s'", tpath);
		goto fail;
	}
	if (fsync(fd) < 0) {
		rc = mq_err_sys(err, "cannot sync '%s'", tpath);
		goto fail;
	}
	rc = close(fd);
	fd = -1;
	if (rc < 0) {
		rc = mq_err_sys(err, "cannot write '%s'", tpath);
		goto fail;
	}
	if (rename(tpath, fpath) < 0) {
		rc = mq_err_sys(err, "cannot rename '%s' to '%s'", tpath, fpath);
		goto fail;
	}
	return mq_fsync_dir(dir, err);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tpath);
	return rc;
}

size_t mq_utf8_seq(const uint8_t *p, size_t n)
{
	if (n == 0)
		return 0;
	uint8_t c = p[0];
	if (c < 0x80)
		return 1;
	size_t len;
	uint32_t cp, min;
	if ((c & 0xe0) == 0xc0)
		len = 2, cp = c & 0x1f, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		len = 3, cp = c & 0x0f, min = 0x800;
	else if ((c & 0xf8) == 0xf0)
		len = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

char *mq_printable(char *out, size_t size, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		size_t need = b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\' ? 1 : 4;
		if (o + need + (i + 1 < n ? 3 : 0) >= size) {
			if (o + 3 < size)
				memcpy(out + o, "...", 3), o += 3;
			break;
		}
		if (need == 1)
			out[o++] = (char)b[i];
		else
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", b[i]);
	}
	out[o] = 0;
	return out;
}

int mq_unescape(const char *s, uint8_t *out, size_t *n, mq_err_t *err)
{
	size_t o = 0;
	for (const char *p = s; *p; p++) {
		if (*p != '\\') {
			out[o++] = (uint8_t)*p;
			continue;
		}
		int h1, h2;
		switch (*++p) {
		case 'n': out[o++] = '\n'; break;
		case 't': out[o++] = '\t'; break;
		case 'r': out[o++] = '\r'; break;
		case '0': out[o++] = '\0'; break;
		case '\\': out[o++] = '\\'; break;
		case 'x':
			h1 = p[1] >= '0' && p[1] <= '9' ? p[1] - '0' : (p[1] | 32) >= 'a' && (p[1] | 32) <= 'f' ? (p[1] | 32) - 'a' + 10 : -1;
			h2 = h1 < 0 ? -1 : p[2] >= '0' && p[2] <= '9' ? p[2] - '0' : (p[2] | 32) >= 'a' && (p[2] | 32) <= 'f' ? (p[2] | 32) - 'a' + 10 : -1;
			if (h2 < 0)
				return mq_err_set(err, MQ_EINVAL, "'%.200s': \\x needs two hex digits (e.g. \\x1e)", s);
			out[o++] = (uint8_t)(h1 * 16 + h2);
			p += 2;
			break;
		default:
			return mq_err_set(err, MQ_EINVAL, "'%.200s': unknown escape '\\%c' (use \\n \\t \\r \\0 \\\\ or \\xHH)",
					  s, *p >= 0x20 && *p < 0x7f ? *p : '?');
		}
	}
	*n = o;
	return 0;
}
