/*
 * store.c -- the data directory: the lock, the format stamp, topics and
 * their metadata, and the lazily opened partition logs (layout in store.h).
 *
 * Invariants:
 *   - one process owns DIR: it holds flock(LOCK_EX) on DIR/mq.lock for the
 *     store's whole life, and the file holds its pid for error messages;
 *   - a topic exists exactly when DIR/topics/NAME/topic.meta exists.  Create
 *     makes the partition directories first and renames the meta into place
 *     last, so a crash leaves either a whole topic or a directory with only
 *     empty partition directories, which open removes;
 *   - topic.meta is only ever replaced by rename of a fsynced topic.meta.tmp,
 *     so a reader sees the old or the new version, never a mix;
 *   - delete first renames the topic directory to a name that no topic can
 *     have (".deleting~NAME~PID~N": '~' is outside the name alphabet, so a
 *     user topic called ".deleting-x" can never be mistaken for one), then
 *     removes it; open finishes any removal a crash interrupted;
 *   - removal never follows a symbolic link: entries are opened O_NOFOLLOW
 *     and a link is unlinked, not entered;
 *   - in memory, topics are a sorted array of pointers (binary search;
 *     insert and delete move pointers, which is fine for the thousands of
 *     topics we aim at, and admin operations are rare).  A topic owns its
 *     array of partition logs, allocated on first use; a NULL slot is a
 *     partition not opened yet.
 *   - descriptors are bounded: an opened log stays in memory, but only the
 *     max_open logs used most recently hold descriptors ("held", a list in
 *     order of use); taking one more first releases the least recently
 *     used (mq_log_release: synced, then closed; it opens its files again
 *     when next used).  max_open comes from RLIMIT_NOFILE, with half of
 *     the limit left for sockets, state files and directory walks, and two
 *     descriptors a log (its active segment and one sealed one).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "util.h"

#define FORMAT_LINE "mq-data 1\n"
#define META_FILE "topic.meta"
#define META_TMP "topic.meta.tmp"
#define FORMAT_TMP "format.tmp"
#define DELETING_PREFIX ".deleting~"
#define META_MAX_BYTES 65536 /* a topic.meta larger than this is not ours */
#define RM_MAX_DEPTH 16      /* our trees are 3 deep; deeper is not ours */

struct topic {
	mq_topic_meta_t meta;
	mq_log_t **logs; /* NULL until first mq_store_log; nlogs slots */
	int *held;       /* per partition: its slot in the store's held list, or -1 */
	uint32_t nlogs;
	char name[];
};

/* A log that may hold descriptors, in a list ordered by use. */
struct held {
	struct topic *t;
	uint32_t p;
	int prev, next; /* toward the most / least recently used; -1 at the ends */
};

struct mq_store {
	char *dir;  /* as given */
	char *base; /* dir without trailing slashes, for building paths */
	int lock_fd;
	mq_log_opts_t defaults;
	struct topic **topics; /* sorted by name */
	size_t ntopics, cap;
	unsigned long deletions; /* makes .deleting~ names unique */
	struct held *held;       /* max_open slots */
	int max_open, nheld, mru, lru, free_slot;
	uint64_t syncs;   /* partition syncs made by mq_store_commit */
	uint64_t changes; /* topics created, changed or deleted */
};

/* ---- small helpers ---- */

static int path_fmt(char *buf, size_t cap, mq_err_t *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int path_fmt(char *buf, size_t cap, mq_err_t *err, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap)
		return mq_err_set(err, MQ_EINVAL, "path too long: '%.64s...' (use a shorter data directory path)", buf);
	return 0;
}

/* Copy name into out for a message: control bytes as \xHH, long names cut
 * with an ellipsis, so a hostile name cannot garble a terminal or a log. */
static const char *name_show(const char *name, char *out, size_t cap, size_t max_chars)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; name[i] && i < max_chars && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	if (name[i] && o + 4 <= cap) {
		memcpy(out + o, "\xe2\x80\xa6", 3); /* U+2026 ellipsis */
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/* Strict decimal integer: optional '-' (if allow_neg), digits, nothing else. */
static int parse_i64(const char *s, int allow_neg, int64_t *v)
{
	int neg = 0;
	uint64_t r = 0, lim;

	if (*s == '-' && allow_neg) {
		neg = 1;
		s++;
	}
	if (!*s)
		return -1;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (r > (lim - (uint64_t)(*s - '0')) / 10)
			return -1;
		r = r * 10 + (uint64_t)(*s - '0');
	}
	*v = neg ? (int64_t)(0 - r) : (int64_t)r;
	return 0;
}

static int is_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* ---- names ---- */

int mq_name_check(const char *what, const char *name, int allow_reserved, mq_err_t *err)
{
	char show[300];
	size_t len, i;

	if (!what)
		what = "name";
	if (!name || !*name)
		return mq_err_set(err, MQ_EINVAL, "%s '': empty name", what);
	len = strnlen(name, MQ_NAME_MAX + 1);
	if (len > MQ_NAME_MAX)
		return mq_err_set(err, MQ_EINVAL, "%s '%s': name longer than %d characters", what,
				  name_show(name, show, sizeof(show), 32), MQ_NAME_MAX);
	for (i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return mq_err_set(err, MQ_EINVAL, "%s '%s': invalid name (use A-Z a-z 0-9 . _ -)", what,
					  name_show(name, show, sizeof(show), 64));
	}
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return mq_err_set(err, MQ_EINVAL, "%s '%s': invalid name ('.' and '..' are not allowed)", what, name);
	if (!allow_reserved && name[0] == '_' && name[1] == '_')
		return mq_err_set(err, MQ_EINVAL, "%s '%s': names starting with __ are reserved", what, name);
	return 0;
}

