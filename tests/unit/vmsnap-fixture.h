/* The fixture test-vmsnap-state.c and test-vmsnap-zstd.c share
 * (vmsnap-fixture.c): files in a temporary directory, a sparse VM state,
 * its zstd, a key. */
#pragma once

#include <stdint.h>

/* The temporary directory: the group fixture below makes it (mkdtemp)
 * before the first test and removes it with all in it after the last:
 * cmocka_run_group_tests(tests, fixture_dir_make, fixture_dir_remove). */
extern char dir[];
int fixture_dir_make(void **state);
int fixture_dir_remove(void **state);

/* name in dir, created anew, read-write. */
int make_file(const char *name);
/* fd's allocated bytes. */
uint64_t allocated(int fd);
/* A mapped-ram-like state: mostly holes, data here and there, an odd end;
 * SPARSE_SIZE bytes, in dir/state. */
#define SPARSE_SIZE ((64 << 20) + 123)
int sparse_state(void);
/* from compressed into dir/name at level 3 (rewound); *raw: from's size. */
int pack(int from, const char *name, uint64_t *raw);
/* A key as vmsnap_key writes it, for a VM of mib MiB (static storage). */
char *key_of(int mib);
