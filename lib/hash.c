/*
 * hash.c -- SipHash with 128-bit output; see hash.h.  Written from the
 * paper's description (and checked against the reference vectors in
 * tests/unit/test_hash.c): a 16-byte key, 8-byte little-endian message
 * words, the length in the top byte of the last word, 0xee into v1 at
 * the start and 0xee / 0xdd into v2 / v1 before the two halves of the
 * output.
 */
#include "hash.h"

#include <errno.h>
#include <sys/random.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                                  \
	do {                                                                                      \
		v0 += v1;                                                                         \
		v1 = ROTL(v1, 13);                                                                \
		v1 ^= v0;                                                                         \
		v0 = ROTL(v0, 32);                                                                \
		v2 += v3;                                                                         \
		v3 = ROTL(v3, 16);                                                                \
		v3 ^= v2;                                                                         \
		v0 += v3;                                                                         \
		v3 = ROTL(v3, 21);                                                                \
		v3 ^= v0;                                                                         \
		v2 += v1;                                                                         \
		v1 = ROTL(v1, 17);                                                                \
		v1 ^= v2;                                                                         \
		v2 = ROTL(v2, 32);                                                                \
	} while (0)

/* Always inlined into the two wrappers, so the round counts are
 * constants and the loops unroll. */
static inline __attribute__((always_inline)) mq_hash128_t sip128(const mq_hashkey_t *k, const uint8_t *p,
								  size_t n, int c, int d)
{
	uint64_t v0 = 0x736f6d6570736575ull ^ k->k0;
	uint64_t v1 = 0x646f72616e646f6dull ^ k->k1 ^ 0xee;
	uint64_t v2 = 0x6c7967656e657261ull ^ k->k0;
	uint64_t v3 = 0x7465646279746573ull ^ k->k1;
	const uint8_t *end = p + (n & ~(size_t)7);
	for (; p != end; p += 8) {
		uint64_t m = mq_get_u64(p);
		v3 ^= m;
		for (int i = 0; i < c; i++)
			SIPROUND;
		v0 ^= m;
	}
	uint64_t b = (uint64_t)n << 56;
	switch (n & 7) {
	case 7: b |= (uint64_t)p[6] << 48; /* fall through */
	case 6: b |= (uint64_t)p[5] << 40; /* fall through */
	case 5: b |= (uint64_t)p[4] << 32; /* fall through */
	case 4: b |= (uint64_t)p[3] << 24; /* fall through */
	case 3: b |= (uint64_t)p[2] << 16; /* fall through */
	case 2: b |= (uint64_t)p[1] << 8;  /* fall through */
	case 1: b |= (uint64_t)p[0];       /* fall through */
	default: break;
	}
	v3 ^= b;
	for (int i = 0; i < c; i++)
		SIPROUND;
	v0 ^= b;
	v2 ^= 0xee;
	for (int i = 0; i < d; i++)
		SIPROUND;
	mq_hash128_t h;
	h.lo = v0 ^ v1 ^ v2 ^ v3;
	v1 ^= 0xdd;
	for (int i = 0; i < d; i++)
		SIPROUND;
	h.hi = v0 ^ v1 ^ v2 ^ v3;
	return h;
}

mq_hash128_t mq_hash128(const mq_hashkey_t *k, const void *p, size_t n)
{
	return sip128(k, p, n, 1, 3);
}

mq_hash128_t mq_siphash24_128(const mq_hashkey_t *k, const void *p, size_t n)
{
	return sip128(k, p, n, 2, 4);
}

int mq_hashkey_random(mq_hashkey_t *k, mq_err_t *err)
{
	uint8_t b[16];
	size_t got = 0;
	while (got < sizeof b) {
		ssize_t r = getrandom(b + got, sizeof b - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return mq_err_sys(err, "getting a random hash key from the kernel");
		got += (size_t)r;
	}
	k->k0 = mq_get_u64(b);
	k->k1 = mq_get_u64(b + 8);
	return 0;
}