/* ---- filesystem helpers ---- */

/* mkdir -p with mode 0755; the last component must end up a directory. */
static int mkdir_p(const char *path, mq_err_t *err)
{
	char buf[PATH_MAX];
	struct stat sb;
	size_t i, len = strlen(path);
	int rc;

	if ((rc = path_fmt(buf, sizeof(buf), err, "%s", path)) < 0)
		return rc;
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		if (buf[i - 1] == '/')
			continue;
		buf[i] = '\0';
		/* An existing directory may refuse mkdir with EACCES or
		 * EROFS rather than EEXIST: only a missing one is an error. */
		if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
			int e = errno; /* the stat below must not replace EACCES with ENOENT */
			if (!(stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode))) {
				errno = e;
				return mq_err_sys(err, "cannot create directory '%s'", buf);
			}
		}
		if (i < len)
			buf[i] = '/';
	}
	if (stat(path, &sb) < 0)
		return mq_err_sys(err, "'%s'", path);
	if (!S_ISDIR(sb.st_mode))
		return mq_err_set(err, MQ_EINVAL, "'%s' exists and is not a directory", path);
	return 0;
}

/* mkdir one level; an existing directory is fine.  1 if it was made. */
static int mkdir_one(const char *path, mq_err_t *err)
{
	struct stat sb;

	if (mkdir(path, 0755) == 0)
		return 1;
	if (errno != EEXIST)
		return mq_err_sys(err, "cannot create directory '%s'", path);
	if (lstat(path, &sb) < 0)
		return mq_err_sys(err, "'%s'", path);
	if (!S_ISDIR(sb.st_mode))
		return mq_err_set(err, MQ_ECORRUPT, "'%s' exists and is not a directory (move it out of the data directory)", path);
	return 0;
}

/* Remove name (relative to parent) and everything under it, never following
 * a symbolic link.  path is name's full path, for messages only. */
static int rm_tree(int parent, const char *name, const char *path, int depth, mq_err_t *err)
{
	char sub[PATH_MAX];
	struct stat sb;
	struct dirent *de;
	DIR *d = NULL;
	int fd, rc = 0;

	if (fstatat(parent, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return mq_err_sys(err, "cannot remove '%s'", path);
	}
	if (!S_ISDIR(sb.st_mode)) {
		if (unlinkat(parent, name, 0) < 0 && errno != ENOENT)
			return mq_err_sys(err, "cannot remove '%s'", path);
		return 0;
	}
	if (depth >= RM_MAX_DEPTH)
		return mq_err_set(err, MQ_ECORRUPT, "cannot remove '%s': nested too deep (remove it by hand)", path);
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return mq_err_sys(err, "cannot remove '%s'", path);
	if (!(d = fdopendir(fd))) {
		close(fd);
		return mq_err_sys(err, "cannot remove '%s'", path);
	}
	/* Unlinking while reading the same directory is fine on Linux and
	 * the BSDs; POSIX only leaves open whether removed names still show. */
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((rc = path_fmt(sub, sizeof(sub), err, "%s/%s", path, de->d_name)) < 0)
			goto err;
		if ((rc = rm_tree(dirfd(d), de->d_name, sub, depth + 1, err)) < 0)
			goto err;
	}
	if (errno) {
		rc = mq_err_sys(err, "cannot read directory '%s'", path);
		goto err;
	}
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return mq_err_sys(err, "cannot remove '%s'", path);
	return 0;
err:
	closedir(d);
	return rc;
}

/* ---- topic.meta ---- */

