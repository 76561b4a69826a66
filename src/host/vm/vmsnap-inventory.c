/* CRIU's inventory.img in a whole-VM checkpoint (vmsnap.h): only so that
 * engines that look for one before a restore (podman 4.3) let the restore
 * reach cocoon. proto/criu-inventory.proto says what it holds and why.
 *
 * The message is protobuf-c's (the generated criu-inventory.pb-c.c); the
 * framing around it is written here by hand, after CRIU's criu/image.c and
 * criu/protobuf.c (read, not copied): inventory.img is the one image
 * without CRIU's common magic in front, so the file is the inventory magic
 * (CRIU's criu/include/magic.h: INVENTORY_MAGIC), then one entry as CRIU's
 * pb_write_one() frames it: its packed size (u32) and the packed message.
 * CRIU writes both u32 in the host's byte order; cocoon's hosts and guests
 * are x86-64, so they are little-endian here, explicitly. */
#include "vmsnap.h"
#include "cleanup.h"
#include "criu-inventory.pb-c.h"
#include "fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* CRIU's INVENTORY_MAGIC ("Veliky Novgorod") and CRTOOLS_IMAGES_V1_1. */
#define CRIU_INVENTORY_MAGIC 0x58313116u
#define CRIU_IMAGES_V1_1 2

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int vmsnap_inventory_encode(uint8_t **out, size_t *len)
{
	CocoonCriu__InventoryEntry e = COCOON_CRIU__INVENTORY_ENTRY__INIT;
	e.img_version = CRIU_IMAGES_V1_1;
	e.has_fdinfo_per_id = e.fdinfo_per_id = true;
	e.has_ns_per_id = e.ns_per_id = true;
	/* No LSM: the checkpoint holds no task whose label a CRIU would set. */
	e.has_lsmtype = true;
	e.lsmtype = COCOON_CRIU__LSM__NO_LSM;
	size_t n = cocoon_criu__inventory_entry__get_packed_size(&e);
	uint8_t *buf = malloc(8 + n);
	if (!buf)
		return -ENOMEM;
	put_le32(buf, CRIU_INVENTORY_MAGIC);
	put_le32(buf + 4, (uint32_t)n);
	if (cocoon_criu__inventory_entry__pack(&e, buf + 8) != n) {
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	*len = 8 + n;
	return 0;
}

int vmsnap_inventory_write(int dirfd, struct error **err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len = 0;
	int r = vmsnap_inventory_encode(&buf, &len);
	if (r < 0)
		return error_set(err, -r, "encode " VMSNAP_INVENTORY);
	_cleanup_close_ int fd = openat(dirfd, VMSNAP_INVENTORY,
					O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return error_set(err, errno, "create " VMSNAP_INVENTORY);
	r = fd_write_all(fd, buf, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	return r < 0 ? error_set(err, -r, "write " VMSNAP_INVENTORY) : 0;
}
