/* host-note.h: this host's notes about its checkpoint directories, and the
 * pod record (pod-record.h) kept in one. A note vouches only for the
 * directory it was written for, and only with what it holds. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sys/stat.h>

#include "config.h"
#include "host-note.h"
#include "paths.h"
#include "pod-record.h"

static char dir[] = "/tmp/cocoon-test-note.XXXXXX";
static char notes[128], ck[128], other[128];
static struct cocoon_config cfg;

static int setup(void **st)
{
	if (!mkdtemp(dir))
		return -1;
	snprintf(notes, sizeof(notes), "%s/host", dir);
	snprintf(ck, sizeof(ck), "%s/ck", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	cfg.host_checkpoint_dir = notes;
	return mkdir(ck, 0700) || mkdir(other, 0700) ? -1 : 0;
}

static int teardown(void **st)
{
	return remove_tree(dir, NULL);
}

/* The note's place: <host_checkpoint_dir>/<kind>/<16 hex digits>.json, one
 * per real path and kind. */
static void test_note_path_is_per_kind_and_directory(void **st)
{
	char *a = host_checkpoint_note_path(&cfg, "pods", "/x/ck");
	char *b = host_checkpoint_note_path(&cfg, "kept", "/x/ck");
	char *c = host_checkpoint_note_path(&cfg, "pods", "/x/ck2");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	char want[160];
	snprintf(want, sizeof(want), "%s/pods/", notes);
	assert_int_equal(strncmp(a, want, strlen(want)), 0);
	assert_int_equal(strlen(a), strlen(want) + 16 + strlen(".json"));
	assert_string_equal(a + strlen(a) - 5, ".json");
	assert_string_not_equal(a, b);
	assert_string_not_equal(a, c);
	assert_string_equal(a + strlen(want), b + strlen(notes) + strlen("/kept/"));
	free(a);
	free(b);
	free(c);
}

static void test_pod_record_is_read_back_for_its_directory_only(void **st)
{
	struct error *err = NULL;
	json_object *bundles = json_object_new_object();
	json_object_object_add(bundles, "sb", json_object_new_string("/bundles/sb"));
	json_object_object_add(bundles, "m1", json_object_new_string("relative/m1"));
	json_object_object_add(bundles, "m2", json_object_new_int(7));
	/* None before it is written. */
	assert_null(pod_record_bundle(&cfg, ck, "sb"));
	assert_int_equal(pod_record_write(&cfg, ck, bundles, &err), 0);
	assert_null(err);
	char *b = pod_record_bundle(&cfg, ck, "sb");
	assert_non_null(b);
	assert_string_equal(b, "/bundles/sb");
	free(b);
	/* Only absolute paths, only strings, only ids it holds. */
	assert_null(pod_record_bundle(&cfg, ck, "m1"));
	assert_null(pod_record_bundle(&cfg, ck, "m2"));
	assert_null(pod_record_bundle(&cfg, ck, "m3"));
	/* Another directory has no record. */
	assert_null(pod_record_bundle(&cfg, other, "sb"));
	/* A note copied to the other directory's place still names ck: not
	 * believed for other. */
	char *from = host_checkpoint_note_path(&cfg, "pods", ck);
	char *to = host_checkpoint_note_path(&cfg, "pods", other);
	assert_int_equal(rename(from, to), 0);
	assert_null(pod_record_bundle(&cfg, other, "sb"));
	assert_null(pod_record_bundle(&cfg, ck, "sb"));
	free(from);
	free(to);
	/* The directory must exist (its real path names the note). */
	char gone[160];
	snprintf(gone, sizeof(gone), "%s/gone", dir);
	assert_int_equal(pod_record_write(&cfg, gone, bundles, &err), -ENOENT);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, gone));
	error_free(&err);
	json_object_put(bundles);
}

/* Written again, a note replaces the earlier one; NULL removes it. */
static void test_note_is_replaced_and_removed(void **st)
{
	struct error *err = NULL;
	json_object *v1 = json_object_new_int(1), *v2 = json_object_new_int(2);
	assert_int_equal(host_checkpoint_note_write(&cfg, "test", ck, "v", v1, &err), 0);
	assert_int_equal(host_checkpoint_note_write(&cfg, "test", ck, "v", v2, &err), 0);
	json_object *got = host_checkpoint_note_read(&cfg, "test", ck, "v", 4096);
	assert_non_null(got);
	assert_int_equal(json_object_get_int(got), 2);
	json_object_put(got);
	assert_null(host_checkpoint_note_read(&cfg, "test", ck, "w", 4096));
	/* Over the reader's bound: none. */
	assert_null(host_checkpoint_note_read(&cfg, "test", ck, "v", 8));
	char *path = host_checkpoint_note_path(&cfg, "test", ck);
	struct stat s;
	assert_int_equal(stat(path, &s), 0);
	assert_int_equal(s.st_mode & 0777, 0600);
	assert_int_equal(host_checkpoint_note_write(&cfg, "test", ck, "v", NULL, &err), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_null(host_checkpoint_note_read(&cfg, "test", ck, "v", 4096));
	/* Removing what is not there is fine. */
	assert_int_equal(host_checkpoint_note_write(&cfg, "test", ck, "v", NULL, &err), 0);
	free(path);
	json_object_put(v1);
	json_object_put(v2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_note_path_is_per_kind_and_directory),
		cmocka_unit_test(test_pod_record_is_read_back_for_its_directory_only),
		cmocka_unit_test(test_note_is_replaced_and_removed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