static int meta_encode(const mq_topic_meta_t *m, char *buf, size_t cap)
{
	int n = snprintf(buf, cap,
			 "partitions=%u\nretention_ms=%lld\nretention_bytes=%lld\ncreated_ms=%lld\n",
			 (unsigned)m->partitions, (long long)m->retention_ms,
			 (long long)m->retention_bytes, (long long)m->created_ms);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* Parse topic.meta text (NUL-terminated).  path for messages. */
static int meta_parse(char *text, const char *path, mq_topic_meta_t *m, mq_err_t *err)
{
	char *line = text, *next, *eq;
	int64_t v;
	int lineno = 0, have_partitions = 0;

	memset(m, 0, sizeof(*m));
	for (; *line; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		else
			next = line + strlen(line);
		if (!*line || *line == '#')
			continue;
		if (!(eq = strchr(line, '=')) || eq == line)
			return mq_err_set(err, MQ_ECORRUPT, "'%s' line %d: expected key=value (restore the file from a backup, or rewrite it)",
					  path, lineno);
		*eq++ = '\0';
		if (!strcmp(line, "partitions")) {
			if (parse_i64(eq, 0, &v) < 0 || v < 1 || v > MQ_PARTITIONS_MAX)
				goto bad;
			m->partitions = (uint32_t)v;
			have_partitions = 1;
		} else if (!strcmp(line, "retention_ms")) {
			if (parse_i64(eq, 1, &v) < 0)
				goto bad;
			m->retention_ms = v;
		} else if (!strcmp(line, "retention_bytes")) {
			if (parse_i64(eq, 1, &v) < 0)
				goto bad;
			m->retention_bytes = v;
		} else if (!strcmp(line, "created_ms")) {
			if (parse_i64(eq, 1, &v) < 0)
				goto bad;
			m->created_ms = v;
		}
		/* Unknown keys: written by a newer mq; ignore them. */
	}
	if (!have_partitions)
		return mq_err_set(err, MQ_ECORRUPT, "'%s': no partitions= line (restore the file from a backup, or rewrite it)", path);
	return 0;
bad:
	return mq_err_set(err, MQ_ECORRUPT, "'%s' line %d: bad value for %s: '%.64s' (expected %s; fix the line "
			  "or restore the file from a backup)", path, lineno, line, eq,
			  !strcmp(line, "partitions") ? "1-10000" : "an integer");
}

/* Read dir/topic.meta.  -MQ_ENOENT (with err set) if it does not exist. */
static int meta_read(const char *dir, mq_topic_meta_t *m, mq_err_t *err)
{
	char path[PATH_MAX];
	char *text = NULL;
	struct stat sb;
	long long got;
	int fd, rc;

	if ((rc = path_fmt(path, sizeof(path), err, "%s/%s", dir, META_FILE)) < 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return mq_err_set(err, MQ_ENOENT, "'%s': no such file", path);
		return mq_err_sys(err, "cannot open '%s'", path);
	}
	if (fstat(fd, &sb) < 0) {
		rc = mq_err_sys(err, "cannot read '%s'", path);
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size > META_MAX_BYTES) {
		rc = mq_err_set(err, MQ_ECORRUPT, "'%s': not a topic.meta file (restore it from a backup, or rewrite it)", path);
		goto out;
	}
	if (!(text = malloc((size_t)sb.st_size + 1))) {
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory reading '%s'", path);
		goto out;
	}
	got = mq_pread_full(fd, text, (size_t)sb.st_size, 0);
	if (got < 0) {
		rc = mq_err_sys(err, "cannot read '%s'", path);
		goto out;
	}
	text[got] = '\0';
	if (strlen(text) != (size_t)got) {
		rc = mq_err_set(err, MQ_ECORRUPT, "'%s': contains NUL bytes (restore it from a backup, or rewrite it)", path);
		goto out;
	}
	rc = meta_parse(text, path, m, err);
out:
	free(text);
	close(fd);
	return rc;
}

static int meta_write(const char *dir, const mq_topic_meta_t *m, mq_err_t *err)
{
	char text[256];
	int n = meta_encode(m, text, sizeof(text));

	if (n < 0)
		return mq_err_set(err, MQ_EINVAL, "topic metadata does not fit");
	return mq_write_file_atomic(dir, META_TMP, META_FILE, text, (size_t)n, err);
}

/* ---- topics in memory ---- */

static struct topic *topic_new(const char *name, const mq_topic_meta_t *m)
{
	size_t n = strlen(name) + 1;
	struct topic *t = calloc(1, sizeof(*t) + n);

	if (!t)
		return NULL;
	t->meta = *m;
	memcpy(t->name, name, n);
	return t;
}

static void topic_close_logs(struct topic *t)
{
	uint32_t i;

	for (i = 0; i < t->nlogs; i++)
		mq_log_close(t->logs[i]);
	free(t->logs);
	free(t->held);
	t->logs = NULL;
	t->held = NULL;
	t->nlogs = 0;
}

/* ---- the held list: which logs may keep descriptors ---- */

static void held_unlink(mq_store_t *st, int k)
{
	struct held *h = &st->held[k];

	if (h->prev >= 0)
		st->held[h->prev].next = h->next;
	else
		st->mru = h->next;
	if (h->next >= 0)
		st->held[h->next].prev = h->prev;
	else
		st->lru = h->prev;
}

static void held_push_front(mq_store_t *st, int k)
{
	struct held *h = &st->held[k];

	h->prev = -1;
	h->next = st->mru;
	if (st->mru >= 0)
		st->held[st->mru].prev = k;
	st->mru = k;
	if (st->lru < 0)
		st->lru = k;
}

/* Take slot k off the list and free it; the log keeps no descriptor. */
static void held_drop(mq_store_t *st, int k, int release)
{
	struct held *h = &st->held[k];
	mq_err_t ignored; /* a failed sync cut the data off; the next commit reports it */

	if (release && h->t->logs[h->p])
		mq_log_release(h->t->logs[h->p], &ignored);
	h->t->held[h->p] = -1;
	held_unlink(st, k);
	h->t = NULL;
	h->next = st->free_slot;
	st->free_slot = k;
	st->nheld--;
}

/* Log p of t is about to be used: first in the list, evicting the least
 * recently used log when the list is full.  Called before the log is
 * opened, so that opening it finds a descriptor free. */
static void held_touch(mq_store_t *st, struct topic *t, uint32_t p)
{
	int k = t->held[p];

	if (k >= 0) {
		if (st->mru != k) {
			held_unlink(st, k);
			held_push_front(st, k);
		}
		return;
	}
	if (st->nheld == st->max_open)
		held_drop(st, st->lru, 1);
	k = st->free_slot;
	st->free_slot = st->held[k].next;
	st->held[k].t = t;
	st->held[k].p = p;
	st->nheld++;
	t->held[p] = k;
	held_push_front(st, k);
}

/* A topic going away: its slots are freed (its logs are closed by the caller). */
static void held_forget_topic(mq_store_t *st, struct topic *t)
{
	uint32_t p;

	for (p = 0; t->held && p < t->nlogs; p++)
		if (t->held[p] >= 0)
			held_drop(st, t->held[p], 0);
}

/* Logs that may hold descriptors at once, from RLIMIT_NOFILE. */
static int max_open_logs(void)
{
	struct rlimit rl;
	uint64_t lim = 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		lim = rl.rlim_cur == RLIM_INFINITY ? 1u << 20 : rl.rlim_cur;
	if (lim > (1u << 20))
		lim = 1u << 20;
	lim = (lim - lim / 2) / 2;
	return lim < 4 ? 4 : (int)lim;
}

static void topic_free(struct topic *t)
{
	if (!t)
		return;
	topic_close_logs(t);
	free(t);
}

/* Index of name, or -(insertion point) - 1. */
static long topic_find(const mq_store_t *st, const char *name)
{
	size_t lo = 0, hi = st->ntopics;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(st->topics[mid]->name, name);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

static int topics_reserve(mq_store_t *st, mq_err_t *err)
{
	struct topic **v;
	size_t cap;

	if (st->ntopics < st->cap)
		return 0;
	cap = st->cap ? st->cap * 2 : 16;
	if (!(v = realloc(st->topics, cap * sizeof(*v))))
		return mq_err_set(err, MQ_ENOMEM, "out of memory adding a topic");
	st->topics = v;
	st->cap = cap;
	return 0;
}

static void topics_insert(mq_store_t *st, size_t at, struct topic *t)
{
	memmove(st->topics + at + 1, st->topics + at, (st->ntopics - at) * sizeof(*st->topics));
	st->topics[at] = t;
	st->ntopics++;
}

static void topics_remove(mq_store_t *st, size_t at)
{
	memmove(st->topics + at, st->topics + at + 1, (st->ntopics - at - 1) * sizeof(*st->topics));
	st->ntopics--;
}

/* Look up a topic by name, with a clear message when it is not there. */
static int topic_get(mq_store_t *st, const char *name, struct topic **t, mq_err_t *err)
{
	long i;
	int rc;

	if ((rc = mq_name_check("topic", name, 1, err)) < 0)
		return rc;
	if ((i = topic_find(st, name)) < 0)
		return mq_err_set(err, MQ_ENOENT, "topic '%s' does not exist", name);
	*t = st->topics[i];
	return 0;
}

static void topic_opts(const mq_store_t *st, const struct topic *t, mq_log_opts_t *o)
{
	*o = st->defaults;
	if (t->meta.retention_ms > 0)
		o->retention_ms = t->meta.retention_ms;
	if (t->meta.retention_bytes > 0)
		o->retention_bytes = t->meta.retention_bytes;
}

/* Make room for n log slots (new ones NULL), if the array exists yet. */
static int topic_grow_logs(struct topic *t, uint32_t n, mq_err_t *err)
{
	mq_log_t **v;
	int *h;
	uint32_t p;

	if (!t->logs || n <= t->nlogs)
		return 0;
	if (!(h = realloc(t->held, n * sizeof(*h))))
		return mq_err_set(err, MQ_ENOMEM, "out of memory growing topic '%s'", t->name);
	t->held = h;
	if (!(v = realloc(t->logs, n * sizeof(*v))))
		return mq_err_set(err, MQ_ENOMEM, "out of memory growing topic '%s'", t->name);
	memset(v + t->nlogs, 0, (n - t->nlogs) * sizeof(*v));
	for (p = t->nlogs; p < n; p++)
		h[p] = -1;
	t->logs = v;
	t->nlogs = n;
	return 0;
}

static int check_partitions(const char *name, uint32_t n, mq_err_t *err)
{
	if (n < 1 || n > MQ_PARTITIONS_MAX)
		return mq_err_set(err, MQ_EINVAL, "topic '%s': partitions must be 1-%d (got %u)", name, MQ_PARTITIONS_MAX,
				  (unsigned)n);
	return 0;
}

/* ---- opening the data directory ---- */

/* Refuse a directory that has things in it but no format stamp: that is
 * someone else's directory (a mistyped -d), and we must not litter it. */
static int check_foreign(const char *base, mq_err_t *err)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc, foreign = 0;

	if ((rc = path_fmt(path, sizeof(path), err, "%s/format", base)) < 0)
		return rc;
	if (access(path, F_OK) == 0 || errno != ENOENT)
		return 0; /* stamped (or unreadable: the read under the lock will say) */
	if (!(d = opendir(base)))
		return mq_err_sys(err, "cannot read data directory '%s'", base);
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "mq.lock") &&
		    strcmp(de->d_name, FORMAT_TMP)) {
			foreign = 1;
			break;
		}
	}
	closedir(d);
	if (foreign)
		return mq_err_set(err, MQ_EINVAL,
				  "'%s' is not empty and has no 'format' file, so it is not an mq data directory "
				  "(use a new or empty directory; if it is one, restore '%s/format' containing 'mq-data 1')",
				  base, base);
	return 0;
}

