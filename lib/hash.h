/*
 * hash.h -- a keyed 128-bit hash for identities: SipHash with 128-bit
 * output (Aumasson and Bernstein), as mq-dedup and the per-key buckets
 * use it to stand in for the bytes they would otherwise have to keep.
 *
 * Why SipHash and 128 bits: a set that stores hashes instead of
 * identities drops a record whenever two identities collide, so the
 * hash must be good against chance (2^-128 per pair: nothing at
 * billions of identities) and against input chosen to collide, which a
 * secret random key gives and an unkeyed hash (xxHash, Murmur) cannot.
 * The fast variant SipHash-1-3 is used; SipHash-2-4 is here for the
 * reference test vectors, which share every line but the round counts.
 */
#ifndef MQ_HASH_H
#define MQ_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct mq_hashkey {
	uint64_t k0, k1;
} mq_hashkey_t;

/* The 16 output bytes as two little-endian words: lo is bytes 0-7. */
typedef struct mq_hash128 {
	uint64_t lo, hi;
} mq_hash128_t;

/* SipHash-1-3-128 of p[0, n) under k. */
mq_hash128_t mq_hash128(const mq_hashkey_t *k, const void *p, size_t n);
/* SipHash-2-4-128: the reference parameters (for tests). */
mq_hash128_t mq_siphash24_128(const mq_hashkey_t *k, const void *p, size_t n);
/* A key from the kernel's random source: 0 or -MQ_EIO. */
int mq_hashkey_random(mq_hashkey_t *k, mq_err_t *err);

#endif
