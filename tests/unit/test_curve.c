/*
 * test_curve.c -- unit tests for lib/curve.c: Z85 keys (libzmq's own
 * encoder as the reference), key files in the forms mq-admin keygen
 * writes and prints, private-file checks on secret keys, server keys
 * given as text or file, and the allow-list: lookups, admin keys,
 * skipped names, and every way a list is refused whole.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "curve.h"

typedef struct fx {
	char root[64];
	char pub[3][41], sec[3][41];
} fx_t;

static int setup(void **state)
{
	fx_t *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	snprintf(f->root, sizeof f->root, "/tmp/test_curve.XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	for (int i = 0; i < 3; i++)
		if (zmq_curve_keypair(f->pub[i], f->sec[i]))
			return -1;
	*state = f;
	return 0;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	fx_t *f = *state;
	nftw(f->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* root/name with text in it and this mode; the path into path. */
static void put(const fx_t *f, const char *name, const char *text, mode_t mode, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", f->root, name);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_parse(void **state)
{
	fx_t *f = *state;
	uint8_t key[32], want[32];
	for (int i = 0; i < 3; i++) {
		assert_true(mq_curve_parse(f->pub[i], key));
		assert_non_null(zmq_z85_decode(want, f->pub[i]));
		assert_memory_equal(key, want, 32);
	}
	/* Every byte value, through libzmq's encoder. */
	uint8_t all[32];
	char text[41];
	for (int b = 0; b < 256; b += 32) {
		for (int i = 0; i < 32; i++)
			all[i] = (uint8_t)(b + i);
		assert_non_null(zmq_z85_encode(text, all, 32));
		assert_true(mq_curve_parse(text, key));
		assert_memory_equal(key, all, 32);
	}
	memset(all, 0xFF, sizeof all);
	zmq_z85_encode(text, all, 32);
	assert_true(mq_curve_parse(text, key));
	assert_memory_equal(key, all, 32);
	/* Not keys: lengths, characters outside Z85, a group over 2^32. */
	assert_false(mq_curve_parse("", NULL));
	char s[64];
	snprintf(s, sizeof s, "%.39s", f->pub[0]);
	assert_false(mq_curve_parse(s, NULL));
	snprintf(s, sizeof s, "%sx", f->pub[0]);
	assert_false(mq_curve_parse(s, NULL));
	snprintf(s, sizeof s, "%s", f->pub[0]);
	s[7] = ' ';
	assert_false(mq_curve_parse(s, NULL));
	s[7] = '"';
	assert_false(mq_curve_parse(s, NULL));
	assert_false(mq_curve_parse("########################################", NULL)); /* 85^5-1 > 2^32 */
}

static void test_read_key(void **state)
{
	fx_t *f = *state;
	char path[128], out[41], text[200];
	mq_err_t err;
	/* As keygen --secret/--public write them. */
	snprintf(text, sizeof text, "%s\n", f->sec[0]);
	put(f, "s", text, 0600, path, sizeof path);
	assert_int_equal(mq_curve_read_key(path, 1, "--curve-secret", out, &err), 0);
	assert_string_equal(out, f->sec[0]);
	/* As keygen prints them: each asks for its own line. */
	snprintf(text, sizeof text, "public: %s\nsecret: %s\n", f->pub[1], f->sec[1]);
	put(f, "pair", text, 0600, path, sizeof path);
	assert_int_equal(mq_curve_read_key(path, 1, "--curve-secret", out, &err), 0);
	assert_string_equal(out, f->sec[1]);
	assert_int_equal(mq_curve_read_key(path, 0, "--curve-server", out, &err), 0);
	assert_string_equal(out, f->pub[1]);
	/* Blank lines, CRLF and spaces around are fine. */
	snprintf(text, sizeof text, "\n  %s \r\n", f->pub[2]);
	put(f, "p", text, 0644, path, sizeof path);
	assert_int_equal(mq_curve_read_key(path, 0, "--curve-allow", out, &err), 0);
	assert_string_equal(out, f->pub[2]);
	/* A secret key accessible by group or others is refused, saying how to fix it. */
	snprintf(text, sizeof text, "%s\n", f->sec[0]);
	put(f, "open", text, 0640, path, sizeof path);
	assert_int_equal(mq_curve_read_key(path, 1, "--curve-secret", out, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "must not be accessible by group or others (its mode is 0640): run chmod 600"));
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(mq_curve_read_key(path, 1, "--curve-secret", out, &err), -MQ_EINVAL);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(mq_curve_read_key(path, 1, "--curve-secret", out, &err), 0);
	/* A public key file may be read by anyone. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(mq_curve_read_key(path, 0, "--curve-server", out, &err), 0);
	/* No key, a key of the other kind only, missing, a directory, too long. */
	put(f, "junk", "hello\n", 0600, path, sizeof path);
	assert_int_equal(mq_curve_read_key(path, 1, "--curve-secret", out, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "holds no secret key"));
	assert_non_null(strstr(err.msg, path));
	snprintf(text, sizeof text, "public: %s\n", f->pub[0]);
	put(f, "pubonly", text, 0600, path, sizeof path);
	assert_int_equal(mq_curve_read_key(path, 1, "--curve-secret", out, &err), -MQ_EINVAL);
	snprintf(path, sizeof path, "%s/missing", f->root);
	assert_int_equal(mq_curve_read_key(path, 1, "--curve-secret", out, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "--curve-secret '"));
	assert_non_null(strstr(err.msg, "mq-admin keygen"));
	assert_int_equal(mq_curve_read_key(f->root, 0, "--curve-server", out, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "not a regular file"));
	char big[5000];
	memset(big, '\n', sizeof big - 41);
	snprintf(big + sizeof big - 42, 42, "%s", f->pub[0]);
	put(f, "big", big, 0644, path, sizeof path);
	assert_int_equal(mq_curve_read_key(path, 0, "--curve-server", out, &err), -MQ_EINVAL);
}

static void test_server_key(void **state)
{
	fx_t *f = *state;
	char path[128], out[41], text[64];
	mq_err_t err;
	assert_int_equal(mq_curve_server_key(f->pub[0], "--curve-server", out, &err), 0);
	assert_string_equal(out, f->pub[0]);
	snprintf(text, sizeof text, "%s\n", f->pub[1]);
	put(f, "server.pub", text, 0644, path, sizeof path);
	assert_int_equal(mq_curve_server_key(path, "MQ_CURVE_SERVER", out, &err), 0);
	assert_string_equal(out, f->pub[1]);
	assert_int_equal(mq_curve_server_key("abc", "MQ_CURVE_SERVER", out, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "MQ_CURVE_SERVER 'abc': neither a key (40 Z85 characters) nor a file"));
	/* The public key of a secret one, as libzmq derives it. */
	assert_int_equal(mq_curve_public_of(f->sec[2], out, &err), 0);
	assert_string_equal(out, f->pub[2]);
}

static void mkdir_in(const fx_t *f, const char *name, mode_t mode, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", f->root, name);
	assert_int_equal(mkdir(path, mode), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_allow(void **state)
{
	fx_t *f = *state;
	char allow[128], admin[128], path[160], text[64];
	mq_err_t err;
	mkdir_in(f, "allow", 0700, allow, sizeof allow);
	mkdir_in(f, "admin", 0755, admin, sizeof admin);
	snprintf(text, sizeof text, "%s\n", f->pub[0]);
	put(f, "allow/alice", text, 0644, path, sizeof path);
	snprintf(text, sizeof text, "public: %s\n", f->pub[1]);
	put(f, "allow/bob", text, 0600, path, sizeof path);
	snprintf(text, sizeof text, "%s\n", f->pub[1]); /* bob is an admin too */
	put(f, "admin/bob-admin", text, 0644, path, sizeof path);
	put(f, "allow/.alice.swp", "not a key\n", 0644, path, sizeof path); /* skipped */
	mkdir_in(f, "allow/old", 0700, path, sizeof path);                  /* skipped */
	mq_curve_allow_t *a = NULL;
	assert_int_equal(mq_curve_allow_load(allow, admin, &a, &err), 0);
	assert_int_equal(mq_curve_allow_count(a), 3);
	uint8_t key[32];
	const char *name;
	int is_admin;
	mq_curve_parse(f->pub[0], key);
	assert_true(mq_curve_allow_find(a, key, &name, &is_admin));
	assert_string_equal(name, "alice");
	assert_false(is_admin);
	mq_curve_parse(f->pub[1], key);
	assert_true(mq_curve_allow_find(a, key, &name, &is_admin));
	assert_string_equal(name, "bob-admin");
	assert_true(is_admin);
	mq_curve_parse(f->pub[2], key);
	assert_false(mq_curve_allow_find(a, key, &name, &is_admin));
	mq_curve_allow_free(a);
	/* Either list alone; an empty list lets nobody in. */
	assert_int_equal(mq_curve_allow_load(NULL, admin, &a, &err), 0);
	assert_int_equal(mq_curve_allow_count(a), 1);
	mq_curve_parse(f->pub[0], key);
	assert_false(mq_curve_allow_find(a, key, &name, &is_admin));
	mq_curve_allow_free(a);
	mkdir_in(f, "empty", 0700, path, sizeof path);
	assert_int_equal(mq_curve_allow_load(path, NULL, &a, &err), 0);
	assert_int_equal(mq_curve_allow_count(a), 0);
	assert_false(mq_curve_allow_find(a, key, &name, &is_admin));
	mq_curve_allow_free(a);
	/* Refused whole: a file with no key, naming it; a file or a
	 * directory others may write to; no such directory; a file. */
	put(f, "allow/carol", "carol's key, some day\n", 0644, path, sizeof path);
	a = NULL;
	assert_int_equal(mq_curve_allow_load(allow, admin, &a, &err), -MQ_EINVAL);
	assert_null(a);
	assert_non_null(strstr(err.msg, "allow/carol': holds no public key"));
	snprintf(text, sizeof text, "%s\n", f->pub[2]);
	put(f, "allow/carol", text, 0666, path, sizeof path);
	assert_int_equal(mq_curve_allow_load(allow, NULL, &a, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "may be written by group or others (mode 0666)"));
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(mq_curve_allow_load(allow, NULL, &a, &err), 0);
	assert_int_equal(mq_curve_allow_count(a), 3);
	mq_curve_allow_free(a);
	assert_int_equal(chmod(admin, 0775), 0);
	assert_int_equal(mq_curve_allow_load(allow, admin, &a, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "--curve-allow-admin"));
	assert_non_null(strstr(err.msg, "group or others may write to it (mode 0775)"));
	snprintf(path, sizeof path, "%s/nowhere", f->root);
	assert_int_equal(mq_curve_allow_load(path, NULL, &a, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "No such file or directory"));
	snprintf(path, sizeof path, "%s/allow/alice", f->root);
	assert_int_equal(mq_curve_allow_load(path, NULL, &a, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "Not a directory"));
}

/* Many keys: every one found, with its own name (the sorted search). */
static void test_allow_many(void **state)
{
	fx_t *f = *state;
	char dir[128], path[200], text[64];
	mq_err_t err;
	mkdir_in(f, "many", 0700, dir, sizeof dir);
	enum { N = 300 };
	static char pubs[N][41];
	for (int i = 0; i < N; i++) {
		char sec[41], name[32];
		assert_int_equal(zmq_curve_keypair(pubs[i], sec), 0);
		snprintf(name, sizeof name, "many/client%03d", i);
		snprintf(text, sizeof text, "%s\n", pubs[i]);
		put(f, name, text, 0644, path, sizeof path);
	}
	mq_curve_allow_t *a;
	assert_int_equal(mq_curve_allow_load(dir, NULL, &a, &err), 0);
	assert_int_equal(mq_curve_allow_count(a), N);
	for (int i = 0; i < N; i++) {
		uint8_t key[32];
		const char *name;
		int is_admin;
		char want[32];
		mq_curve_parse(pubs[i], key);
		assert_true(mq_curve_allow_find(a, key, &name, &is_admin));
		snprintf(want, sizeof want, "client%03d", i);
		assert_string_equal(name, want);
		key[31] ^= 1;
		assert_false(mq_curve_allow_find(a, key, &name, &is_admin) && !strcmp(name, want));
	}
	mq_curve_allow_free(a);
}

int main(void)
{
	if (!mq_curve_available()) {
		fprintf(stderr, "test_curve: this libzmq has no CURVE; nothing to test\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_many, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
