/* The fixture of the image tests (images-fixture.h): a state directory
 * with a dump in its shared directory, a canary outside it. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "images.h"
#include "paths.h"
#include "safefs.h"

#include "images-fixture.h"
#include "../helpers/fake-dump.h"

char root[64];
char state[128], ckdir[192], ckpt[256], canary_dir[128], canary[192], dest[128];
const char canary_text[] = "the host's secret";

void put(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

void putf(const char *dir, const char *name, const void *data, size_t len)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	put(p, data, len);
}

/* A pagemap with one entry of n present pages, stored in pages-1.img. */
size_t pagemap(uint8_t *out, uint64_t n)
{
	uint8_t head[] = {0x08, 0x01};
	uint8_t entry[16] = {0x10};
	size_t k = 1;
	do {
		entry[k++] = (uint8_t)((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
		n >>= 7;
	} while (n);
	entry[k++] = 0x20;
	entry[k++] = 0x04;
	uint32_t hl = sizeof(head), el = (uint32_t)k;
	memset(out, 0x55, 8);
	memcpy(out + 8, &hl, 4);
	memcpy(out + 12, head, sizeof(head));
	memcpy(out + 14, &el, 4);
	memcpy(out + 18, entry, k);
	return 18 + k;
}

void make_dump(void)
{
	uint8_t pm[64], pages[8192];
	mkdir(ckpt, 0755);
	fake_dump_ns_images(ckpt, putf);
	memset(pages, 0xab, sizeof(pages));
	putf(ckpt, "pages-1.img", pages, sizeof(pages));
	putf(ckpt, "pagemap-1.img", pm, pagemap(pm, 2));
}

int setup(void **st)
{
	snprintf(root, sizeof(root), "/tmp/cocoon-test-images.XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(state, sizeof(state), "%s/state", root);
	snprintf(ckdir, sizeof(ckdir), "%s/shared/" COCOON_CHECKPOINTS_DIR, state);
	snprintf(ckpt, sizeof(ckpt), "%s/" CKID, ckdir);
	snprintf(canary_dir, sizeof(canary_dir), "%s/canary", root);
	snprintf(canary, sizeof(canary), "%s/secret", canary_dir);
	snprintf(dest, sizeof(dest), "%s/out", root);
	assert_int_equal(mkdir_p(ckdir, 0700, NULL), 0);
	mkdir(canary_dir, 0755);
	put(canary, canary_text, strlen(canary_text));
	chmod(canary, 0644);
	make_dump();
	safefs_force_fallback = false;
	return 0;
}

int teardown(void **st)
{
	char shared[160];
	snprintf(shared, sizeof(shared), "%s/shared", state);
	umount2(shared, MNT_DETACH); /* the staging test's tmpfs, if any */
	remove_tree(root, NULL);
	return 0;
}

void assert_canary_intact(void)
{
	struct stat sb;
	char buf[64] = "";
	assert_int_equal(stat(canary, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0644);
	int fd = open(canary, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
	close(fd);
	assert_string_equal(buf, canary_text);
}

const struct images_limits default_limits = {
	.max_bytes = 1ULL << 30, .max_files = 100, .verify_ms = 10000};

/* Every route copies now (images.h); the second way through takes the
 * O_NOFOLLOW-per-step resolver. */
int publish(bool fallback, struct error **err)
{
	struct images_info info = {.container_id = "c1", .checkpoint_id = CKID};
	safefs_force_fallback = fallback;
	int r = images_publish(state, CKID, dest, &info, &default_limits, err);
	safefs_force_fallback = false;
	return r;
}

/* Publishing must fail, name why, leave nothing at dest or in the shared
 * directory, and leave the canary alone. */
void expect_refused(bool fallback, const char *needle)
{
	struct error *err = NULL;
	long long t0 = now_ms();
	int r = publish(fallback, &err);
	if (r == 0 || !err || !strstr(err->msg, needle))
		fail_msg("expected a refusal naming '%s', got: %s", needle,
			 err ? err->msg : "success");
	assert_true(now_ms() - t0 < 5000);
	error_free(&err);
	assert_int_equal(access(dest, F_OK), -1);
	assert_canary_intact();
}