static int lock_dir(mq_store_t *st, mq_err_t *err)
{
	char path[PATH_MAX], buf[32];
	long long n;
	int rc, len;

	if ((rc = path_fmt(path, sizeof(path), err, "%s/mq.lock", st->base)) < 0)
		return rc;
	st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (st->lock_fd < 0)
		return mq_err_sys(err, "cannot open lock file '%s'", path);
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		int64_t pid;
		if (errno != EWOULDBLOCK)
			return mq_err_sys(err, "cannot lock '%s'", path);
		n = mq_pread_full(st->lock_fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		/* The holder writes its pid just after locking: we may see none. */
		if (parse_i64(buf, 0, &pid) < 0 || pid <= 0)
			return mq_err_set(err, MQ_EBUSY,
					  "data directory '%s' is in use by another process "
					  "(stop that mq-serve, or use another -d DIR)", st->dir);
		return mq_err_set(err, MQ_EBUSY,
				  "data directory '%s' is in use by pid %lld (stop that mq-serve, or use another -d DIR)",
				  st->dir, (long long)pid);
	}
	len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(st->lock_fd, 0) < 0 || mq_pwrite_all(st->lock_fd, buf, (size_t)len, 0) < 0)
		return mq_err_sys(err, "cannot write lock file '%s'", path);
	return 0;
}

