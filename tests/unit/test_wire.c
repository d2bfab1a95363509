/*
 * test_wire.c -- lib/wire.c: frames that declare more elements or bytes
 * than they hold are refused before msgpack-c sizes anything by them,
 * and every real frame, of every msgpack type, still parses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* [kind, id, ...] with one of each msgpack type, long forms included. */
static void pack_all(mq_buf_t *b)
{
	msgpack_packer pk;
	static char big[70000];
	memset(big, 'x', sizeof big);
	mq_wire_packer(&pk, b);
	mq_wire_begin(&pk, MQ_REQ_FETCH, 7, 16);
	msgpack_pack_nil(&pk);
	mq_wire_pack_bool(&pk, 1);
	msgpack_pack_int64(&pk, -5);
	msgpack_pack_int64(&pk, INT64_MIN);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	msgpack_pack_uint16(&pk, 300);
	msgpack_pack_float(&pk, 1.5f);
	msgpack_pack_double(&pk, 2.5);
	mq_wire_pack_strn(&pk, big, 20);    /* fixstr */
	mq_wire_pack_strn(&pk, big, 200);   /* str8 */
	mq_wire_pack_strn(&pk, big, 70000); /* str32 */
	msgpack_pack_bin(&pk, 3);
	msgpack_pack_bin_body(&pk, "abc", 3);
	msgpack_pack_ext(&pk, 4, 1); /* fixext4 */
	msgpack_pack_ext_body(&pk, "abcd", 4);
	msgpack_pack_ext(&pk, 5, 2); /* ext8 */
	msgpack_pack_ext_body(&pk, "abcde", 5);
	msgpack_pack_map(&pk, 2);
	mq_wire_pack_str(&pk, "a");
	msgpack_pack_array(&pk, 20); /* array16 */
	for (int i = 0; i < 20; i++)
		msgpack_pack_map(&pk, 0);
	mq_wire_pack_str(&pk, "b");
	msgpack_pack_array(&pk, 0);
	msgpack_pack_array(&pk, 0);
}

static void test_real_frames_parse(void **state)
{
	(void)state;
	mq_buf_t b = {0};
	mq_err_t err;
	mq_wire_msg_t m;
	pack_all(&b);
	assert_int_equal(mq_msgpack_fits(b.p, b.len), 1);
	assert_int_equal(mq_wire_parse(b.p, b.len, &m, &err), 0);
	assert_int_equal(m.kind, MQ_REQ_FETCH);
	assert_int_equal(m.id, 7);
	assert_int_equal(m.nargs, 16);
	mq_wire_msg_free(&m);
	/* Cut anywhere: not whole.  Trailing bytes after a whole object are
	 * msgpack-c's EXTRA_BYTES, accepted as before. */
	for (size_t n = 0; n < b.len; n += n < 300 ? 1 : 997)
		if (mq_msgpack_fits(b.p, n))
			fail_msg("a frame cut to %zu of %zu bytes is taken as whole", n, b.len);
	assert_int_equal(mq_buf_append(&b, "\xc0", 1), 0);
	assert_int_equal(mq_msgpack_fits(b.p, b.len), 1);
	mq_buf_free(&b);
}

/* Claims msgpack-c would have allocated for: gigabytes from a few bytes. */
static void test_claims_beyond_the_bytes(void **state)
{
	(void)state;
	static const struct {
		const char *what;
		const char *bytes;
		size_t n;
	} cases[] = {
		{"array32 of 4 billion", "\x93\x04\x01\xdd\xff\xff\xff\xff", 8},
		{"map32 of 4 billion", "\x93\x04\x01\xdf\xff\xff\xff\xff", 8},
		{"outer array32", "\xdd\xff\xff\xff\xff\x04\x01", 7},
		{"array16 of 65535 in 9 bytes", "\x93\x04\x01\xdc\xff\xff\x00\x00\x00", 9},
		{"nested claims", "\x93\x04\x01\x9f\xdd\x00\x10\x00\x00\xdd\x00\x10\x00\x00", 14},
		{"str32 of 4 GiB", "\x93\x04\x01\xdb\xff\xff\xff\xff" "abc", 11},
		{"bin32 of 4 GiB", "\x93\x04\x01\xc6\xff\xff\xff\xff" "abc", 11},
		{"ext32 of 4 GiB", "\x93\x04\x01\xc9\xff\xff\xff\xff\x01" "abc", 12},
		{"fixmap of 15 pairs, 2 bytes", "\x93\x04\x01\x8f\x01\x02", 6},
		{"fixstr of 31, 2 bytes", "\x93\x04\x01\xbf\x61\x61", 6},
		{"length field cut", "\x93\x04\x01\xdd\xff", 5},
		{"uint64 cut", "\x93\x04\xcf\x01\x02", 5},
		{"never-used 0xc1", "\x93\x04\x01\xc1", 4},
		{"empty", "", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mq_err_t err;
		mq_wire_msg_t m;
		if (mq_msgpack_fits(cases[i].bytes, cases[i].n))
			fail_msg("%s: taken as whole", cases[i].what);
		int rc = mq_wire_parse(cases[i].bytes, cases[i].n, &m, &err);
		mq_wire_msg_free(&m);
		if (rc != -MQ_EPROTO)
			fail_msg("%s: mq_wire_parse says %d", cases[i].what, rc);
	}
}

static void test_endpoint_is_ipv6(void **state)
{
	(void)state;
	assert_true(mq_endpoint_is_ipv6("tcp://[::1]:7733"));
	assert_true(mq_endpoint_is_ipv6("tcp://[::]:7733"));
	assert_false(mq_endpoint_is_ipv6("tcp://127.0.0.1:7733"));
	assert_false(mq_endpoint_is_ipv6("tcp://*:7733"));
	assert_false(mq_endpoint_is_ipv6("tcp://localhost:7733"));
	assert_false(mq_endpoint_is_ipv6("ipc:///tmp/[x]"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_frames_parse),
		cmocka_unit_test(test_claims_beyond_the_bytes),
		cmocka_unit_test(test_endpoint_is_ipv6),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
