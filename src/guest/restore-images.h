/* Where a restore's CRIU reads the images (restore-images.c): the image
 * shares the host gives mounted read-only and staged, or a directory of the
 * shared directory. restore.c calls it for the Restore request. */
#pragma once

#include "error.h"
#include "proto.h"
#include "restore-job.h"

#include <stddef.h>

/* With image shares (req->images, at most COCOON_MAX_CHAIN, checked by the
 * caller), the host shares the image directories themselves, read-only, no
 * copy: each is mounted under <ckpt_dir>/shares-<id>/<name> (a pod member's
 * is a directory of the pod share, bound) and staged into
 * <ckpt_dir>/images-<id>/<name> (copy_tree_stage: the small images in
 * tmpfs, links to the pages), side by side so that "parent" links resolve;
 * the first is x->share0, its stage x->images; the two directories are
 * x->shares and x->staged (restore_fail undoes them). With a user namespace
 * everything is staged, owned by the namespace's root (x->pages_staged),
 * and a spec with the engine's interfaces is refused (-EOPNOTSUPP). Without, x->images is
 * req->shared_path under the shared directory (checked relative by the
 * caller). A tag or name from the host that is not one plain path component
 * is refused. Returns 0, or a negative errno with *ERR saying why
 * (without the container's ID). */
int restore_images(struct restore_ctx *x, const Cocoon__RestoreRequest *req, struct error **err);
