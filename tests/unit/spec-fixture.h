/* The fixture test-spec.c and test-spec-resources.c share
 * (spec-fixture.c). */
#pragma once

#include <stdbool.h>

#include "spec.h"

#define PROCESS                                                                                    \
	"\"process\": {\"args\": [\"sh\", \"-c\", \"true\"], \"cwd\": \"/\", \"env\": "            \
	"[\"PATH=/bin\"]}"
#define ROOT "\"root\": {\"path\": \"rootfs\"}"
/* A VM cannot share the host's network: every spec names a network namespace. */
#define LINUX "\"linux\": {\"namespaces\": [{\"type\": \"network\"}]}"

/* The bundle directory setup() made for each test. */
extern char bundle[64];

int setup(void **st);
int teardown(void **st);

/* Writes text as the bundle's config.json. */
void write_spec(const char *text);

/* spec_load() of text fails with an error containing needle. */
void expect_error(const char *text, const char *needle);

/* Whether one of b's warnings contains needle. */
bool warned(const struct oci_bundle *b, const char *needle);
