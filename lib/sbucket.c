/*
 * sbucket.c -- the registry of shared buckets; see sbucket.h.
 *
 * Entries live in one array in creation order (that is also the file's
 * order), each holding its name inline, so an entry is one allocation's
 * slice and owns nothing.  An htab.h index by the fingerprint of the
 * name's keyed hash finds an entry; a fingerprint match is confirmed by
 * comparing names.  The array and the index double together when full,
 * so a define is amortised O(1) in memory (and O(n) on disk); a take
 * never allocates.
 *
 * A define changes memory first, then writes the file; if the write
 * fails, the change is undone, so memory never holds a definition that
 * the disk does not.
 */
#include "sbucket.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "hash.h"
#include "htab.h"
#include "store.h"

#define FILE_NAME "buckets"
#define TMP_NAME "buckets.tmp"
#define MAGIC "mq-buckets "
#define VERSION 2 /* written; 1 (no CRCs) is still read */
#define CRC_LEN 9 /* " %08x" at the end of a line */
#define BUCKET "bucket "
#define END "end "
/* Longest line: "bucket ", a name, three 20-digit numbers, blanks, CRC and newline. */
#define LINE_MAX_BYTES (sizeof BUCKET + MQ_NAME_MAX + 3 * 21 + CRC_LEN + 1)
#define FILE_MAX_BYTES ((uint64_t)MQ_SBUCKETS_MAX * LINE_MAX_BYTES + 64)

#define FIX_HINT                                                                                             \
	"move the file aside and restart mq-serve, then define the buckets again with mq-bucket --take NAME -r " \
	"RATE"

typedef struct sb {
	mq_bucket_t b;
	uint32_t fp;
	char name[MQ_NAME_MAX + 1];
} sb_t;

struct mq_sbuckets {
	char *dir;  /* state_dir */
	char *path; /* state_dir/buckets */
	mq_hashkey_t key;
	sb_t *e;
	uint32_t count, cap;
	mq_htab_t tab; /* for cap entries */
	mq_buf_t text; /* the file, rebuilt by each write */
	int future;    /* the file is of a newer format: never rewritten */
};

/* ---- the index ---- */

static uint32_t fingerprint(const mq_sbuckets_t *s, const char *name, size_t n)
{
	return (uint32_t)mq_hash128(&s->key, name, n).lo;
}

/* The entry of name, or NULL; *pos is then where an insert goes. */
static sb_t *find(const mq_sbuckets_t *s, const char *name, size_t n, uint32_t fp, size_t *pos)
{
	if (!s->cap)
		return NULL;
	size_t at = mq_htab_home(&s->tab, fp);
	long i;
	while ((i = mq_htab_next(&s->tab, fp, &at)) >= 0)
		if (!memcmp(s->e[i].name, name, n + 1))
			return &s->e[i];
	if (pos)
		*pos = at;
	return NULL;
}

/* Room for one more entry: doubles the array and rebuilds the index. */
static int grow(mq_sbuckets_t *s, mq_err_t *err)
{
	if (s->count < s->cap)
		return 0;
	uint32_t cap = s->cap ? s->cap * 2 : 16;
	if (cap > MQ_SBUCKETS_MAX)
		cap = MQ_SBUCKETS_MAX;
	mq_htab_t tab = {0};
	int rc;
	if ((rc = mq_htab_init(&tab, cap, err)) < 0)
		return rc;
	sb_t *e = realloc(s->e, (size_t)cap * sizeof *e);
	if (!e) {
		mq_htab_free(&tab);
		return mq_err_set(err, MQ_ENOMEM, "shared buckets: out of memory for %" PRIu32 " buckets", cap);
	}
	for (uint32_t i = 0; i < s->count; i++) {
		size_t pos = mq_htab_home(&tab, e[i].fp);
		while (mq_htab_next(&tab, e[i].fp, &pos) >= 0)
			;
		mq_htab_put(&tab, pos, e[i].fp, i);
	}
	mq_htab_free(&s->tab);
	s->tab = tab;
	s->e = e;
	s->cap = cap;
	return 0;
}

