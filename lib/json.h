/*
 * json.h -- a small JSON writer for the documents programs print
 * (mq-admin -f json): objects, arrays, strings, numbers, true, false
 * and null, appended to an mq_buf_t, with the commas and the string
 * escaping done here once.
 *
 * Strings may hold any bytes: '"', '\\' and control characters are
 * escaped, valid UTF-8 is kept as it is, and a byte that is not part of
 * valid UTF-8 becomes U+FFFD, so the document is always valid JSON
 * (member ids and error messages come from elsewhere).  Integers are
 * written in full (no exponent, no rounding).
 *
 * The calls do not return errors: the first failure (out of memory,
 * nesting deeper than MQ_JSON_DEPTH, a value where a key belongs, a
 * close that does not match) is kept, and mq_json_finish reports it, so
 * a writer reads as the document it writes.  Nothing here prints.
 */
#ifndef MQ_JSON_H
#define MQ_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MQ_JSON_DEPTH 16

typedef struct mq_json {
	mq_buf_t *out;
	uint32_t depth;
	char open[MQ_JSON_DEPTH];  /* '{' or '[' per level */
	uint8_t any[MQ_JSON_DEPTH];  /* a value was written in the level: a comma before the next */
	int want_value;            /* a key was written: its value comes next */
	int done;                  /* the top-level value is complete */
	int rc;                    /* 0, or the first failure (negative MQ_E*) */
} mq_json_t;

/* Start a document appended to out (not emptied first). */
void mq_json_init(mq_json_t *j, mq_buf_t *out);

void mq_json_object(mq_json_t *j);   /* { */
void mq_json_array(mq_json_t *j);    /* [ */
void mq_json_end(mq_json_t *j);      /* } or ], whichever is open */
void mq_json_key(mq_json_t *j, const char *name); /* in an object, before each value */

void mq_json_str(mq_json_t *j, const char *s); /* NULL: null */
void mq_json_strn(mq_json_t *j, const void *p, size_t n);
void mq_json_i64(mq_json_t *j, int64_t v);
void mq_json_u64(mq_json_t *j, uint64_t v);
/* A fraction with this many decimals (0-9), e.g. milliseconds 0.125;
 * a value that is not finite is null. */
void mq_json_fixed(mq_json_t *j, double v, int decimals);
void mq_json_bool(mq_json_t *j, int v);
void mq_json_null(mq_json_t *j);

/* "key":value in one call. */
void mq_json_kstr(mq_json_t *j, const char *key, const char *s);
void mq_json_ki64(mq_json_t *j, const char *key, int64_t v);
void mq_json_ku64(mq_json_t *j, const char *key, uint64_t v);
/* v < 0 is written as null (an offset or time that is not there). */
void mq_json_ki64_or_null(mq_json_t *j, const char *key, int64_t v);
void mq_json_kbool(mq_json_t *j, const char *key, int v);

/* The document is complete: a newline is appended and 0 returned, or
 * the first failure with err filled (-MQ_ENOMEM, or -MQ_EINVAL for a
 * document written wrongly or left open). */
int mq_json_finish(mq_json_t *j, mq_err_t *err);

/* The escaped form of p[0..n) without the quotes, appended to out
 * (see above).  0 or -MQ_ENOMEM. */
int mq_json_escape(mq_buf_t *out, const void *p, size_t n);

#endif
