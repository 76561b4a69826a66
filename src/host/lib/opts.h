/* The global options of every command (runc's --root, --log, ...), which
 * the host library reads too: where the state lives, the log, the config. */
#pragma once

#include <stdbool.h>

#include "config.h"

struct global_opts {
	const char *root;
	const char *log_path;
	const char *log_format; /* "text" or "json" */
	const char *config_path;
	bool debug;
	bool systemd_cgroup;
	struct cocoon_config cfg;
};
