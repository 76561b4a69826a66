/* The guest image (guest-image.c): the kernel and initramfs every VM boots,
 * built from Debian packages by guest/image/mkimage.sh, which drives
 * Debian's own tools (apt-get download, dpkg-deb, modprobe --show-depends,
 * cpio). cocoon image build calls it (cli/cmd-image.c). */
#pragma once

#include "error.h"

#include <stdbool.h>

/* The default output directory: cache_dir()/image, newly allocated (the
 * caller frees it), or NULL when out of memory. */
char *guest_image_default_dir(void);

/* Builds vmlinux and initrd.img into OUT (NULL: guest_image_default_dir())
 * with mkimage.sh, cocoon-agent and checkpoint.conf (find_helper), rebuilt
 * only when an input changed unless FORCE. mkimage.sh prints its progress
 * and its errors on the caller's stdout and stderr. Returns 0, or a
 * negative errno with *ERR set (a helper not found, the build failed). */
int guest_image_build(const char *out, bool force, struct error **err);
