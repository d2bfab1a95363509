/* fuzz_kassign.c -- a Kafka group member's assignment as the cluster
 * hands it over (lib/kafka.c, mq_kafka_assignment_parse): bytes another
 * client of the group chose, every count checked before it is used. */
#include <string.h>

#include "fuzz.h"
#include "kafka.h"

static volatile size_t sink; /* so reading the names is not optimised away */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mq_kafka_tp_t *v = NULL;
	uint32_t n = 0;
	mq_err_t err;
	if (mq_kafka_assignment_parse(data, size, &v, &n, &err) == 0) {
		size_t sum = 0; /* every name read whole */
		for (uint32_t i = 0; i < n; i++)
			sum += strlen(v[i].topic) + (size_t)v[i].partition;
		sink = sum;
		mq_kafka_tp_free(v, n);
	}
	return 0;
}
