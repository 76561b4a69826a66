/* Checkpoint image directories on the host. Images come from the guest, so
 * they are data to check, never to trust: structure before publishing, and
 * sizes, checksums and CRIU's own pagemap accounting before a restore. */
#pragma once

#include <stdint.h>

#include "error.h"

#define IMAGES_META "cocoon.json"
#define IMAGES_FORMAT 1
#define IMAGES_MAX_FILES 20000

struct images_info {
	const char *container_id;
	const char *checkpoint_id;
	const char *guest_kernel;
	const char *criu_version;
	uint64_t bytes;
	uint32_t files;
	const char *parent_path; /* the pre-dump this one is incremental to */
};

#define IMAGES_MAX_CHAIN 4

/* A checkpoint and the pre-dumps it depends on, newest first. */
struct images_chain {
	char *dirs[IMAGES_MAX_CHAIN];
	char *names[IMAGES_MAX_CHAIN];
	int n;
};
void images_chain_free(struct images_chain *c);

/* Checks a directory of images from the guest (regular files with plain
 * names only), writes cocoon.json with sizes and checksums, and moves it to
 * dest atomically: dest appears complete or not at all. dest may exist as an
 * empty directory. */
int images_publish(const char *src, const char *dest, const struct images_info *info,
		   struct error **err);

/* Everything a restore needs to trust: our metadata and its format, every
 * file's size and checksum, the files CRIU needs, and each pagemap's page
 * count against the size of its pages file. */
int images_verify(const char *dir, struct images_chain *chain, struct error **err);

/* Copies CRIU's logs and stats from src to the work path (created 0700). */
void images_copy_logs(const char *src, const char *work_path);
