/* Verifying checkpoint images before a restore reads them (images.c):
 * manifests of the wrong types, files that are not what the manifest says,
 * page maps that overflow. */
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

static void published(void)
{
	struct error *err = NULL;
	assert_int_equal(publish(false, &err), 0);
}

static void expect_verify_error(const char *needle)
{
	struct images_chain chain = {0};
	struct error *err = NULL;
	long long t0 = now_ms();
	int r = images_verify(dest, &default_limits, &chain, &err);
	images_chain_free(&chain);
	if (r == 0 || !err || !strstr(err->msg, needle))
		fail_msg("expected an error naming '%s', got: %s", needle,
			 err ? err->msg : "success");
	assert_true(now_ms() - t0 < 5000);
	error_free(&err);
}

static void set_meta(const char *text)
{
	char p[300];
	snprintf(p, sizeof(p), "%s/" IMAGES_META, dest);
	unlink(p);
	put(p, text, strlen(text));
}

static void test_verify_wrong_types(void **st)
{
	published();
	static const struct {
		const char *json, *needle;
	} cases[] = {
		{"{\"format\": 1, \"version\": null, \"files\": {}}", "made by cocoon ?"},
		{"{\"format\": \"1\", \"version\": \"" COCOON_VERSION "\", \"files\": {}}",
		 "image format -1"},
		{"{\"format\": 1, \"version\": 7, \"files\": {}}", "made by cocoon ?"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION "\", \"files\": []}",
		 "lists no files"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION "\"}", "lists no files"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION
		 "\", \"files\": {\"a.img\": null}}",
		 "bad entry"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION
		 "\", \"files\": {\"a.img\": {\"size\": \"3\", \"xxh3\": \"0000000000000000\"}}}",
		 "bad entry"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION
		 "\", \"files\": {\"a.img\": {\"size\": 3, \"xxh3\": 12}}}",
		 "bad entry"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION
		 "\", \"files\": {\"a.img\": {\"size\": -1, \"xxh3\": \"0000000000000000\"}}}",
		 "bad entry"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION
		 "\", \"files\": {\"../x\": {\"size\": 1, \"xxh3\": \"0000000000000000\"}}}",
		 "bad entry"},
		{"{\"format\": 1, \"version\": \"" COCOON_VERSION
		 "\", \"files\": {\"a.img\": {\"size\": 1152921504606846976, \"xxh3\": \"0000000000000000\"}}}",
		 "limits.checkpoint_max_bytes"},
		{"[1, 2]", "not a JSON object"},
		{"{\"format\": 1, ", "not valid JSON"},
		{"", "not valid JSON"},
		{"null", "not a JSON object"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		set_meta(cases[i].json);
		expect_verify_error(cases[i].needle);
	}
}

static void test_verify_fifo_and_symlink(void **st)
{
	char p[300];
	published();
	snprintf(p, sizeof(p), "%s/pstree.img", dest);
	unlink(p);
	assert_int_equal(mkfifo(p, 0644), 0);
	expect_verify_error("not a regular file");
	unlink(p);
	assert_int_equal(symlink("/dev/zero", p), 0);
	expect_verify_error("not a regular file");
	unlink(p);
	assert_int_equal(symlink(canary, p), 0);
	expect_verify_error("not a regular file");
	snprintf(p, sizeof(p), "%s/" IMAGES_META, dest);
	unlink(p);
	assert_int_equal(mkfifo(p, 0644), 0);
	expect_verify_error("a FIFO");
}

/* A restore directory holds what cocoon.json lists, and nothing else: an
 * extra file of any kind, or a second link to a listed one, is refused by
 * name before any VM starts. */
static void test_verify_unlisted_entries(void **st)
{
	char p[300], q[300];
	published();
	putf(dest, "pages-9.img", "x", 1);
	expect_verify_error("pages-9.img is not listed in cocoon.json");
	snprintf(p, sizeof(p), "%s/pages-9.img", dest);
	unlink(p);
	snprintf(p, sizeof(p), "%s/core-99.img", dest);
	assert_int_equal(mkfifo(p, 0644), 0);
	expect_verify_error("core-99.img is not a regular file");
	unlink(p);
	assert_int_equal(symlink("pstree.img", p), 0);
	expect_verify_error("core-99.img is not a regular file");
	unlink(p);
	if (mknod(p, S_IFCHR | 0666, makedev(1, 5)) == 0) {
		expect_verify_error("core-99.img is not a regular file");
		unlink(p);
	}
	assert_int_equal(mkdir(p, 0700), 0);
	expect_verify_error("core-99.img is not a regular file");
	rmdir(p);
	snprintf(p, sizeof(p), "%s/pstree.img", dest);
	snprintf(q, sizeof(q), "%s/elsewhere.img", root);
	assert_int_equal(link(p, q), 0);
	expect_verify_error("pstree.img has 2 links");
	unlink(q);
	struct images_chain chain = {0};
	struct error *err = NULL;
	if (images_verify(dest, &default_limits, &chain, &err) < 0)
		fail_msg("%s", err->msg);
	images_chain_free(&chain);
}

static void test_verify_sparse_giant(void **st)
{
	char p[300];
	published();
	snprintf(p, sizeof(p), "%s/pstree.img", dest);
	int fd = open(p, O_WRONLY);
	off_t size = 1LL << 60;
	while (ftruncate(fd, size) < 0 && size > (1LL << 30))
		size >>= 1;
	close(fd);
	expect_verify_error("expected 16 (truncated?)");
}

static void test_verify_pagemap_overflow(void **st)
{
	uint8_t pm[64];
	/* 2^52 pages, twice: 2^65 bytes, which must not wrap to a small
	 * number. Published as the guest made it: a restore checks it. */
	size_t n = pagemap(pm, 1ULL << 52);
	memcpy(pm + n, pm + 14, n - 14);
	putf(ckpt, "pagemap-1.img", pm, n + n - 14);
	published();
	expect_verify_error("overflows");
}

/* The pagemaps are read and counted within limits.verify_timeout_ms, as
 * the hashes are: a hostile directory of many 64 MiB pagemaps stalled the
 * restore before the deadline was ever looked at. With no time at all the
 * pagemap check stops at the deadline, naming the file and the limit, not
 * at what the pagemap says (5 pages with no pages file). */
static void test_verify_pagemaps_within_the_deadline(void **st)
{
	uint8_t pm[64];
	struct images_chain chain = {0};
	struct error *err = NULL;
	size_t n = pagemap(pm, 5);
	putf(ckpt, "pagemap-1.img", pm, n);
	published();
	expect_verify_error("accounts for 5 pages");
	struct images_limits none = default_limits;
	none.verify_ms = 0;
	assert_int_not_equal(images_verify(dest, &none, &chain, &err), 0);
	images_chain_free(&chain);
	assert_non_null(err);
	if (!strstr(err->msg, "pagemap-1.img") || !strstr(err->msg, "limits.verify_timeout_ms"))
		fail_msg("expected the deadline, naming pagemap-1.img: %s", err->msg);
	error_free(&err);
}

/* A restore directory from another host names its pre-dump by CRIU's
 * "parent" link, ../NAME: NAME beside it must be a directory of the
 * restore's own, not a symlink to a checkpoint elsewhere on this host. The
 * chain's directories are shared into the restored VM, so a symlink made
 * the host hand another container's checkpoint (its memory pages) to the
 * guest: verified, since it is a real checkpoint. */
static void test_verify_parent_symlink_out(void **st)
{
	char saved[sizeof(dest)], victim[sizeof(dest)], link[300];
	struct images_chain chain = {0};
	struct error *err = NULL;
	/* Another container's checkpoint, outside the restore directory. */
	snprintf(saved, sizeof(saved), "%s", dest);
	assert_true(strlen(canary_dir) + sizeof("/victim-ck") <= sizeof(victim));
	strcat(strcpy(victim, canary_dir), "/victim-ck");
	snprintf(dest, sizeof(dest), "%s", victim);
	published();
	snprintf(dest, sizeof(dest), "%s", saved);
	make_dump();
	published();
	snprintf(link, sizeof(link), "%s/parent", dest);
	assert_int_equal(symlink("../pre", link), 0);
	snprintf(link, sizeof(link), "%s/pre", root);
	assert_int_equal(symlink(victim, link), 0);
	expect_verify_error("pre is a symlink");
	/* The same with a real directory there: the chain is followed. */
	unlink(link);
	assert_int_equal(rename(victim, link), 0);
	assert_int_equal(images_verify(dest, &default_limits, &chain, &err), 0);
	assert_int_equal(chain.n, 2);
	images_chain_free(&chain);
}

/* restore --pod gives the whole pod one verify_timeout_ms (rev hostile5
 * G1): images_verify_at() keeps the caller's deadline, so a directory
 * checked after the others had spent it is refused at once, naming the
 * limit, and the chain holds the descriptor it was checked through, and a
 * share path that reaches that very directory. */
static void test_verify_at_keeps_the_callers_deadline(void **st)
{
	struct images_chain chain = {0};
	struct error *err = NULL;
	published();
	int fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_not_equal(
		images_verify_at(fd, dest, &default_limits, now_ms() - 1, &chain, &err), 0);
	images_chain_free(&chain);
	assert_non_null(err);
	if (!strstr(err->msg, "limits.verify_timeout_ms"))
		fail_msg("expected the deadline: %s", err->msg);
	error_free(&err);
	assert_int_equal(
		images_verify_at(fd, dest, &default_limits, now_ms() + 60000, &chain, &err), 0);
	assert_int_equal(images_chain_share_fds(&chain, &err), 0);
	struct stat a, b;
	assert_int_equal(stat(images_chain_paths(&chain)[0], &a), 0);
	assert_int_equal(fstat(fd, &b), 0);
	assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
	images_chain_free(&chain);
	close(fd);
}

static void test_pagemap_reader(void **st)
{
	uint8_t pm[64];
	uint64_t id, pages;
	struct error *err = NULL;
	size_t n = pagemap(pm, 300);
	assert_int_equal(images_pagemap_pages(pm, n, &id, &pages, NULL), 0);
	assert_int_equal(id, 1);
	assert_int_equal(pages, 300);
	/* Cut anywhere but between entries: refused. */
	for (size_t cut = 0; cut < n; cut++)
		if (cut != 8 && cut != 14)
			assert_int_not_equal(images_pagemap_pages(pm, cut, &id, &pages, NULL), 0);
	uint8_t two[128];
	n = pagemap(two, UINT64_MAX / 4096);
	memcpy(two + n, two + 14, n - 14);
	assert_int_equal(images_pagemap_pages(two, n + n - 14, &id, &pages, &err), -EOVERFLOW);
	error_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_verify_wrong_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_fifo_and_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_unlisted_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_sparse_giant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_pagemap_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_parent_symlink_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_pagemaps_within_the_deadline, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_verify_at_keeps_the_callers_deadline, setup,
						teardown),
		cmocka_unit_test(test_pagemap_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