static int check_format(const mq_store_t *st, mq_err_t *err)
{
	char path[PATH_MAX], buf[64], show[160];
	long long n;
	int fd, rc;

	if ((rc = path_fmt(path, sizeof(path), err, "%s/format", st->base)) < 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return mq_err_sys(err, "cannot open '%s'", path);
		return mq_write_file_atomic(st->base, FORMAT_TMP, "format", FORMAT_LINE, strlen(FORMAT_LINE), err);
	}
	n = mq_pread_full(fd, buf, sizeof(buf) - 1, 0);
	if (n < 0) {
		rc = mq_err_sys(err, "cannot read '%s'", path);
		close(fd);
		return rc;
	}
	close(fd);
	buf[n] = '\0';
	/* Tolerate what an editor or echo may do to the line ending. */
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (!strncmp(buf, FORMAT_LINE, strlen(FORMAT_LINE) - 1) && (size_t)n == strlen(FORMAT_LINE) - 1)
		return 0;
	buf[strcspn(buf, "\r\n")] = '\0';
	return mq_err_set(err, MQ_ECORRUPT,
			  "'%s' says '%s' but this mq reads 'mq-data 1' (use the mq version that wrote this "
			  "directory, or another -d DIR)", path, name_show(buf, show, sizeof(show), 60));
}

