/* Where a restore's CRIU reads the images (restore-images.h). */
#include "restore-images.h"
#include "channel.h"
#include "container.h"
#include "copy-tree.h"
#include "error.h"
#include "fdio.h"
#include "init.h"
#include "userns.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

/* A name of a share or of an image directory from the host: one path
 * component, not hidden, at most COCOON_ID_MAX bytes. */
static bool valid_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > COCOON_ID_MAX || s[0] == '.' || strstr(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/')
			return false;
	return true;
}

/* A directory of a share (the pod share), bound read-only on DIR. */
static int share_subdir_bind(const char *tag, const char *path, const char *dir)
{
	char from[400];
	int r = container_share_dir(tag, path, from, sizeof(from));
	if (r < 0) {
		errno = -r;
		return -1;
	}
	if (mount(from, dir, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, dir, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) <
		    0)
		return -1;
	return 0;
}

/* Image share i of req (is) mounted read-only on shares/NAME and staged
 * into base/NAME (copy_tree_stage); the first one's are x->share0 and
 * x->images. Returns 0, or a negative errno with *ERR saying why.
 * The paths fit: BASE and SHARES are x->staged and x->shares (at most 199
 * bytes, the asserts below), a name at most COCOON_ID_MAX. */
_Static_assert(sizeof(((struct restore_ctx *)0)->share0) >=
		       sizeof(((struct restore_ctx *)0)->shares) + 1 + COCOON_ID_MAX,
	       "struct restore_ctx: share0 too short for a share's mount point");
_Static_assert(sizeof(((struct restore_ctx *)0)->images) >=
		       sizeof(((struct restore_ctx *)0)->staged) + 1 + COCOON_ID_MAX,
	       "struct restore_ctx: images too short for a staged share");
_Static_assert(sizeof(((struct restore_ctx *)0)->staged) >=
		       COCOON_GUEST_CKPT_DIR_MAX + sizeof("/images-") + COCOON_ID_MAX,
	       "struct restore_ctx: staged too short");
_Static_assert(sizeof(((struct restore_ctx *)0)->shares) >=
		       COCOON_GUEST_CKPT_DIR_MAX + sizeof("/shares-") + COCOON_ID_MAX,
	       "struct restore_ctx: shares too short");
static int restore_stage_share(struct restore_ctx *x, const Cocoon__ImageShare *is, size_t i,
			       const char *base, const char *shares,
			       const struct copy_tree_owner *own, struct error **err)
{
	struct agent *a = x->a;
	char dir[sizeof(x->share0)];
	if (!valid_name(is->tag) || !valid_name(is->name))
		return error_setx(err, EINVAL, "invalid image share");
	snprintf(dir, sizeof(dir), "%s/%s", shares, is->name);
	mkdir(dir, 0700);
	(void)umount2(dir, MNT_DETACH); /* a member restored in place before, if any */
	/* Uncached: CRIU reads the pages straight into the restored task's
	 * memory, and 9p's zero-copy path lets QEMU fill those pages; no guest
	 * page cache, no guest memcpy. The small images are staged into tmpfs.
	 * A pod member's images are a directory of the pod share (read-only on
	 * the host's side). */
	if (is->path && *is->path
		    ? share_subdir_bind(is->tag, is->path, dir) < 0
		    : agent_mount_share(a, is->tag, dir, MS_RDONLY | MS_NOSUID | MS_NODEV) < 0) {
		return error_set(err, errno ? errno : EIO, "mount images (%s tag %s)",
				 a->virtiofs ? "virtiofs" : "9p", is->tag);
	}
	char stage[sizeof(x->images)], rel[sizeof("../../shares-") + 2 * COCOON_ID_MAX + 1];
	snprintf(stage, sizeof(stage), "%s/%s", base, is->name);
	snprintf(rel, sizeof(rel), "../../shares-%s/%s", x->cid, is->name);
	int r = copy_tree_stage(dir, rel, stage, own);
	if (r < 0)
		return error_set(err, -r, "staging the images of %s", is->name);
	if (i == 0) {
		snprintf(x->share0, sizeof(x->share0), "%s", dir);
		snprintf(x->images, sizeof(x->images), "%s", stage);
	}
	return 0;
}

/* A user namespace's restored tasks read their images as its root
 * (copy-tree.c, copy_tree_stage): *owner, its root's uid and gid; "parent"
 * links of a pre-dump chain go through base, which they may search. Such a
 * container cannot be restored onto the engine's interfaces. Sets
 * x->pages_staged. Returns 0, or a negative errno with *ERR. */
static int restore_images_userns(struct restore_ctx *x, const Cocoon__ContainerSpec *s,
				 const char *base, struct copy_tree_owner *owner,
				 struct error **err)
{
	if (userns_root_ids(s, &owner->uid, &owner->gid) < 0)
		return error_setx(err, EINVAL,
				  "linux.uidMappings and gidMappings must map container id 0");
	if (s->network && s->network->n_interfaces) {
		return error_setx(
			err, EOPNOTSUPP,
			"a container with a user namespace cannot be restored onto the engine's "
			"network interface %s: CRIU makes its network namespace from the images, "
			"with loopback only (docs/checkpoint.md); restore it without a network "
			"namespace path (podman --network none)",
			s->network->interfaces[0]->name ? s->network->interfaces[0]->name : "?");
	}
	if (chmod(base, 0711) < 0)
		return error_set(err, errno, "%s", base);
	x->pages_staged = true;
	return 0;
}

int restore_images(struct restore_ctx *x, const Cocoon__RestoreRequest *req, struct error **err)
{
	if (req->n_images == 0) {
		if (path_fmt(x->images, sizeof(x->images), AGENT_SHARED_DIR "/%s",
			     req->shared_path) < 0)
			return error_setx(err, ENAMETOOLONG,
					  "the images' path %.64s... is too long",
					  req->shared_path);
		return 0;
	}
	char *base = x->staged, *shares = x->shares;
	snprintf(base, sizeof(x->staged), "%s/images-%s", x->a->ckpt_dir, x->cid);
	snprintf(shares, sizeof(x->shares), "%s/shares-%s", x->a->ckpt_dir, x->cid);
	mkdir(base, 0700);
	mkdir(shares, 0700);
	struct copy_tree_owner owner, *own = NULL;
	if (userns_wanted(req->spec)) {
		int r = restore_images_userns(x, req->spec, base, &owner, err);
		if (r < 0)
			return r;
		own = &owner;
	}
	for (size_t i = 0; i < req->n_images; i++) {
		int r = restore_stage_share(x, req->images[i], i, base, shares, own, err);
		if (r < 0)
			return r;
	}
	return 0;
}
