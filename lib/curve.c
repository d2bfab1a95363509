/*
 * curve.c -- CurveZMQ key files and the allow-list (see curve.h).
 */
#include "curve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define KEY_FILE_MAX 4096 /* a key file is a line or two; more is not a key file */

static const char z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

int mq_curve_available(void)
{
	return zmq_has("curve");
}

int mq_curve_parse(const char *text, uint8_t key[MQ_CURVE_KEY_BYTES])
{
	if (strlen(text) != MQ_CURVE_KEY_TEXT)
		return 0;
	for (int i = 0; i < MQ_CURVE_KEY_TEXT; i += 5) {
		uint64_t v = 0;
		for (int k = 0; k < 5; k++) {
			const char *at = text[i + k] ? strchr(z85, text[i + k]) : NULL;
			if (!at)
				return 0;
			v = v * 85 + (uint64_t)(at - z85);
		}
		if (v > UINT32_MAX)
			return 0;
		if (key)
			for (int k = 0; k < 4; k++)
				key[i / 5 * 4 + k] = (uint8_t)(v >> (24 - 8 * k));
	}
	return 1;
}

/* The key in text (a file's contents): a line that is a key, or the
 * "public:" / "secret:" line asked for.  1 found, 0 none. */
static int key_in(char *text, int secret, char out[MQ_CURVE_KEY_TEXT + 1])
{
	const char *want = secret ? "secret:" : "public:", *other = secret ? "public:" : "secret:";
	for (char *line = text, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		size_t n = strlen(line);
		while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = 0;
		char *k = line + strspn(line, " \t");
		if (!strncmp(k, other, strlen(other)))
			continue;
		if (!strncmp(k, want, strlen(want)))
			k += strlen(want) + strspn(k + strlen(want), " \t");
		if (mq_curve_parse(k, NULL)) {
			memcpy(out, k, MQ_CURVE_KEY_TEXT + 1);
			return 1;
		}
	}
	return 0;
}

/* Read at most KEY_FILE_MAX bytes of fd into buf (NUL-terminated):
 * 0, 1 when the file is longer, < 0 errno. */
static int read_small(int fd, char *buf, size_t size)
{
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, buf + len, size - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		len += (size_t)r;
		if (len == size - 1) {
			char c;
			if (read(fd, &c, 1) > 0) {
				buf[len] = 0;
				return 1;
			}
			break;
		}
	}
	buf[len] = 0;
	return 0;
}

int mq_curve_read_key(const char *path, int secret, const char *what, char out[MQ_CURVE_KEY_TEXT + 1],
		      mq_err_t *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return mq_err_set(err, errno == ENOENT || errno == EACCES ? MQ_EINVAL : MQ_EIO,
				  "%s '%s': cannot read it: %s%s", what, path, strerror(errno),
				  errno == ENOENT ? " (make a key pair with mq-admin keygen --secret FILE --public FILE)"
						  : "");
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return mq_err_set(err, MQ_EIO, "%s '%s': %s", what, path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return mq_err_set(err, MQ_EINVAL, "%s '%s': not a regular file (give the file that holds the key)",
				  what, path);
	}
	if (secret && (st.st_mode & 077)) {
		close(fd);
		return mq_err_set(err, MQ_EINVAL, "%s '%s': a secret key file must not be accessible by group or "
				  "others (its mode is %04o): run chmod 600 '%s'", what, path,
				  (unsigned)(st.st_mode & 07777), path);
	}
	char buf[KEY_FILE_MAX + 1];
	int r = read_small(fd, buf, sizeof buf);
	close(fd);
	int found = r == 0 && key_in(buf, secret, out);
	explicit_bzero(buf, sizeof buf);
	if (r < 0)
		return mq_err_set(err, MQ_EIO, "%s '%s': cannot read it: %s", what, path, strerror(-r));
	if (!found)
		return mq_err_set(err, MQ_EINVAL, "%s '%s': holds no %s key (a line of 40 Z85 characters, as "
				  "mq-admin keygen writes)", what, path, secret ? "secret" : "public");
	return 0;
}

int mq_curve_server_key(const char *arg, const char *what, char out[MQ_CURVE_KEY_TEXT + 1], mq_err_t *err)
{
	struct stat st;
	if (mq_curve_parse(arg, NULL) && stat(arg, &st) < 0) {
		memcpy(out, arg, MQ_CURVE_KEY_TEXT + 1);
		return 0;
	}
	if (stat(arg, &st) < 0)
		return mq_err_set(err, MQ_EINVAL, "%s '%.100s': neither a key (40 Z85 characters) nor a file that "
				  "holds one (give the broker's public key, from mq-admin keygen)", what, arg);
	return mq_curve_read_key(arg, 0, what, out, err);
}