/* 1 if name (relative to parent) is a directory with nothing in it. */
static int dir_is_empty(int parent, const char *name)
{
	struct dirent *de;
	DIR *d;
	int fd, empty = 1;

	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return 0;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

/* A topic directory without topic.meta whose entries are only empty
 * partition directories (and perhaps topic.meta.tmp) is what a crash inside
 * mq_store_topic_create leaves: remove it.  Returns 1 if it was one and is
 * gone, 0 if it is something else (left untouched), negative on error. */
static int remove_half_created(int topics_fd, const char *name, const char *path, mq_err_t *err)
{
	struct dirent *de;
	DIR *d;
	int fd, rc = 1, pass;

	fd = openat(topics_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return mq_err_sys(err, "cannot open '%s'", path);
	if (!(d = fdopendir(fd))) {
		close(fd);
		return mq_err_sys(err, "cannot open '%s'", path);
	}
	/* Pass 0 only looks; pass 1 removes.  Nothing is touched unless
	 * every entry is recognised, and rmdir itself refuses a non-empty
	 * directory, so data is never removed here. */
	for (pass = 0; pass < 2 && rc == 1; pass++) {
		rewinddir(d);
		while (rc == 1 && (de = readdir(d))) {
			const char *e = de->d_name;
			if (!strcmp(e, ".") || !strcmp(e, ".."))
				continue;
			if (!strcmp(e, META_TMP)) {
				if (pass && unlinkat(dirfd(d), e, 0) < 0 && errno != ENOENT)
					rc = mq_err_sys(err, "cannot remove '%s/%s'", path, e);
			} else if (!pass) {
				if (!is_digits(e) || !dir_is_empty(dirfd(d), e))
					rc = 0;
			} else if (unlinkat(dirfd(d), e, AT_REMOVEDIR) < 0) {
				rc = mq_err_sys(err, "cannot remove '%s/%s'", path, e);
			}
		}
	}
	closedir(d);
	if (rc == 1 && unlinkat(topics_fd, name, AT_REMOVEDIR) < 0)
		return mq_err_sys(err, "cannot remove '%s'", path);
	return rc;
}

/* Load one entry of DIR/topics. */
static int load_entry(mq_store_t *st, int topics_fd, const char *topics, const char *name, mq_err_t *err)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	mq_topic_meta_t m;
	struct topic *t = NULL;
	struct stat sb;
	int rc;

	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	if ((rc = path_fmt(path, sizeof(path), err, "%s/%s", topics, name)) < 0)
		return rc;
	if (!strncmp(name, DELETING_PREFIX, strlen(DELETING_PREFIX)))
		return rm_tree(topics_fd, name, path, 0, err); /* a delete a crash interrupted */
	if (mq_name_check("topic", name, 1, NULL) < 0 ||
	    fstatat(topics_fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(sb.st_mode))
		return mq_err_set(err, MQ_ECORRUPT, "'%s': not a topic directory (move it out of the data directory)", path);
	rc = meta_read(path, &m, err);
	if (rc == -MQ_ENOENT) {
		rc = remove_half_created(topics_fd, name, path, err);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return 0;
		return mq_err_set(err, MQ_ECORRUPT,
				  "'%s': topic directory without topic.meta (restore %s from a backup, "
				  "or move the directory out of the data directory)", path, META_FILE);
	}
	if (rc < 0)
		return rc;
	/* A rewrite of the meta that a crash interrupted: the old one stands. */
	if ((rc = path_fmt(tmp, sizeof(tmp), err, "%s/%s", path, META_TMP)) < 0)
		return rc;
	if (unlink(tmp) < 0 && errno != ENOENT)
		return mq_err_sys(err, "cannot remove '%s'", tmp);
	if ((rc = topics_reserve(st, err)) < 0)
		return rc;
	if (!(t = topic_new(name, &m)))
		return mq_err_set(err, MQ_ENOMEM, "out of memory loading topic '%s'", name);
	st->topics[st->ntopics++] = t; /* sorted once all are loaded */
	return 0;
}

static int cmp_topic(const void *a, const void *b)
{
	return strcmp((*(struct topic *const *)a)->name, (*(struct topic *const *)b)->name);
}

static int load_topics(mq_store_t *st, mq_err_t *err)
{
	char topics[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if ((rc = path_fmt(topics, sizeof(topics), err, "%s/topics", st->base)) < 0)
		return rc;
	if (!(d = opendir(topics)))
		return mq_err_sys(err, "cannot read '%s'", topics);
	while ((errno = 0, de = readdir(d))) {
		if ((rc = load_entry(st, dirfd(d), topics, de->d_name, err)) < 0)
			goto out;
	}
	if (errno)
		rc = mq_err_sys(err, "cannot read '%s'", topics);
	if (st->ntopics)
		qsort(st->topics, st->ntopics, sizeof(*st->topics), cmp_topic);
out:
	closedir(d);
	return rc;
}

int mq_store_open(const char *dir, const mq_log_opts_t *defaults, mq_store_t **out, mq_err_t *err)
{
	char path[PATH_MAX];
	mq_store_t *st = NULL;
	size_t len;
	int rc, made;
	struct stat sb;

	*out = NULL;
	if (!dir || !*dir)
		return mq_err_set(err, MQ_EINVAL, "empty data directory path");
	if (strlen(dir) > MQ_DATA_DIR_MAX)
		return mq_err_set(err, MQ_EINVAL, "data directory path is %zu bytes long; at most %d (choose a shorter -d)",
				  strlen(dir), MQ_DATA_DIR_MAX);
	if (!(st = calloc(1, sizeof(*st))))
		return mq_err_set(err, MQ_ENOMEM, "out of memory opening '%s'", dir);
	st->lock_fd = -1;
	if (defaults)
		st->defaults = *defaults;
	else
		mq_log_opts_default(&st->defaults);
	if (!(st->dir = strdup(dir)) || !(st->base = strdup(dir))) {
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory opening '%s'", dir);
		goto err;
	}
	len = strlen(st->base);
	while (len > 1 && st->base[len - 1] == '/')
		st->base[--len] = '\0';
	st->max_open = max_open_logs();
	st->mru = st->lru = -1;
	if (!(st->held = calloc((size_t)st->max_open, sizeof(*st->held)))) {
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory opening '%s'", dir);
		goto err;
	}
	for (int k = 0; k < st->max_open; k++)
		st->held[k].next = k + 1 < st->max_open ? k + 1 : -1;
	st->free_slot = 0;

	made = stat(st->base, &sb) < 0 && errno == ENOENT;
	if ((rc = mkdir_p(st->base, err)) < 0 || (made && (rc = mq_fsync_parent(st->base, err)) < 0) ||
	    (rc = check_foreign(st->base, err)) < 0 ||
	    (rc = lock_dir(st, err)) < 0 || (rc = check_format(st, err)) < 0)
		goto err;
	if ((rc = path_fmt(path, sizeof(path), err, "%s/topics", st->base)) < 0 ||
	    (rc = mkdir_one(path, err)) < 0)
		goto err;
	made = rc;
	if ((rc = path_fmt(path, sizeof(path), err, "%s/state", st->base)) < 0 ||
	    (rc = mkdir_one(path, err)) < 0)
		goto err;
	/* Their names are durable only once DIR is synced: without this a
	 * power cut could take every topic, meta and all. */
	if ((made || rc) && (rc = mq_fsync_dir(st->base, err)) < 0)
		goto err;
	if ((rc = load_topics(st, err)) < 0)
		goto err;
	*out = st;
	return 0;
err:
	mq_store_close(st);
	return rc;
}

void mq_store_close(mq_store_t *st)
{
	size_t i;

	if (!st)
		return;
	for (i = 0; i < st->ntopics; i++)
		topic_free(st->topics[i]);
	free(st->topics);
	free(st->held);
	if (st->lock_fd >= 0)
		close(st->lock_fd); /* releases the flock */
	free(st->dir);
	free(st->base);
	free(st);
}

const char *mq_store_dir(const mq_store_t *st)
{
	return st->dir;
}

/* ---- topics ---- */

/* Remove what a failed create made: the first made partition
 * directories (empty), topic.meta(.tmp) if it got that far (the topic
 * was never announced), and the topic directory.
 * By path, without descriptors: the failure may be that there are none. */
static int undo_create(const char *tdir, uint32_t made, mq_err_t *err)
{
	char path[PATH_MAX];
	int rc;

	static const char *const files[] = {META_TMP, META_FILE};
	for (int i = 0; i < 2; i++) {
		if ((rc = path_fmt(path, sizeof(path), err, "%s/%s", tdir, files[i])) < 0)
			return rc;
		if (unlink(path) < 0 && errno != ENOENT)
			return mq_err_sys(err, "cannot remove '%s'", path);
	}
	for (uint32_t p = 0; p < made; p++) {
		if ((rc = path_fmt(path, sizeof(path), err, "%s/%u", tdir, (unsigned)p)) < 0)
			return rc;
		if (rmdir(path) < 0 && errno != ENOENT)
			return mq_err_sys(err, "cannot remove '%s'", path);
	}
	if (rmdir(tdir) < 0 && errno != ENOENT)
		return mq_err_sys(err, "cannot remove '%s'", tdir);
	return 0;
}

int mq_store_topic_create(mq_store_t *st, const char *name, const mq_topic_meta_t *meta, mq_err_t *err)
{
	char tdir[PATH_MAX], pdir[PATH_MAX], topics[PATH_MAX];
	mq_topic_meta_t m = *meta;
	struct topic *t = NULL;
	mq_err_t ignore;
	long at;
	uint32_t p;
	int rc, made = 0;

	if ((rc = mq_name_check("topic", name, 1, err)) < 0 ||
	    (rc = check_partitions(name, m.partitions, err)) < 0)
		return rc;
	if ((at = topic_find(st, name)) >= 0)
		return mq_err_set(err, MQ_EEXIST, "topic '%s' already exists", name);
	if (m.created_ms <= 0)
		m.created_ms = mq_now_ms();
	if ((rc = path_fmt(topics, sizeof(topics), err, "%s/topics", st->base)) < 0 ||
	    (rc = path_fmt(tdir, sizeof(tdir), err, "%s/%s", topics, name)) < 0)
		return rc;
	if ((rc = topics_reserve(st, err)) < 0)
		return rc;
	if (!(t = topic_new(name, &m)))
		return mq_err_set(err, MQ_ENOMEM, "out of memory creating topic '%s'", name);
	int mk = mkdir(tdir, 0755) < 0 ? errno : 0;
	if (mk == EEXIST) {
		/* What an earlier create left that could not be removed then. */
		int tfd = open(topics, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (tfd >= 0 && remove_half_created(tfd, name, tdir, &ignore) == 1)
			mk = mkdir(tdir, 0755) < 0 ? errno : 0;
		if (tfd >= 0)
			close(tfd);
	}
	if (mk) {
		errno = mk;
		rc = errno == EEXIST ? mq_err_set(err, MQ_EEXIST, "'%s' already exists (move it out of the data directory)", tdir)
			: mq_err_sys(err, "cannot create topic directory '%s'", tdir);
		goto err;
	}
	made = 1;
	for (p = 0; p < m.partitions; p++) {
		if ((rc = path_fmt(pdir, sizeof(pdir), err, "%s/%u", tdir, (unsigned)p)) < 0)
			goto err;
		if (mkdir(pdir, 0755) < 0) {
			rc = mq_err_sys(err, "cannot create partition directory '%s'", pdir);
			goto err;
		}
	}
	/* The meta last: until it is in place the topic does not exist. */
	if ((rc = meta_write(tdir, &m, err)) < 0 || (rc = mq_fsync_dir(topics, err)) < 0)
		goto err;
	topics_insert(st, (size_t)(-at - 1), t);
	st->changes++;
	return 0;
err:
	if (made) {
		/* Nothing of a failed create stays; if even the removal fails,
		 * what is left is what load_entry removes at the next open. */
		char why[sizeof(err->msg)];
		int left = undo_create(tdir, p, &ignore);
		snprintf(why, sizeof(why), "%s", err ? err->msg : "");
		if (left < 0)
			mq_err_set(err, -rc, "topic '%s' was not created: %.200s; '%s' is left over (%.100s): mq-serve "
				   "removes it when it next starts, or remove it by hand", name, why, tdir, ignore.msg);
		else
			mq_err_set(err, -rc, "topic '%s' was not created (nothing of it was kept): %.300s", name, why);
	}
	topic_free(t);
	return rc;
}

int mq_store_topic_meta(mq_store_t *st, const char *name, mq_topic_meta_t *meta, mq_err_t *err)
{
	struct topic *t = NULL;
	int rc;

	if ((rc = topic_get(st, name, &t, err)) < 0)
		return rc;
	*meta = t->meta;
	return 0;
}

int mq_store_topic_update(mq_store_t *st, const char *name, const mq_topic_meta_t *meta, mq_err_t *err)
{
	char tdir[PATH_MAX], pdir[PATH_MAX];
	mq_topic_meta_t m;
	mq_log_opts_t o;
	struct topic *t = NULL;
	uint32_t p;
	int rc;

	if ((rc = topic_get(st, name, &t, err)) < 0 || (rc = check_partitions(name, meta->partitions, err)) < 0)
		return rc;
	if (meta->partitions < t->meta.partitions)
		return mq_err_set(err, MQ_EINVAL,
				  "topic '%s' has %u partitions; partitions can only grow (asked for %u)", name,
				  (unsigned)t->meta.partitions, (unsigned)meta->partitions);
	m = t->meta;
	m.partitions = meta->partitions;
	m.retention_ms = meta->retention_ms;
	m.retention_bytes = meta->retention_bytes;
	if ((rc = path_fmt(tdir, sizeof(tdir), err, "%s/topics/%s", st->base, name)) < 0)
		return rc;
	/* Room first, so nothing can fail after the new meta is on disk. */
	if ((rc = topic_grow_logs(t, m.partitions, err)) < 0)
		return rc;
	/* New partition directories before the meta that makes them real;
	 * ones left by an earlier interrupted grow are reused. */
	for (p = t->meta.partitions; p < m.partitions; p++) {
		if ((rc = path_fmt(pdir, sizeof(pdir), err, "%s/%u", tdir, (unsigned)p)) < 0 ||
		    (rc = mkdir_one(pdir, err)) < 0)
			return rc;
	}
	if ((rc = meta_write(tdir, &m, err)) < 0)
		return rc;
	t->meta = m;
	st->changes++;
	topic_opts(st, t, &o);
	for (p = 0; p < t->nlogs; p++)
		if (t->logs[p])
			mq_log_set_opts(t->logs[p], &o);
	return 0;
}

int mq_store_topic_delete(mq_store_t *st, const char *name, mq_err_t *err)
{
	char topics[PATH_MAX], from[PATH_MAX], to[PATH_MAX], gone[NAME_MAX + 1];
	struct topic *t = NULL;
	mq_err_t ignore;
	long at;
	int rc, tfd;

	if ((rc = topic_get(st, name, &t, err)) < 0)
		return rc;
	at = topic_find(st, name);
	if ((rc = path_fmt(topics, sizeof(topics), err, "%s/topics", st->base)) < 0 ||
	    (rc = path_fmt(from, sizeof(from), err, "%s/%s", topics, name)) < 0 ||
	    (rc = path_fmt(gone, sizeof(gone), err, DELETING_PREFIX "%s~%ld~%lu", name, (long)getpid(),
			   st->deletions++)) < 0 ||
	    (rc = path_fmt(to, sizeof(to), err, "%s/%s", topics, gone)) < 0)
		return rc;
	if (rename(from, to) < 0)
		return mq_err_sys(err, "cannot delete topic '%s': rename '%s'", name, from);
	/* From here the topic is gone for this process whatever happens;
	 * a failed fsync only means the deletion may not survive a crash. */
	topics_remove(st, (size_t)at);
	st->changes++;
	held_forget_topic(st, t);
	topic_free(t);
	if ((rc = mq_fsync_dir(topics, err)) < 0)
		return rc;
	/* The topic is gone for good now; if the removal fails, the next
	 * mq_store_open finishes it, so that is not the caller's error. */
	tfd = open(topics, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd >= 0) {
		rm_tree(tfd, gone, to, 0, &ignore);
		close(tfd);
	}
	return 0;
}

int mq_store_topic_list(mq_store_t *st, char ***names, int *count, mq_err_t *err)
{
	size_t i, bytes = st->ntopics * sizeof(char *);
	char **v, *s;

	for (i = 0; i < st->ntopics; i++)
		bytes += strlen(st->topics[i]->name) + 1;
	if (!(v = malloc(bytes ? bytes : 1)))
		return mq_err_set(err, MQ_ENOMEM, "out of memory listing topics");
	s = (char *)(v + st->ntopics);
	for (i = 0; i < st->ntopics; i++) {
		size_t n = strlen(st->topics[i]->name) + 1;
		memcpy(s, st->topics[i]->name, n);
		v[i] = s;
		s += n;
	}
	*names = v;
	*count = (int)st->ntopics;
	return 0;
}

/* ---- partitions ---- */

int mq_store_log(mq_store_t *st, const char *topic, uint32_t partition, mq_log_t **log, mq_err_t *err)
{
	char path[PATH_MAX];
	mq_log_opts_t o;
	struct topic *t = NULL;
	int rc;

	if ((rc = topic_get(st, topic, &t, err)) < 0)
		return rc;
	if (partition >= t->meta.partitions) {
		if (t->meta.partitions == 1)
			return mq_err_set(err, MQ_ENOENT, "topic '%s' has 1 partition (0); partition %u does not exist",
					  topic, (unsigned)partition);
		return mq_err_set(err, MQ_ENOENT, "topic '%s' has %u partitions (0-%u); partition %u does not exist",
				  topic, (unsigned)t->meta.partitions, (unsigned)t->meta.partitions - 1,
				  (unsigned)partition);
	}
	if (!t->logs) {
		if (!(t->held = malloc(t->meta.partitions * sizeof(*t->held))) ||
		    !(t->logs = calloc(t->meta.partitions, sizeof(*t->logs)))) {
			free(t->held);
			t->held = NULL;
			return mq_err_set(err, MQ_ENOMEM, "out of memory opening topic '%s'", topic);
		}
		for (uint32_t p = 0; p < t->meta.partitions; p++)
			t->held[p] = -1;
		t->nlogs = t->meta.partitions;
	}
	held_touch(st, t, partition);
	if (!t->logs[partition]) {
		if ((rc = path_fmt(path, sizeof(path), err, "%s/topics/%s/%u", st->base, topic, (unsigned)partition)) < 0)
			return rc;
		topic_opts(st, t, &o);
		if ((rc = mq_log_open(path, &o, 1, &t->logs[partition], err)) < 0) {
			t->logs[partition] = NULL;
			held_drop(st, t->held[partition], 0);
			return rc;
		}
	}
	*log = t->logs[partition];
	return 0;
}

mq_log_t *mq_store_log_peek(mq_store_t *st, const char *topic, uint32_t partition)
{
	long at = topic_find(st, topic);
	struct topic *t;

	if (at < 0)
		return NULL;
	t = st->topics[at];
	return partition < t->nlogs ? t->logs[partition] : NULL;
}

int mq_store_max_open(const mq_store_t *st)
{
	return st->max_open;
}

/*
 * Both walk every topic: O(topics) per call, cheap while topics number in
 * the thousands.  If that stops being true, keep a list of open logs.  One
 * failing partition does not stop the others; the first error is returned.
 */
int mq_store_commit(mq_store_t *st, int64_t now_mono_ms, mq_err_t *err)
{
	mq_err_t scratch;
	size_t i;
	uint32_t p;
	int rc, first = 0;

	for (i = 0; i < st->ntopics; i++) {
		struct topic *t = st->topics[i];
		for (p = 0; p < t->nlogs; p++) {
			if (!t->logs[p])
				continue;
			int was_dirty = mq_log_dirty(t->logs[p]);
			rc = mq_log_commit(t->logs[p], now_mono_ms, first ? &scratch : err);
			if (rc < 0 && !first)
				first = rc;
			if (rc == 0 && was_dirty && !mq_log_dirty(t->logs[p]))
				st->syncs++;
		}
	}
	return first;
}

uint64_t mq_store_syncs(const mq_store_t *st)
{
	return st->syncs;
}

uint64_t mq_store_changes(const mq_store_t *st)
{
	return st->changes;
}

int mq_store_retain(mq_store_t *st, int64_t now_ms, mq_err_t *err)
{
	mq_err_t scratch;
	size_t i;
	uint32_t p;
	int rc, first = 0, deleted = 0;

	for (i = 0; i < st->ntopics; i++) {
		struct topic *t = st->topics[i];
		for (p = 0; p < t->nlogs; p++) {
			if (!t->logs[p])
				continue;
			rc = mq_log_retain(t->logs[p], now_ms, first ? &scratch : err);
			if (rc < 0 && !first)
				first = rc;
			else if (rc > 0)
				deleted += rc;
			if (t->held[p] < 0) /* it opened files to look: not one of the held */
				mq_log_release(t->logs[p], &scratch);
		}
	}
	return first ? first : deleted;
}
