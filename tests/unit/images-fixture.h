/* The fixture test-images.c and test-images-verify.c share
 * (images-fixture.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "images.h"

#define CKID "ck-test"

extern char root[64];
extern char state[128], ckdir[192], ckpt[256], canary_dir[128], canary[192], dest[128];
extern const char canary_text[];
extern const struct images_limits default_limits;

void put(const char *path, const void *data, size_t len);
void putf(const char *dir, const char *name, const void *data, size_t len);
size_t pagemap(uint8_t *out, uint64_t n);
void make_dump(void);
int setup(void **st);
int teardown(void **st);
void assert_canary_intact(void);
int publish(bool fallback, struct error **err);
void expect_refused(bool fallback, const char *needle);
