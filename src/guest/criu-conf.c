/* The CRIU configuration file of one dump or restore in the guest.
 *
 * CRIU reads options from a file given with --config, one per line, as
 * "name value" without the dashes. cocoon writes one per run: the
 * --external entries that come from the container's spec (masked paths, see
 * confine.c). Command-line options still win over the file. */
#include "agent.h"
#include "cleanup.h"
#include "confine.h"
#include "criu-conf.h"

#include <string.h>

int criu_conf_write(const char *path, const struct agent_container *c, pid_t pid, bool dump)
{
	_cleanup_fclose_ FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	const Cocoon__ContainerSpec *s = c->spec;
	if (s)
		confine_criu_externals(f, pid, s->masked_paths, s->n_masked_paths, dump);
	if (fflush(f) != 0 || ferror(f))
		return -EIO;
	return 0;
}