/* Appends a new, full bucket (name not there yet, rate checked). */
static int add(mq_sbuckets_t *s, const char *name, size_t n, const mq_rate_t *rate, uint64_t burst, uint64_t now,
	       mq_err_t *err)
{
	int rc;
	if (s->count >= MQ_SBUCKETS_MAX)
		return mq_err_set(err, MQ_EINVAL,
				  "shared bucket '%s': the broker already holds %u shared buckets, the most it keeps "
				  "(use one of those)",
				  name, MQ_SBUCKETS_MAX);
	if ((rc = grow(s, err)) < 0)
		return rc;
	uint32_t fp = fingerprint(s, name, n);
	size_t pos = mq_htab_home(&s->tab, fp);
	while (mq_htab_next(&s->tab, fp, &pos) >= 0)
		;
	sb_t *b = &s->e[s->count];
	b->fp = fp;
	memcpy(b->name, name, n + 1);
	mq_bucket_init(&b->b, rate, burst, now);
	mq_htab_put(&s->tab, pos, fp, s->count++);
	return 0;
}

/* Undoes the last add. */
static void drop_last(mq_sbuckets_t *s)
{
	uint32_t i = --s->count;
	mq_htab_remove_at(&s->tab, mq_htab_slot_of(&s->tab, s->e[i].fp, i));
}

/* ---- the file ---- */

/* rate and burst as a define gets them: 0 and the values to keep, or
 * -MQ_EINVAL. */
static int check_definition(const char *name, mq_rate_t *rate, uint64_t *burst, mq_err_t *err)
{
	int rc;
	if ((rc = mq_name_check("shared bucket", name, 0, err)) < 0)
		return rc;
	if ((rc = mq_rate_check(rate, err)) < 0)
		return rc;
	if (!*burst)
		*burst = mq_rate_per_second(rate);
	if (*burst > MQ_BUCKET_MAX_BURST)
		return mq_err_set(err, MQ_EINVAL, "shared bucket '%s': a burst of %" PRIu64 " is more than %" PRIu64
				  " (use a smaller -B)", name, *burst, MQ_BUCKET_MAX_BURST);
	return 0;
}

typedef struct reader {
	const char *start, *p, *end, *path;
	const char *hint; /* appended to a complaint: what to do */
	uint64_t version;
	const char *nl;   /* format 2: the end of the line being read */
} reader_t;

static int corrupt(const reader_t *r, const char *what, mq_err_t *err)
{
	unsigned line = 1;
	for (const char *q = r->start; q < r->p; q++)
		line += *q == '\n';
	return mq_err_set(err, MQ_ECORRUPT, "shared bucket definitions '%s', byte %zu (line %u): %s%s", r->path,
			  (size_t)(r->p - r->start), line, what, r->hint);
}

/* Format 2: the line at r->p must end with the CRC of its text; the
 * fields then end at the blank before the CRC (r->nl points there). */
static int check_line(reader_t *r, mq_err_t *err)
{
	if (r->version < 2) {
		r->nl = NULL;
		return 0;
	}
	const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
	if (!nl)
		return corrupt(r, "the line is cut short (no newline)", err);
	const char *c = nl - (CRC_LEN - 1);
	uint32_t want = 0;
	if (nl - r->p < CRC_LEN + 1 || c[-1] != ' ')
		return corrupt(r, "the line has no checksum", err);
	for (int i = 0; i < CRC_LEN - 1; i++) {
		int d = c[i] >= '0' && c[i] <= '9' ? c[i] - '0' : c[i] >= 'a' && c[i] <= 'f' ? c[i] - 'a' + 10 : -1;
		if (d < 0)
			return corrupt(r, "the line has no checksum", err);
		want = want << 4 | (uint32_t)d;
	}
	if (mq_crc32c(0, r->p, (size_t)(c - 1 - r->p)) != want)
		return corrupt(r, "the line fails its checksum (a changed byte)", err);
	r->nl = c - 1;
	return 0;
}

/* After the last field of a line (read up to the byte `then`): format 2
 * steps over the CRC checked by check_line. */
static int end_line(reader_t *r, const char *what, mq_err_t *err)
{
	if (!r->nl)
		return 0;
	if (r->p != r->nl + 1)
		return corrupt(r, what, err);
	r->p = r->nl + CRC_LEN + 1;
	return 0;
}

/* A decimal number ending at the byte `then`, which is consumed too. */
static int read_u64(reader_t *r, char then, uint64_t *v, const char *what, mq_err_t *err)
{
	uint64_t x = 0;
	const char *q = r->p;
	for (; q < r->end && *q >= '0' && *q <= '9'; q++) {
		uint64_t d = (uint64_t)(*q - '0');
		if (x > UINT64_MAX / 10 || (x == UINT64_MAX / 10 && d > UINT64_MAX % 10))
			return corrupt(r, what, err);
		x = x * 10 + d;
	}
	if (q == r->p || q == r->end || *q != then)
		return corrupt(r, what, err);
	r->p = q + 1;
	*v = x;
	return 0;
}

