/* Refuses images whose init would be restored into the guest's own pid or
 * mount namespace (images-ns.h says why). Reads CRIU's images with the
 * protobuf wire format only (pbwire.h): the few fields needed, bounds
 * checked, no CRIU schemas. */
#include "images-ns.h"
#include "cleanup.h"
#include "pbwire.h"
#include "safefs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define IMG_COMMON_MAGIC 0x54564319u
#define IMG_SERVICE_MAGIC 0x55105940u

/* One field of a message: its number, wire type and value (a varint's
 * value, or a length-delimited field's bytes). Returns 1, 0 at the end, -1
 * when malformed. */
struct pb_field {
	uint64_t num, value;
	unsigned type;
	const uint8_t *data;
	size_t len;
};

static int pb_next(const uint8_t **p, const uint8_t *end, struct pb_field *f)
{
	uint64_t key;
	if (*p >= end)
		return 0;
	if (!pbwire_varint(p, end, &key))
		return -1;
	f->num = key >> 3;
	f->type = (unsigned)(key & 7);
	f->data = NULL;
	f->len = 0;
	switch (f->type) {
	case 0:
		return pbwire_varint(p, end, &f->value) ? 1 : -1;
	case 1:
	case 5: {
		size_t n = f->type == 1 ? 8 : 4;
		if ((size_t)(end - *p) < n)
			return -1;
		*p += n;
		return 1;
	}
	case 2:
		if (!pbwire_varint(p, end, &f->value) || f->value > (uint64_t)(end - *p))
			return -1;
		f->data = *p;
		f->len = (size_t)f->value;
		*p += f->len;
		return 1;
	default:
		return -1;
	}
}

int images_ns_ids_parse(const uint8_t *p, size_t len, struct images_ns_ids *ids)
{
	const uint8_t *end = p + len;
	struct pb_field f;
	int r;
	*ids = (struct images_ns_ids){0};
	while ((r = pb_next(&p, end, &f)) > 0) {
		if (f.type == 0 && f.num == 5)
			ids->pid_ns = f.value;
		else if (f.type == 0 && f.num == 9)
			ids->mnt_ns = f.value;
	}
	return r == 0 ? 0 : -EINVAL;
}

/* The first entry of a CRIU image: after its magic (two for most images,
 * one for inventory.img), a little-endian u32 size, then the message. */
static int first_entry(const uint8_t *data, size_t len, const char *name, const uint8_t **msg,
		       size_t *msg_len, struct error **err)
{
	uint32_t magic, n;
	const uint8_t *p = data, *end = p + len;
	if (len < 8)
		return error_setx(err, EINVAL, "%s: truncated", name);
	memcpy(&magic, p, 4);
	p += magic == IMG_COMMON_MAGIC || magic == IMG_SERVICE_MAGIC ? 8 : 4;
	if (end - p < 4)
		return error_setx(err, EINVAL, "%s: truncated", name);
	memcpy(&n, p, 4);
	p += 4;
	if (n > (size_t)(end - p))
		return error_setx(err, EINVAL, "%s: truncated", name);
	*msg = p;
	*msg_len = n;
	return 0;
}

int images_ns_init_pid(const uint8_t *inv, size_t inv_len, const uint8_t *tree, size_t tree_len,
		       uint32_t *pid, struct error **err)
{
	const uint8_t *m, *p, *end;
	size_t len;
	struct pb_field f;
	uint64_t v = 0;
	int r;
	/* inventory_entry.root_ids = 3 must be there (checked again below). */
	if ((r = first_entry(inv, inv_len, "inventory.img", &m, &len, err)) < 0)
		return r;
	for (p = m, end = m + len; (r = pb_next(&p, end, &f)) > 0;)
		;
	if (r < 0)
		return error_setx(err, EINVAL, "inventory.img: malformed");
	/* pstree_entry.pid = 1 of the first task: the container's init. */
	if ((r = first_entry(tree, tree_len, "pstree.img", &m, &len, err)) < 0)
		return r;
	for (p = m, end = m + len; (r = pb_next(&p, end, &f)) > 0;)
		if (f.num == 1 && f.type == 0)
			v = f.value;
	if (r < 0 || v == 0 || v > INT32_MAX)
		return error_setx(err, EINVAL, "pstree.img: malformed (no init pid)");
	*pid = (uint32_t)v;
	return 0;
}

int images_ns_check(const uint8_t *inv, size_t inv_len, uint32_t pid, const uint8_t *ids,
		    size_t ids_len, struct error **err)
{
	const uint8_t *m, *root = NULL, *p, *end;
	size_t len, root_len = 0;
	struct pb_field f;
	char name[32];
	int r;
	snprintf(name, sizeof(name), "ids-%u.img", (unsigned)pid);
	if ((r = first_entry(inv, inv_len, "inventory.img", &m, &len, err)) < 0)
		return r;
	/* inventory_entry.root_ids = 3: what CRIU itself had at the dump. */
	for (p = m, end = m + len; (r = pb_next(&p, end, &f)) > 0;)
		if (f.num == 3 && f.type == 2) {
			root = f.data;
			root_len = f.len;
		}
	if (r < 0)
		return error_setx(err, EINVAL, "inventory.img: malformed");
	if ((r = first_entry(ids, ids_len, name, &m, &len, err)) < 0)
		return r;
	struct images_ns_ids own, init;
	if (!root || images_ns_ids_parse(root, root_len, &own) < 0)
		return error_setx(err, EINVAL, "inventory.img: no root_ids (CRIU's namespaces)");
	if (images_ns_ids_parse(m, len, &init) < 0)
		return error_setx(err, EINVAL, "%s: malformed", name);
	const char *which = init.pid_ns && init.pid_ns == own.pid_ns   ? "pid"
			    : init.mnt_ns && init.mnt_ns == own.mnt_ns ? "mount"
								       : NULL;
	if (which)
		return error_setx(
			err, EPERM,
			"the checkpoint's init (task %u) ran in the guest's own %s namespace, the one CRIU and the agent run in (%s and inventory.img's root_ids name the same one); restoring it would put it back there, beside the agent: refused. cocoon gives every container its own pid and mount namespace, so these images were made elsewhere",
			(unsigned)pid, which, name);
	return 0;
}

int images_check_namespaces(int dirfd, struct error **err)
{
	_cleanup_free_ char *inv = NULL, *tree = NULL, *idsf = NULL;
	size_t inv_len, tree_len, ids_len;
	uint32_t pid;
	char name[32];
	int r;

	if ((r = safefs_read(dirfd, "inventory.img", IMAGES_NS_MAX_FILE, &inv, &inv_len, err)) <
		    0 ||
	    (r = safefs_read(dirfd, "pstree.img", IMAGES_NS_MAX_FILE, &tree, &tree_len, err)) < 0)
		return r;
	if ((r = images_ns_init_pid((const uint8_t *)inv, inv_len, (const uint8_t *)tree, tree_len,
				    &pid, err)) < 0)
		return r;
	snprintf(name, sizeof(name), "ids-%u.img", (unsigned)pid);
	if ((r = safefs_read(dirfd, name, IMAGES_NS_MAX_FILE, &idsf, &ids_len, err)) < 0)
		return r == -ENOENT
			       ? error_setx(err, EINVAL,
					    "%s (the namespaces of the init, task %u) is missing",
					    name, (unsigned)pid)
			       : r;
	return images_ns_check((const uint8_t *)inv, inv_len, pid, (const uint8_t *)idsf, ids_len,
			       err);
}
