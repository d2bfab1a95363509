/*
 * json.c -- the JSON writer of json.h.
 *
 * State is a stack of the open containers (a flag each: has it a value
 * yet, so the next one needs a comma) and whether a key waits for its
 * value.  Every call first checks that a value (or a key) may come
 * here; a misuse is a bug in the caller, kept as -MQ_EINVAL for
 * mq_json_finish rather than written as broken JSON.
 */
#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void mq_json_init(mq_json_t *j, mq_buf_t *out)
{
	memset(j, 0, sizeof *j);
	j->out = out;
}

static void fail(mq_json_t *j, int rc)
{
	if (!j->rc)
		j->rc = rc;
}

static void put(mq_json_t *j, const void *p, size_t n)
{
	if (!j->rc && mq_buf_append(j->out, p, n))
		fail(j, -MQ_ENOMEM);
}

/* Before a value: the comma, and whether a value may stand here at all. */
static int value_begins(mq_json_t *j)
{
	if (j->rc)
		return -1;
	if (j->done || (j->depth && j->open[j->depth - 1] == '{' && !j->want_value)) {
		fail(j, -MQ_EINVAL);
		return -1;
	}
	if (j->depth && j->open[j->depth - 1] == '[' && j->any[j->depth - 1])
		put(j, ",", 1);
	if (j->depth)
		j->any[j->depth - 1] = 1;
	j->want_value = 0;
	return j->rc ? -1 : 0;
}

/* After a value: a top-level one completes the document. */
static void value_ends(mq_json_t *j)
{
	if (!j->depth)
		j->done = 1;
}

static void open_container(mq_json_t *j, char c)
{
	if (value_begins(j))
		return;
	if (j->depth == MQ_JSON_DEPTH) {
		fail(j, -MQ_EINVAL);
		return;
	}
	put(j, &c, 1);
	j->open[j->depth] = c;
	j->any[j->depth] = 0;
	j->depth++;
}

void mq_json_object(mq_json_t *j)
{
	open_container(j, '{');
}

void mq_json_array(mq_json_t *j)
{
	open_container(j, '[');
}

void mq_json_end(mq_json_t *j)
{
	if (j->rc)
		return;
	if (!j->depth || j->want_value) {
		fail(j, -MQ_EINVAL);
		return;
	}
	char c = j->open[--j->depth] == '{' ? '}' : ']';
	put(j, &c, 1);
	value_ends(j);
}

void mq_json_key(mq_json_t *j, const char *name)
{
	if (j->rc)
		return;
	if (!j->depth || j->open[j->depth - 1] != '{' || j->want_value) {
		fail(j, -MQ_EINVAL);
		return;
	}
	if (j->any[j->depth - 1])
		put(j, ",", 1);
	put(j, "\"", 1);
	if (!j->rc && mq_json_escape(j->out, name, strlen(name)))
		fail(j, -MQ_ENOMEM);
	put(j, "\":", 2);
	j->want_value = 1;
}

/* 0: as is; else the character after the backslash ('u': \u00XX). */
static const uint8_t esc[128] = {
	[0 ... 7] = 'u', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', [11] = 'u', ['\f'] = 'f',
	['\r'] = 'r', [14 ... 0x1f] = 'u', ['"'] = '"', ['\\'] = '\\', [0x7f] = 'u',
};

int mq_json_escape(mq_buf_t *out, const void *data, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = data;
	size_t i = 0;
	while (i < n) {
		size_t run = i, k;
		while (run < n && p[run] < 0x80 && !esc[p[run]])
			run++;
		while (run < n && p[run] >= 0x80 && (k = mq_utf8_seq(p + run, n - run)) > 0)
			run += k;
		if (run > i) {
			if (mq_buf_append(out, p + i, run - i))
				return -MQ_ENOMEM;
			i = run;
			continue;
		}
		char e[6] = {'\\', (char)(p[i] < 0x80 ? esc[p[i]] : 'u'), '0', '0', 0, 0};
		size_t len = 2;
		if (p[i] >= 0x80) { /* not UTF-8: U+FFFD */
			memcpy(e + 2, "fffd", 4);
			len = 6;
		} else if (e[1] == 'u') {
			e[4] = hex[p[i] >> 4];
			e[5] = hex[p[i] & 15];
			len = 6;
		}
		if (mq_buf_append(out, e, len))
			return -MQ_ENOMEM;
		i++;
	}
	return 0;
}

void mq_json_strn(mq_json_t *j, const void *p, size_t n)
{
	if (value_begins(j))
		return;
	put(j, "\"", 1);
	if (!j->rc && mq_json_escape(j->out, p, n))
		fail(j, -MQ_ENOMEM);
	put(j, "\"", 1);
	value_ends(j);
}

void mq_json_str(mq_json_t *j, const char *s)
{
	if (!s)
		mq_json_null(j);
	else
		mq_json_strn(j, s, strlen(s));
}

/* A value written as it is (numbers, literals). */
static void raw(mq_json_t *j, const char *s, int len)
{
	if (value_begins(j))
		return;
	put(j, s, (size_t)len);
	value_ends(j);
}

void mq_json_i64(mq_json_t *j, int64_t v)
{
	char b[24];
	raw(j, b, snprintf(b, sizeof b, "%" PRId64, v));
}

void mq_json_u64(mq_json_t *j, uint64_t v)
{
	char b[24];
	raw(j, b, snprintf(b, sizeof b, "%" PRIu64, v));
}

void mq_json_fixed(mq_json_t *j, double v, int decimals)
{
	char b[64];
	if (!isfinite(v) || fabs(v) >= 1e18) {
		mq_json_null(j);
		return;
	}
	decimals = decimals < 0 ? 0 : decimals > 9 ? 9 : decimals;
	raw(j, b, snprintf(b, sizeof b, "%.*f", decimals, v));
}

void mq_json_bool(mq_json_t *j, int v)
{
	raw(j, v ? "true" : "false", v ? 4 : 5);
}

void mq_json_null(mq_json_t *j)
{
	raw(j, "null", 4);
}

void mq_json_kstr(mq_json_t *j, const char *key, const char *s)
{
	mq_json_key(j, key);
	mq_json_str(j, s);
}

void mq_json_ki64(mq_json_t *j, const char *key, int64_t v)
{
	mq_json_key(j, key);
	mq_json_i64(j, v);
}

void mq_json_ku64(mq_json_t *j, const char *key, uint64_t v)
{
	mq_json_key(j, key);
	mq_json_u64(j, v);
}

void mq_json_ki64_or_null(mq_json_t *j, const char *key, int64_t v)
{
	mq_json_key(j, key);
	if (v < 0)
		mq_json_null(j);
	else
		mq_json_i64(j, v);
}

void mq_json_kbool(mq_json_t *j, const char *key, int v)
{
	mq_json_key(j, key);
	mq_json_bool(j, v);
}

int mq_json_finish(mq_json_t *j, mq_err_t *err)
{
	if (!j->rc && !j->done)
		fail(j, -MQ_EINVAL);
	put(j, "\n", 1);
	if (j->rc == -MQ_ENOMEM)
		return mq_err_set(err, MQ_ENOMEM, "out of memory while writing JSON");
	if (j->rc)
		return mq_err_set(err, MQ_EINVAL, "JSON document written wrongly (a value where a key belongs, "
				  "unbalanced or nested deeper than %d); this is a bug in mq", MQ_JSON_DEPTH);
	return 0;
}
