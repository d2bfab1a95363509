/*
 * cli_done.h -- the end of option parsing that every program built on
 * lib/cli.h shares: lib/ never prints, so the help text, the version and
 * usage errors are printed here, the same way everywhere.
 */
#ifndef MQ_CMD_CLI_DONE_H
#define MQ_CMD_CLI_DONE_H

#include <stdio.h>

#include "cli.h"
#include "util.h"

/* rc from mq_cli_parse: returns 0 to go on, 1 to exit 0 (help or
 * version printed), 2 to exit 2 (usage error printed). */
static inline int mq_cli_done(int rc, const char *prog, void (*usage)(FILE *), const mq_err_t *err)
{
	if (rc == MQ_CLI_HELP)
		usage(stdout);
	else if (rc == MQ_CLI_VERSION)
		printf("%s %s\n", prog, MQ_VERSION);
	else if (rc < 0)
		fprintf(stderr, "%s: %s (try '%s --help')\n", prog, err->msg, prog);
	return rc < 0 ? 2 : rc > 0;
}

#endif
