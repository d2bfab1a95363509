/*
 * test_json.c -- unit tests for lib/json.c: documents come out as
 * written with commas in their places; strings with quotes, control
 * characters, UTF-8 and bytes that are not UTF-8 stay valid JSON;
 * integers are exact at their limits; misuse is reported by
 * mq_json_finish instead of written.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

/* The text of b as a C string (b keeps owning it). */
static const char *text(mq_buf_t *b)
{
	assert_int_equal(mq_buf_append(b, "", 1), 0);
	b->len--;
	return (const char *)b->p;
}

static void test_document(void **state)
{
	mq_buf_t b = {0};
	mq_json_t j;
	mq_err_t err;
	mq_json_init(&j, &b);
	mq_json_object(&j);
	mq_json_kstr(&j, "topic", "orders");
	mq_json_ku64(&j, "partitions", 3);
	mq_json_ki64_or_null(&j, "retention_time_ms", -1);
	mq_json_kbool(&j, "retention_time_default", 1);
	mq_json_key(&j, "offsets");
	mq_json_array(&j);
	for (int p = 0; p < 2; p++) {
		mq_json_object(&j);
		mq_json_ki64(&j, "partition", p);
		mq_json_key(&j, "empty");
		mq_json_array(&j);
		mq_json_end(&j);
		mq_json_end(&j);
	}
	mq_json_u64(&j, 7);
	mq_json_null(&j);
	mq_json_end(&j);
	mq_json_key(&j, "rtt_ms");
	mq_json_fixed(&j, 0.1254, 3);
	mq_json_kstr(&j, "none", NULL);
	mq_json_end(&j);
	assert_int_equal(mq_json_finish(&j, &err), 0);
	assert_string_equal(text(&b), "{\"topic\":\"orders\",\"partitions\":3,\"retention_time_ms\":null,"
				      "\"retention_time_default\":true,\"offsets\":[{\"partition\":0,\"empty\":[]},"
				      "{\"partition\":1,\"empty\":[]},7,null],\"rtt_ms\":0.125,\"none\":null}\n");
	mq_buf_free(&b);

	/* a bare value is a document too; appended after what is there */
	assert_int_equal(mq_buf_append(&b, "x", 1), 0);
	mq_json_init(&j, &b);
	mq_json_fixed(&j, NAN, 3);
	assert_int_equal(mq_json_finish(&j, &err), 0);
	assert_string_equal(text(&b), "xnull\n");
	mq_buf_free(&b);
}

static void test_numbers_at_limits(void **state)
{
	mq_buf_t b = {0};
	mq_json_t j;
	mq_err_t err;
	mq_json_init(&j, &b);
	mq_json_array(&j);
	mq_json_i64(&j, INT64_MIN);
	mq_json_i64(&j, INT64_MAX);
	mq_json_u64(&j, UINT64_MAX);
	mq_json_i64(&j, 0);
	mq_json_fixed(&j, -1.5, 1);
	mq_json_fixed(&j, 2.0, 0);
	mq_json_end(&j);
	assert_int_equal(mq_json_finish(&j, &err), 0);
	assert_string_equal(text(&b),
			    "[-9223372036854775808,9223372036854775807,18446744073709551615,0,-1.5,2]\n");
	mq_buf_free(&b);
}

static void expect_escaped(const char *in, size_t n, const char *want)
{
	mq_buf_t b = {0};
	assert_int_equal(mq_json_escape(&b, in, n), 0);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.p, want, b.len);
	mq_buf_free(&b);
}

static void test_escaping(void **state)
{
	expect_escaped("plain-name_1.x", 14, "plain-name_1.x");
	expect_escaped("a\"b\\c", 5, "a\\\"b\\\\c");
	expect_escaped("\n\t\r\b\f", 5, "\\n\\t\\r\\b\\f");
	expect_escaped("\x01\x1f\x7f", 3, "\\u0001\\u001f\\u007f");
	expect_escaped("nul\0in", 6, "nul\\u0000in");
	expect_escaped("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	/* not UTF-8: a lone continuation byte, a truncated sequence, an overlong '/', a surrogate */
	expect_escaped("a\x80z", 3, "a\\ufffdz");
	expect_escaped("\xe2\x82", 2, "\\ufffd\\ufffd");
	expect_escaped("\xc0\xaf", 2, "\\ufffd\\ufffd");
	expect_escaped("\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd");
	/* an emoji cut short is not UTF-8 either */
	expect_escaped("\xf0\x9f\x98", 3, "\\ufffd\\ufffd\\ufffd");
	expect_escaped("", 0, "");

	/* keys are escaped the same way */
	mq_buf_t b = {0};
	mq_json_t j;
	mq_err_t err;
	mq_json_init(&j, &b);
	mq_json_object(&j);
	mq_json_kstr(&j, "expired:t\"1", "member-\x01\xff");
	mq_json_end(&j);
	assert_int_equal(mq_json_finish(&j, &err), 0);
	assert_string_equal(text(&b), "{\"expired:t\\\"1\":\"member-\\u0001\\ufffd\"}\n");
	mq_buf_free(&b);
}

/* Each misuse is kept and reported by mq_json_finish. */
static void test_misuse(void **state)
{
	static const char *const cases[] = {"value-without-key", "key-in-array", "key-without-value",
					    "unclosed",          "extra-end",    "two-documents",
					    "too-deep",          "empty"};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		mq_buf_t b = {0};
		mq_json_t j;
		mq_err_t err;
		mq_json_init(&j, &b);
		switch (c) {
		case 0: mq_json_object(&j); mq_json_i64(&j, 1); mq_json_end(&j); break;
		case 1: mq_json_array(&j); mq_json_key(&j, "k"); mq_json_end(&j); break;
		case 2: mq_json_object(&j); mq_json_key(&j, "k"); mq_json_end(&j); break;
		case 3: mq_json_object(&j); break;
		case 4: mq_json_array(&j); mq_json_end(&j); mq_json_end(&j); break;
		case 5: mq_json_null(&j); mq_json_null(&j); break;
		case 6:
			for (int i = 0; i <= MQ_JSON_DEPTH; i++)
				mq_json_array(&j);
			for (int i = 0; i <= MQ_JSON_DEPTH; i++)
				mq_json_end(&j);
			break;
		default: break;
		}
		print_message("case %s\n", cases[c]);
		assert_int_equal(mq_json_finish(&j, &err), -MQ_EINVAL);
		assert_non_null(strstr(err.msg, "JSON document written wrongly"));
		mq_buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_document),
		cmocka_unit_test(test_numbers_at_limits),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_misuse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
