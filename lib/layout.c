/*
 * layout.c -- the offline walk of a data directory (layout.h).
 *
 * The walk lists each directory once, sorted, so faults come out in the
 * same order on every run.  Entries whose names start with '.' under
 * DIR/topics are deletions in progress (store.h) and are passed over.
 * Every path is built with a length check: a path that does not fit is
 * a fault with its name, never a silently shortened path.
 */
#include "layout.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

typedef struct walk {
	mq_log_report_fn report;
	void *ctx;
	mq_layout_counts_t *n;
	mq_err_t *err;
} walk_t;

static void fault(walk_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fault(walk_t *w, const char *fmt, ...)
{
	char msg[PATH_MAX + 256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->n->faults++;
	w->report(w->ctx, msg);
}

static int join(walk_t *w, char *out, const char *a, const char *b)
{
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", a, b) < PATH_MAX)
		return 0;
	fault(w, "%s/%s: path too long to check", a, b);
	return -1;
}

static int is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_list(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Sorted names of the entries of dir (no . and ..), NULL-terminated, in
 * *out.  0, or a negative error (the directory cannot be read, or out of
 * memory: never a partial list) whose message is the reason alone: the
 * caller names the directory. */
static int list_dir(const char *dir, char ***out, mq_err_t *err)
{
	DIR *d = opendir(dir);
	if (!d)
		return mq_err_set(err, MQ_EIO, "%s", strerror(errno));
	size_t n = 0, cap = 16;
	char **v = malloc(cap * sizeof(*v));
	struct dirent *de;
	int rc = 0;
	errno = 0;
	while (v && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n + 1 == cap) {
			char **p = realloc(v, (cap *= 2) * sizeof(*v));
			if (!p) {
				rc = -MQ_ENOMEM;
				break;
			}
			v = p;
		}
		if (!(v[n] = strdup(de->d_name))) {
			rc = -MQ_ENOMEM;
			break;
		}
		v[++n] = NULL;
		errno = 0;
	}
	if (!v || rc)
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory listing '%s'", dir);
	else if (errno)
		rc = mq_err_set(err, MQ_EIO, "%s", strerror(errno));
	closedir(d);
	if (v)
		v[n] = NULL;
	if (rc) {
		free_list(v);
		return rc;
	}
	qsort(v, n, sizeof(*v), name_cmp);
	*out = v;
	return 0;
}

static int verify_partition(walk_t *w, const char *dir)
{
	w->n->partitions++;
	int rc = mq_log_verify(dir, w->report, w->ctx, w->err);
	if (rc > 0)
		w->n->faults += rc;
	if (rc == -MQ_ENOMEM)
		return rc;
	if (rc < 0)
		fault(w, "%s", w->err->msg);
	return 0;
}

static int verify_topic(walk_t *w, const char *tdir, const char *name)
{
	char p[PATH_MAX];
	char **ents;
	if (join(w, p, tdir, "topic.meta") == 0 && access(p, R_OK) != 0)
		fault(w, "%s: missing or unreadable: %s", p, strerror(errno));
	int rc = list_dir(tdir, &ents, w->err);
	if (rc == -MQ_ENOMEM)
		return rc;
	if (rc) {
		fault(w, "%s: cannot list topic '%s': %s", tdir, name, w->err->msg);
		return 0;
	}
	for (size_t i = 0; ents[i] && rc == 0; i++) {
		if (!strcmp(ents[i], "topic.meta") || join(w, p, tdir, ents[i]))
			continue;
		char *end;
		errno = 0;
		unsigned long part = strtoul(ents[i], &end, 10);
		if (!ents[i][0] || *end || ents[i][0] == '+' || ents[i][0] == '-' || errno ||
		    part >= MQ_PARTITIONS_MAX || !is_dir(p)) {
			fault(w, "%s: unexpected entry in topic '%s'", p, name);
			continue;
		}
		rc = verify_partition(w, p);
	}
	free_list(ents);
	return rc;
}

static int verify_topics(walk_t *w, const char *tdir)
{
	char **topics, t[PATH_MAX];
	int rc = list_dir(tdir, &topics, w->err);
	if (rc == -MQ_ENOMEM)
		return rc;
	if (rc) {
		fault(w, "%s: cannot list the topics: %s", tdir, w->err->msg);
		return 0;
	}
	for (size_t i = 0; topics[i] && rc == 0; i++) {
		if (topics[i][0] == '.' || join(w, t, tdir, topics[i]))
			continue; /* '.': a deletion in progress */
		if (mq_name_check("topic", topics[i], 1, NULL) || !is_dir(t)) {
			fault(w, "%s: not a topic directory", t);
			continue;
		}
		rc = verify_topic(w, t, topics[i]);
	}
	free_list(topics);
	return rc;
}

int mq_layout_segments(const char *dir, mq_err_t *err)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		return mq_err_set(err, errno == ENOENT ? MQ_ENOENT : MQ_EIO, "'%s': %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return mq_err_set(err, MQ_EINVAL, "'%s': not a directory", dir);
	DIR *d = opendir(dir);
	if (!d)
		return mq_err_set(err, MQ_EIO, "'%s': %s", dir, strerror(errno));
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += mq_log_is_segment(de->d_name);
	closedir(d);
	return n;
}

int mq_layout_verify(const char *dir, mq_log_report_fn report, void *ctx, mq_layout_counts_t *counts,
		     mq_err_t *err)
{
	walk_t w = {report, ctx, counts, err};
	char p[PATH_MAX];
	memset(counts, 0, sizeof(*counts));
	int rc = mq_layout_segments(dir, err);
	if (rc < 0)
		return rc;
	if ((size_t)snprintf(p, sizeof(p), "%s/topics", dir) >= sizeof(p))
		return mq_err_set(err, MQ_EINVAL, "'%s': path too long", dir);
	if (is_dir(p))
		rc = verify_topics(&w, p);
	else if ((size_t)snprintf(p, sizeof(p), "%s/topic.meta", dir) < sizeof(p) && access(p, F_OK) == 0) {
		size_t len = strlen(dir);
		while (len > 1 && dir[len - 1] == '/')
			len--;
		const char *name = dir + len;
		while (name > dir && name[-1] != '/')
			name--;
		char tname[MQ_NAME_MAX + 1];
		snprintf(tname, sizeof(tname), "%.*s", (int)(dir + len - name), name);
		rc = verify_topic(&w, dir, tname);
	} else {
		rc = verify_partition(&w, dir);
	}
	return rc < 0 ? rc : 0;
}

int mq_layout_partition_path(const char *path, char *out, size_t n, mq_err_t *err)
{
	char p[PATH_MAX];
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len >= sizeof(p))
		return mq_err_set(err, MQ_EINVAL, "'%s': path too long", path);
	memcpy(p, path, len);
	p[len] = 0;
	char *part = strrchr(p, '/');
	if (!part)
		return mq_err_set(err, MQ_EINVAL, "'%s' is not DIR/TOPIC/PARTITION", path);
	*part++ = 0;
	char *topic = strrchr(p, '/');
	const char *base = ".";
	if (topic) {
		*topic++ = 0;
		base = p; /* "" for /TOPIC/P: the root */
	} else {
		topic = p;
	}
	if (!part[0] || strspn(part, "0123456789") != strlen(part) || mq_name_check("topic", topic, 1, NULL))
		return mq_err_set(err, MQ_EINVAL, "'%s' is not DIR/TOPIC/PARTITION", path);
	if ((size_t)snprintf(out, n, "%s/topics/%s/%s", base, topic, part) >= n)
		return mq_err_set(err, MQ_EINVAL, "'%s': path too long", path);
	return 0;
}
