/*
 * crc32c.h -- CRC-32C (Castagnoli), the checksum of every stored batch.
 * Uses the SSE4.2 crc32 instruction when the CPU has it, a table
 * otherwise; both give the same result.
 */
#ifndef MQ_CRC32C_H
#define MQ_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: start with crc = 0.  mq_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t mq_crc32c(uint32_t crc, const void *data, size_t n);

/* For tests: the portable table path, which mq_crc32c must always match. */
uint32_t mq_crc32c_sw(uint32_t crc, const void *data, size_t n);

#endif
