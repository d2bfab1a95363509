/*
 * test_filter.c -- unit tests for the record helpers of lib/filter.c:
 * cutting field N awk-style and at a fixed delimiter, and parsing and
 * applying an identity (--by, -k).  The loop itself is exercised by
 * tests/mq-dedup.bats and tests/mq-bucket.bats.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "filter.h"

static const char *field(const char *s, const char *delim, size_t n)
{
	static char buf[256];
	const uint8_t *p;
	size_t len;
	if (!mq_field((const uint8_t *)s, strlen(s), delim, n, &p, &len))
		return NULL;
	memcpy(buf, p, len);
	buf[len] = 0;
	return buf;
}

static void test_field_blanks(void **state)
{
	assert_string_equal(field("a b c", NULL, 1), "a");
	assert_string_equal(field("  a \t b  c ", NULL, 2), "b");
	assert_string_equal(field("  a \t b  c ", NULL, 3), "c");
	assert_null(field("  a \t b  c ", NULL, 4));
	assert_null(field("   ", NULL, 1));
	assert_null(field("", NULL, 1));
}

static void test_field_delim(void **state)
{
	assert_string_equal(field("a,,c", ",", 1), "a");
	assert_string_equal(field("a,,c", ",", 2), "");
	assert_string_equal(field("a,,c", ",", 3), "c");
	assert_null(field("a,,c", ",", 4));
	assert_string_equal(field("", ",", 1), "");
	assert_string_equal(field("x::y::z", "::", 2), "y");
	assert_string_equal(field("x::y::z", "::", 3), "z");
	assert_string_equal(field("x:y", "::", 1), "x:y");
}

static void test_ident(void **state)
{
	mq_ident_t id = {0};
	mq_err_t err;
	const uint8_t *p;
	size_t n;
	assert_int_equal(mq_ident_parse("--by", "line", 1, &id, &err), 0);
	assert_int_equal(mq_ident_parse("-k", "line", 0, &id, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "-k 'line'"));
	assert_int_equal(mq_ident_parse("--by", "field:0", 1, &id, &err), -MQ_EINVAL);
	assert_int_equal(mq_ident_parse("--by", "field:x", 1, &id, &err), -MQ_EINVAL);
	assert_int_equal(mq_ident_parse("--by", "field:3", 1, &id, &err), 0);
	assert_int_equal(id.field, 3);
	mq_rec_t rec = {.value = (const uint8_t *)"a b c", .value_len = 5};
	assert_int_equal(mq_ident_of(&id, &rec, &p, &n), 1);
	assert_int_equal(n, 1);
	assert_int_equal(*p, 'c');
	assert_int_equal(mq_ident_parse("--by", "key", 1, &id, &err), 0);
	assert_int_equal(mq_ident_of(&id, &rec, &p, &n), 0);
	rec.key = (const uint8_t *)"k";
	rec.key_len = 1;
	assert_int_equal(mq_ident_of(&id, &rec, &p, &n), 1);
	assert_int_equal(mq_ident_parse("--by", "id", 1, &id, &err), 0);
	assert_int_equal(mq_ident_of(&id, &rec, &p, &n), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_field_blanks),
		cmocka_unit_test(test_field_delim),
		cmocka_unit_test(test_ident),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