int mq_curve_public_of(const char *secret, char out[MQ_CURVE_KEY_TEXT + 1], mq_err_t *err)
{
	if (zmq_curve_public(out, secret) != 0)
		return mq_err_set(err, MQ_EINVAL, "cannot derive the public key: %s%s", zmq_strerror(zmq_errno()),
				  zmq_errno() == ENOTSUP ? " (this libzmq has no CURVE: install one built with libsodium)"
							 : "");
	return 0;
}

/* ---- the allow-list ---- */

typedef struct entry {
	uint8_t key[MQ_CURVE_KEY_BYTES];
	int admin;
	char *name;
} entry_t;

struct mq_curve_allow {
	entry_t *e;
	size_t n, cap;
};

static int cmp_entry(const void *a, const void *b)
{
	const entry_t *x = a, *y = b;
	int c = memcmp(x->key, y->key, MQ_CURVE_KEY_BYTES);
	return c ? c : y->admin - x->admin; /* an admin entry first */
}

static int writable_by_others(const struct stat *st)
{
	return (st->st_mode & 022) != 0;
}

static int load_dir(mq_curve_allow_t *a, const char *dir, int admin, mq_err_t *err)
{
	const char *what = admin ? "--curve-allow-admin" : "--curve-allow";
	struct stat st;
	int bad = stat(dir, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
	if (bad)
		return mq_err_set(err, MQ_EINVAL, "%s '%s': %s (give a directory with one public key file per "
				  "client)", what, dir, strerror(bad));
	if (writable_by_others(&st))
		return mq_err_set(err, MQ_EINVAL, "%s '%s': group or others may write to it (mode %04o), and so let "
				  "any key in: run chmod go-w '%s'", what, dir, (unsigned)(st.st_mode & 07777), dir);
	DIR *d = opendir(dir);
	if (!d)
		return mq_err_set(err, MQ_EINVAL, "%s '%s': cannot read it: %s", what, dir, strerror(errno));
	int rc = 0;
	for (struct dirent *de; !rc && (errno = 0, de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue;
		char path[4096];
		if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path) {
			rc = mq_err_set(err, MQ_EINVAL, "%s '%s': the name '%.100s...' is too long", what, dir,
					de->d_name);
			break;
		}
		if (stat(path, &st) < 0) {
			rc = mq_err_set(err, MQ_EINVAL, "%s: cannot look at '%s': %s", what, path, strerror(errno));
			break;
		}
		if (S_ISDIR(st.st_mode))
			continue;
		if (writable_by_others(&st)) {
			rc = mq_err_set(err, MQ_EINVAL, "%s: '%s' may be written by group or others (mode %04o), and so "
					"changed to any key: run chmod go-w '%s'", what, path,
					(unsigned)(st.st_mode & 07777), path);
			break;
		}
		char text[MQ_CURVE_KEY_TEXT + 1];
		if ((rc = mq_curve_read_key(path, 0, what, text, err)))
			break;
		if (a->n == a->cap) {
			size_t cap = a->cap ? a->cap * 2 : 16;
			entry_t *p = realloc(a->e, cap * sizeof *p);
			if (!p) {
				rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
				break;
			}
			a->e = p;
			a->cap = cap;
		}
		entry_t *e = &a->e[a->n];
		mq_curve_parse(text, e->key);
		e->admin = admin;
		if (!(e->name = strdup(de->d_name))) {
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
			break;
		}
		a->n++;
	}
	if (!rc && errno)
		rc = mq_err_set(err, MQ_EIO, "%s '%s': cannot read it: %s", what, dir, strerror(errno));
	closedir(d);
	return rc;
}

int mq_curve_allow_load(const char *dir, const char *admin_dir, mq_curve_allow_t **out, mq_err_t *err)
{
	mq_curve_allow_t *a = calloc(1, sizeof *a);
	if (!a)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	int rc = 0;
	if ((dir && (rc = load_dir(a, dir, 0, err))) || (admin_dir && (rc = load_dir(a, admin_dir, 1, err)))) {
		mq_curve_allow_free(a);
		return rc;
	}
	if (a->n)
		qsort(a->e, a->n, sizeof *a->e, cmp_entry);
	*out = a;
	return 0;
}

int mq_curve_allow_find(const mq_curve_allow_t *a, const uint8_t key[MQ_CURVE_KEY_BYTES], const char **name,
			int *admin)
{
	size_t lo = 0, hi = a->n;
	while (lo < hi) { /* the first entry not below key: an admin one when there is one */
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(a->e[mid].key, key, MQ_CURVE_KEY_BYTES) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == a->n || memcmp(a->e[lo].key, key, MQ_CURVE_KEY_BYTES))
		return 0;
	*name = a->e[lo].name;
	*admin = a->e[lo].admin;
	return 1;
}

size_t mq_curve_allow_count(const mq_curve_allow_t *a)
{
	return a->n;
}

void mq_curve_allow_free(mq_curve_allow_t *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->e[i].name);
	free(a->e);
	free(a);
}