/* True when the next line starts with word. */
static int at_word(const reader_t *r, const char *word)
{
	size_t n = strlen(word);
	return (size_t)(r->end - r->p) >= n && !memcmp(r->p, word, n);
}

/* "bucket NAME TOKENS PER_NS BURST\n" (at_word(r, BUCKET) is true). */
static int read_bucket(mq_sbuckets_t *s, reader_t *r, mq_err_t *err)
{
	char name[MQ_NAME_MAX + 1];
	const char *line = r->p, *from = r->p + sizeof BUCKET - 1;
	const char *blank = memchr(from, ' ', (size_t)(r->end - from));
	size_t n = blank ? (size_t)(blank - from) : 0;
	mq_rate_t rate;
	uint64_t burst;
	int rc;
	if ((rc = check_line(r, err)) < 0)
		return rc;
	if (!blank || !n || n > MQ_NAME_MAX)
		return corrupt(r, "expected 'bucket NAME TOKENS PER_NS BURST'", err);
	memcpy(name, from, n);
	name[n] = '\0';
	if (strlen(name) != n || mq_name_check("shared bucket", name, 0, NULL) < 0)
		return corrupt(r, "not a valid bucket name", err);
	if (find(s, name, n, fingerprint(s, name, n), NULL))
		return corrupt(r, "a second definition of the same bucket", err);
	r->p = blank + 1;
	if ((rc = read_u64(r, ' ', &rate.tokens, "expected the rate's token count", err)) < 0 ||
	    (rc = read_u64(r, ' ', &rate.per_ns, "expected the rate's period in ns", err)) < 0 ||
	    (rc = read_u64(r, r->nl ? ' ' : '\n', &burst, "expected the burst and the end of the line", err)) < 0 ||
	    (rc = end_line(r, "expected the burst and the end of the line", err)) < 0)
		return rc;
	mq_rate_t reduced = rate;
	if (!burst || mq_rate_check(&reduced, NULL) < 0 || reduced.tokens != rate.tokens ||
	    check_definition(name, &rate, &burst, NULL) < 0) {
		r->p = line;
		return corrupt(r, "a rate or burst out of range", err);
	}
	/* Loaded buckets start full: the time they were last used is not
	 * kept, and a full bucket does not look at it. */
	return add(s, name, n, &rate, burst, 0, err);
}

static int parse(mq_sbuckets_t *s, const char *text, size_t len, const char *hint, mq_err_t *err)
{
	reader_t r = {.start = text, .p = text, .end = text + len, .path = s->path, .hint = hint};
	uint64_t v, count;
	int rc;
	if (len < sizeof MAGIC - 1 || memcmp(text, MAGIC, sizeof MAGIC - 1))
		return corrupt(&r, "not a shared bucket definitions file (no 'mq-buckets' line)", err);
	r.p += sizeof MAGIC - 1;
	if ((rc = read_u64(&r, '\n', &v, "expected the format version", err)) < 0)
		return rc;
	if (v > VERSION || v < 1) {
		s->future = 1;
		return mq_err_set(err, MQ_ECORRUPT,
				  "shared bucket definitions '%s': format %" PRIu64 " is not known to mq-serve %s, "
				  "which reads formats 1 to %d (run a newer mq-serve, or " FIX_HINT ")",
				  s->path, v, MQ_VERSION, VERSION);
	}
	r.version = v;
	while (at_word(&r, BUCKET))
		if ((rc = read_bucket(s, &r, err)) < 0)
			return rc;
	if (r.p == r.end)
		return corrupt(&r, "the file ends without its 'end' line (cut short?)", err);
	if (!at_word(&r, END))
		return corrupt(&r, "expected 'bucket NAME TOKENS PER_NS BURST' or 'end COUNT'", err);
	const char *end_at = r.p;
	if ((rc = check_line(&r, err)) < 0)
		return rc;
	r.p += sizeof END - 1;
	if ((rc = read_u64(&r, r.nl ? ' ' : '\n', &count, "expected the count of buckets after 'end'", err)) < 0 ||
	    (rc = end_line(&r, "expected the count of buckets after 'end'", err)) < 0)
		return rc;
	if (r.p != r.end)
		return corrupt(&r, "more after the 'end' line", err);
	if (count != s->count) {
		r.p = end_at;
		return corrupt(&r, "the count on the 'end' line does not match the buckets above it", err);
	}
	return 0;
}

static int save(mq_sbuckets_t *s, mq_err_t *err);

