/*
 * fuzz.h -- what every tests/fuzz/fuzz_*.c target defines: libFuzzer's
 * entry point.  The same target is linked two ways (see the Makefile):
 * with clang's -fsanitize=fuzzer for `make fuzz`, and with replay.c for
 * `make check`, which runs it over its seed corpus and every input that
 * once crashed it (tests/fuzz/corpus/NAME/, tests/fuzz/regress/NAME/).
 * A target returns 0 and must neither leak nor keep state between calls
 * beyond what it sets up once.
 */
#ifndef MQ_FUZZ_H
#define MQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of data (the caller frees it), for the parsers
 * that take C strings. */
char *fuzz_cstr(const uint8_t *data, size_t size);

/* Walk p[0..n) as back-to-back batches and make each one's CRC right
 * (stopping at the first impossible length), so that a target gets past
 * the CRC to the decoding behind it. */
void fuzz_fix_crcs(uint8_t *p, size_t n);

/* A socketpair whose sv[0] has data[0..size) to read and then the end
 * of the stream (sv[1] is the peer, open for reading what is sent
 * back): 0, or -1 for an input too large for the socket buffers. */
int fuzz_stream(const uint8_t *data, size_t size, int sv[2]);

#endif
