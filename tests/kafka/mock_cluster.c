/*
 * mock_cluster -- a Kafka-compatible cluster on this machine for the
 * tests: librdkafka's mock cluster (rdkafka_mock.h), BROKERS brokers on
 * real TCP listeners on loopback, speaking the Kafka protocol to any
 * client (librdkafka, kcat, mq's programs).
 *
 *   mock_cluster [-n BROKERS] [-t TOPIC:PARTITIONS]...
 *
 * Prints the bootstrap list ("127.0.0.1:PORT,...") as one line on
 * standard output once the cluster listens, then runs until standard
 * input ends or SIGINT/SIGTERM comes.  -t creates topics first (the
 * mock cluster has no CreateTopics request; topics a producer names
 * are made on first use with the mock's default partition count).
 */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: mock_cluster [-n BROKERS] [-t TOPIC:PARTITIONS]...\n");
	return 2;
}

int main(int argc, char **argv)
{
	int brokers = 3, c;
	const char *topics[64];
	int ntopics = 0;
	while ((c = getopt(argc, argv, "n:t:")) != -1) {
		if (c == 'n') {
			brokers = atoi(optarg);
			if (brokers < 1 || brokers > 16) {
				fprintf(stderr, "mock_cluster: -n '%s': use 1 to 16 brokers\n", optarg);
				return 2;
			}
		} else if (c == 't' && ntopics < 64 && strchr(optarg, ':')) {
			topics[ntopics++] = optarg;
		} else {
			return usage();
		}
	}
	if (optind < argc)
		return usage();
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "mock_cluster: %s\n", errstr);
		return 1;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (!rk) {
		fprintf(stderr, "mock_cluster: cannot make a librdkafka handle: %s\n", errstr);
		return 1;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
	if (!mc) {
		fprintf(stderr, "mock_cluster: cannot start a mock cluster of %d brokers\n", brokers);
		rd_kafka_destroy(rk);
		return 1;
	}
	int rc = 0;
	for (int i = 0; i < ntopics && !rc; i++) {
		char name[256];
		const char *colon = strrchr(topics[i], ':');
		int parts = atoi(colon + 1);
		snprintf(name, sizeof name, "%.*s", (int)(colon - topics[i]), topics[i]);
		rd_kafka_resp_err_t e = parts > 0 ? rd_kafka_mock_topic_create(mc, name, parts, brokers < 3 ? brokers : 3)
						  : RD_KAFKA_RESP_ERR__INVALID_ARG;
		if (e) {
			fprintf(stderr, "mock_cluster: -t %s: %s\n", topics[i], rd_kafka_err2str(e));
			rc = 2;
		}
	}
	if (!rc) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
		fflush(stdout);
		char buf[256];
		while (!stop) {
			struct pollfd p = {.fd = 0, .events = POLLIN};
			int n = poll(&p, 1, -1);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 || read(0, buf, sizeof buf) <= 0)
				break;
		}
	}
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return rc;
}