static int load(mq_sbuckets_t *s, mq_report_fn report, void *ctx, mq_err_t *err)
{
	struct stat sb;
	char *text = NULL;
	int rc = 0, fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : mq_err_sys(err, "cannot open shared bucket definitions '%s'", s->path);
	if (fstat(fd, &sb) < 0) {
		rc = mq_err_sys(err, "cannot read shared bucket definitions '%s'", s->path);
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > FILE_MAX_BYTES) {
		rc = mq_err_set(err, MQ_ECORRUPT,
				"'%s' is not a shared bucket definitions file (not a regular file, or over %" PRIu64
				" bytes) (" FIX_HINT ")",
				s->path, FILE_MAX_BYTES);
		goto out;
	}
	if (!(text = malloc((size_t)sb.st_size + 1))) {
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory reading shared bucket definitions '%s'", s->path);
		goto out;
	}
	long long got = mq_pread_full(fd, text, (size_t)sb.st_size, 0);
	if (got < 0) {
		rc = mq_err_sys(err, "cannot read shared bucket definitions '%s'", s->path);
		goto out;
	}
	if (!report) {
		rc = parse(s, text, (size_t)got, " (" FIX_HINT ")", err);
		goto out;
	}
	/* The broker's way: keep what came before the damage and say so. */
	mq_err_t e;
	if ((rc = parse(s, text, (size_t)got, "", &e)) != -MQ_ECORRUPT || s->future) {
		if (rc < 0 && err)
			*err = e;
		goto out;
	}
	char line[sizeof e.msg + 160];
	int n = snprintf(line, sizeof line, "%s; kept %" PRIu32 " bucket%s before it, dropped the rest", e.msg,
			 s->count, s->count == 1 ? "" : "s");
	if ((rc = save(s, &e)) < 0 && n > 0 && (size_t)n < sizeof line)
		snprintf(line + n, sizeof line - (size_t)n, " (the file stays as it is until the next define: %s)",
			 e.msg);
	report(ctx, line);
	rc = 0;
out:
	free(text);
	close(fd);
	return rc;
}

/* Creates s->dir if missing (and makes that durable). */
static int make_dir(const mq_sbuckets_t *s, mq_err_t *err)
{
	if (mkdir(s->dir, 0755) == 0) {
		char parent[4096];
		const char *slash = strrchr(s->dir, '/');
		int n = !slash ? snprintf(parent, sizeof parent, ".")
			       : snprintf(parent, sizeof parent, "%.*s", slash == s->dir ? 1 : (int)(slash - s->dir),
					  s->dir);
		if (n < 0 || (size_t)n >= sizeof parent)
			return 0; /* cannot name it; the directory exists all the same */
		return mq_fsync_dir(parent, err);
	}
	if (errno == EEXIST)
		return 0;
	return mq_err_sys(err, "cannot create the state directory '%s' for shared bucket definitions", s->dir);
}

static int save(mq_sbuckets_t *s, mq_err_t *err)
{
	mq_buf_t *t = &s->text;
	int rc;
	t->len = 0;
	for (uint32_t i = 0; i <= s->count + 1; i++) {
		if (mq_buf_reserve(t, LINE_MAX_BYTES + 1) < 0)
			return mq_err_set(err, MQ_ENOMEM, "out of memory writing '%s'", s->path);
		char *at = (char *)t->p + t->len;
		int n;
		if (i == 0) {
			n = snprintf(at, LINE_MAX_BYTES + 1, MAGIC "%d\n", VERSION);
			t->len += (size_t)n;
			continue;
		}
		if (i <= s->count)
			n = snprintf(at, LINE_MAX_BYTES + 1, BUCKET "%s %" PRIu64 " %" PRIu64 " %" PRIu64,
				     s->e[i - 1].name, s->e[i - 1].b.rate.tokens, s->e[i - 1].b.rate.per_ns,
				     s->e[i - 1].b.burst);
		else
			n = snprintf(at, LINE_MAX_BYTES + 1, END "%" PRIu32, s->count);
		n += snprintf(at + n, LINE_MAX_BYTES + 1 - (size_t)n, " %08" PRIx32 "\n",
			      mq_crc32c(0, at, (size_t)n));
		t->len += (size_t)n;
	}
	if ((rc = make_dir(s, err)) < 0)
		return rc;
	return mq_write_file_atomic(s->dir, TMP_NAME, FILE_NAME, t->p, t->len, err);
}

/* ---- the API ---- */

