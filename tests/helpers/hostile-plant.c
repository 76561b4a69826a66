/* The hostile guest's dumps (hostile.h): what it leaves in the shared
 * directory for a checkpoint, a good one or an attack. Test-only; never in
 * the image. */
#include "cleanup.h"
#include "fake-dump.h"
#include "hostile.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

static void put(const char *dir, const char *name, const void *data, size_t len)
{
	char p[4200];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		exit(1);
	close(fd);
}

/* A dump the host accepts: what CRIU leaves, in miniature. */
static void good_dump(const char *dir)
{
	static const uint8_t pagemap[] = {0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
					  2,	0,    0,    0,	  0x08, 0x01, 4,    0,
					  0,	0,    0x10, 0x02, 0x20, 0x04, 0x00};
	static uint8_t pages[8192];
	mkdir(dir, 0755);
	fake_dump_ns_images(dir, put);
	put(dir, "pagemap-1.img", pagemap, sizeof(pagemap) - 1);
	put(dir, "pages-1.img", pages, sizeof(pages));
}

/* Plants the attack for a checkpoint; returns the path to name in the
 * reply, or NULL to fail the dump with an error. */
const char *plant(const char *ckid, char *named, size_t size)
{
	char dir[4200], p[4300];
	snprintf(dir, sizeof(dir), "%s/checkpoints", shared);
	mkdir(dir, 0755);
	snprintf(named, size, "checkpoints/%s", ckid);
	snprintf(p, sizeof(p), "%s/%s", dir, ckid);
	if (is("reply-symlink")) {
		/* shared/x -> the canary's parent; the reply names x/canary. */
		snprintf(p, sizeof(p), "%s/x", shared);
		_cleanup_free_ char *up = strdup(canary);
		*strrchr(up, '/') = 0;
		symlink(up, p);
		snprintf(named, size, "x/%s", strrchr(canary, '/') + 1);
		return named;
	}
	if (is("checkpoints-symlink")) {
		/* checkpoints -> a directory whose CKID is the canary. */
		char elsewhere[4200];
		snprintf(elsewhere, sizeof(elsewhere), "%s/.elsewhere", shared);
		mkdir(elsewhere, 0755);
		snprintf(p, sizeof(p), "%s/%s", elsewhere, ckid);
		symlink(canary, p);
		rmdir(dir);
		symlink(elsewhere, dir);
		return named;
	}
	good_dump(p);
	if (is("swap-race")) {
		/* For two seconds, as fast as it can: the dump, then a symlink
		 * to the canary, then the dump again, under the name the host
		 * is about to publish. */
		if (fork() == 0) {
			char real[4400], lnk[4400];
			snprintf(real, sizeof(real), "%s.real", p);
			snprintf(lnk, sizeof(lnk), "%s.lnk", p);
			for (long long end = time(NULL) + 2; time(NULL) < end;) {
				rename(p, real);
				unlink(lnk);
				symlink(canary, lnk);
				rename(lnk, p);
				rename(p, lnk);
				rename(real, p);
			}
			_exit(0);
		}
	} else if (is("reply-empty")) {
		snprintf(named, size, "%s", "");
	} else if (is("setuid")) {
		snprintf(p, sizeof(p), "%s/%s/pstree.img", dir, ckid);
		chmod(p, 04755);
		if (geteuid() == 0 && chown(p, 1234, 1234) < 0)
			exit(1);
	} else if (is("hardlink")) {
		char secret[4200];
		snprintf(secret, sizeof(secret), "%s/secret", canary);
		snprintf(p, sizeof(p), "%s/%s/pages-2.img", dir, ckid);
		if (link(secret, p) < 0)
			exit(1);
	} else if (is("sparse")) {
		snprintf(p, sizeof(p), "%s/%s/pages-1.img", dir, ckid);
		int fd = open(p, O_WRONLY);
		off_t big = 1LL << 60;
		while (ftruncate(fd, big) < 0 && big > (1LL << 30))
			big >>= 1;
		close(fd);
	} else if (is("device")) {
		snprintf(p, sizeof(p), "%s/%s/core-1.img", dir, ckid);
		mknod(p, S_IFCHR | 0666, makedev(1, 5));
	} else if (is("dump-log-symlink") || is("dump-log-fifo")) {
		char secret[4200];
		snprintf(secret, sizeof(secret), "%s/secret", canary);
		snprintf(p, sizeof(p), "%s/%s.dump.log", dir, ckid);
		if (is("dump-log-fifo"))
			mkfifo(p, 0644);
		else
			symlink(secret, p);
		return NULL;
	} else if (is("dump-log-fails")) {
		/* Every dump fails, with a CRIU log of 1 MiB naming its
		 * attempt: the host keeps the newest only. */
		static int attempt;
		static char text[1 << 20];
		int n = snprintf(text, sizeof(text), "attempt %d\n", ++attempt);
		memset(text + n, 'L', sizeof(text) - (size_t)n);
		snprintf(p, sizeof(p), "%s.dump.log", ckid);
		put(dir, p, text, sizeof(text));
		return NULL;
	} else if (is("name-manifest")) {
		/* A file under the name of the host's own manifest, which
		 * the host writes into the published directory after the
		 * guest's files. */
		static const char fake[] = "{\"format\": 1}\n";
		char sub[4300];
		snprintf(sub, sizeof(sub), "%s/%s", dir, ckid);
		put(sub, "cocoon.json", fake, sizeof(fake) - 1);
	} else if (is("bad-text")) {
		return NULL;
	} else if (is("name-controls")) {
		/* A file whose name is terminal controls: the host refuses it
		 * by its name, and names it. */
		snprintf(p, sizeof(p),
			 "%s/%s/\x1b]0;pwned\x07\x1b[2J\xc2\x9b"
			 "31m\x7f",
			 dir, ckid);
		put(dir, p + strlen(dir) + 1, "x", 1);
	} else if (is("staged-setuid")) {
		/* checkpoints/CKID is, on a host whose state root and image
		 * path are on two filesystems, a bind mount of a directory the
		 * host made beside --image-path: opened to everyone, with a
		 * setuid-root file and a device node in it, for as long as the
		 * dump takes. */
		char q[4400];
		chmod(p, 0755);
		snprintf(q, sizeof(q), "%s/sh", p);
		int fd = open(q, O_WRONLY | O_CREAT | O_TRUNC, 0755);
		if (fd < 0 || fchmod(fd, 04755) < 0)
			exit(1);
		close(fd);
		snprintf(q, sizeof(q), "%s/disk", p);
		if (geteuid() == 0)
			mknod(q, S_IFBLK | 0666, makedev(7, 0));
		note("staged planted ", p);
		sleep(3);
		unlink(q);
		snprintf(q, sizeof(q), "%s/sh", p);
		unlink(q);
	}
	return named;
}
