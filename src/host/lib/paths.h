/* Files, directories and names on the host side. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "contract.h"
#include "error.h"
#include "fdio.h"

#define COCOON_DEFAULT_ROOT "/run/cocoon"
#define COCOON_DEFAULT_CACHE "/var/cache/cocoon"
#define COCOON_CACHE_ENV "COCOON_CACHE_DIR"

/* Reads at most max bytes of a file, NUL-terminated. */
int read_file_bounded(const char *path, size_t max, char **out, size_t *len, struct error **err);
int write_file_atomic(const char *path, const char *data, size_t len, int mode, struct error **err);

/* Copies a file of at most max bytes to a new file (atomically); a missing
 * source is not an error. For logs. */
void copy_file_bounded(const char *from, const char *to, size_t max);

/* Removes a tree without following symlinks. Missing is not an error. */
int remove_tree(const char *path, struct error **err);

/* Container and checkpoint IDs become path components, so they are
 * validated first, by the one rule of contract.h (cocoon_id_check()); the
 * message names the kind ("container", "checkpoint") and the cause. */
int validate_id(const char *kind, const char *id, struct error **err);

/* Whether S is an XXH3-64 as the manifests and vm.json write it: 16
 * lowercase hex digits, nothing else (S untrusted, not NULL). */
bool xxh3_text_valid(const char *s);

/* The cache directory: $COCOON_CACHE_DIR or /var/cache/cocoon. */
const char *cache_dir(void);

/* Finds a helper file shipped with cocoon: next to the running binary (build
 * tree), in the source tree it was built from, or under the install prefix. */
int find_helper(const char *name, char **out, struct error **err);

/* NAME in the directory of PATH ("." when PATH has no slash), allocated;
 * NULL when out of memory. */
char *path_beside(const char *path, const char *name);
