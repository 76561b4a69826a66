/* The fixture test-spec.c and test-spec-resources.c share
 * (spec-fixture.h): a bundle directory with a rootfs, a config.json writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "paths.h"
#include "spec-fixture.h"

char bundle[64];

int setup(void **st)
{
	char p[128];
	snprintf(bundle, sizeof(bundle), "/tmp/cocoon-test-spec.XXXXXX");
	assert_non_null(mkdtemp(bundle));
	snprintf(p, sizeof(p), "%s/rootfs", bundle);
	mkdir(p, 0755);
	return 0;
}

int teardown(void **st)
{
	remove_tree(bundle, NULL);
	return 0;
}

void write_spec(const char *text)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/config.json", bundle);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

void expect_error(const char *text, const char *needle)
{
	struct oci_bundle b;
	struct error *err = NULL;
	write_spec(text);
	int r = spec_load(bundle, "c1", &b, &err);
	if (r == 0 || !err || !strstr(err->msg, needle))
		fail_msg("for <<%s>> expected an error naming '%s', got: %s", text, needle,
			 err ? err->msg : "success");
	error_free(&err);
	spec_free(&b);
}

bool warned(const struct oci_bundle *b, const char *needle)
{
	for (size_t i = 0; i < b->n_warnings; i++)
		if (strstr(b->warnings[i], needle))
			return true;
	return false;
}
