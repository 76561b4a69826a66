/* The guest image, built by mkimage.sh (guest-image.h). */
#include "guest-image.h"
#include "cleanup.h"
#include "paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

char *guest_image_default_dir(void)
{
	char *dir = NULL;
	return asprintf(&dir, "%s/image", cache_dir()) < 0 ? NULL : dir;
}

int guest_image_build(const char *out, bool force, struct error **err)
{
	_cleanup_free_ char *script = NULL, *agent = NULL, *fragment = NULL,
			    *dflt = out ? NULL : guest_image_default_dir();
	int r;

	if (!out && !dflt)
		return error_setx(err, ENOMEM, "out of memory");
	if ((r = find_helper("mkimage.sh", &script, err)) < 0 ||
	    (r = find_helper("cocoon-agent", &agent, err)) < 0 ||
	    (r = find_helper("checkpoint.conf", &fragment, err)) < 0)
		return r;
	char *args[] = {(char *)"/bin/sh",
			script,
			(char *)"--agent",
			agent,
			(char *)"--output",
			out ? (char *)out : dflt,
			(char *)"--config-fragment",
			fragment,
			force ? (char *)"--force" : NULL,
			NULL};
	pid_t pid = fork();
	if (pid == 0) {
		execv(args[0], args);
		_exit(127);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return error_setx(err, EIO, "%s", "image build failed (see the messages above)");
	return 0;
}