int mq_sbuckets_open(const char *state_dir, mq_report_fn report, void *ctx, mq_sbuckets_t **out, mq_err_t *err)
{
	mq_sbuckets_t *s;
	int rc;
	*out = NULL;
	if (!(s = calloc(1, sizeof *s)))
		return mq_err_set(err, MQ_ENOMEM, "shared buckets: out of memory");
	size_t n = strlen(state_dir);
	if (!(s->dir = strdup(state_dir)) || !(s->path = malloc(n + sizeof "/" FILE_NAME))) {
		rc = mq_err_set(err, MQ_ENOMEM, "shared buckets: out of memory");
		goto fail;
	}
	memcpy(s->path, state_dir, n);
	memcpy(s->path + n, "/" FILE_NAME, sizeof "/" FILE_NAME);
	if ((rc = mq_hashkey_random(&s->key, err)) < 0 || (rc = load(s, report, ctx, err)) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	mq_sbuckets_close(s);
	return rc;
}

void mq_sbuckets_close(mq_sbuckets_t *s)
{
	if (!s)
		return;
	free(s->e);
	mq_htab_free(&s->tab);
	mq_buf_free(&s->text);
	free(s->path);
	free(s->dir);
	free(s);
}

int mq_sbuckets_define(mq_sbuckets_t *s, const char *name, const mq_rate_t *rate, uint64_t burst, uint64_t now_ns,
		       mq_err_t *err)
{
	mq_rate_t r = *rate;
	int rc;
	if ((rc = check_definition(name, &r, &burst, err)) < 0)
		return rc;
	size_t n = strlen(name);
	sb_t *b = find(s, name, n, fingerprint(s, name, n), NULL);
	if (!b) {
		if ((rc = add(s, name, n, &r, burst, now_ns, err)) < 0)
			return rc;
		if ((rc = save(s, err)) < 0)
			drop_last(s);
		return rc;
	}
	if (b->b.rate.tokens == r.tokens && b->b.rate.per_ns == r.per_ns && b->b.burst == burst)
		return 0;
	mq_bucket_t old = b->b;
	mq_bucket_redefine(&b->b, &r, burst, now_ns);
	if ((rc = save(s, err)) < 0)
		b->b = old;
	return rc;
}

int mq_sbuckets_defined_as(mq_sbuckets_t *s, const char *name, const mq_rate_t *rate, uint64_t burst)
{
	mq_rate_t r = *rate;
	mq_err_t e;
	if (check_definition(name, &r, &burst, &e) < 0)
		return 0;
	size_t n = strlen(name);
	sb_t *b = find(s, name, n, fingerprint(s, name, n), NULL);
	return b && b->b.rate.tokens == r.tokens && b->b.rate.per_ns == r.per_ns && b->b.burst == burst;
}

int mq_sbuckets_take(mq_sbuckets_t *s, const char *name, uint64_t want, uint64_t min, uint64_t now_ns,
		     uint64_t *granted, uint64_t *wait_ns, mq_err_t *err)
{
	*granted = *wait_ns = 0;
	size_t n = strlen(name);
	sb_t *b = n <= MQ_NAME_MAX ? find(s, name, n, fingerprint(s, name, n), NULL) : NULL;
	if (!b) {
		int rc = mq_name_check("shared bucket", name, 0, err);
		return rc < 0 ? rc : mq_err_set(err, MQ_ENOENT, "no shared bucket '%s' (create it with -r RATE)", name);
	}
	if (min < 1 || min > want)
		return mq_err_set(err, MQ_EINVAL,
				  "shared bucket '%s': a take of at least %" PRIu64 " and at most %" PRIu64
				  " tokens (it needs 1 <= at least <= at most)",
				  name, min, want);
	if (min > b->b.burst) {
		/* More than the bucket holds: granted (min, exactly) once it is
		 * full, leaving it in debt, as a local bucket does; so the
		 * long-run rate holds. */
		if (mq_bucket_take(&b->b, min, now_ns))
			*granted = min;
		else
			*wait_ns = mq_bucket_wait_ns(&b->b, min, now_ns);
		return 0;
	}
	if (!(*granted = mq_bucket_take_upto(&b->b, want, min, now_ns)))
		*wait_ns = mq_bucket_wait_ns(&b->b, min, now_ns);
	return 0;
}

uint32_t mq_sbuckets_count(const mq_sbuckets_t *s)
{
	return s->count;
}

void mq_sbuckets_each(const mq_sbuckets_t *s,
		      void (*fn)(void *ctx, const char *name, const mq_rate_t *rate, uint64_t burst, int64_t tokens),
		      void *ctx)
{
	for (uint32_t i = 0; i < s->count; i++)
		fn(ctx, s->e[i].name, &s->e[i].b.rate, s->e[i].b.burst, s->e[i].b.tokens);
}
