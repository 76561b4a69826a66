/* The images of a miniature CRIU dump that the tests write: shared by the
 * unit tests' fixture (tests/unit/images-fixture.c) and the hostile VMM
 * (tests/helpers/hostile-vmm.c), so both plant the same accepted dump. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Writes inventory.img, pstree.img and ids-1.img into DIR through WRITE_FILE: the
 * init (task 1) in a pid and mount namespace of its own, as restore wants
 * (images-ns.h). */
static inline void fake_dump_ns_images(const char *dir,
				       void (*write_file)(const char *dir, const char *name,
							  const void *data, size_t len))
{
	static const uint8_t inv[] = {0x16, 0x31, 0x31, 0x58, 8,    0,	  0,	0,
				      0x08, 0x02, 0x1a, 0x04, 0x28, 0x01, 0x48, 0x06};
	static const uint8_t tree[] = {0x19, 0x43, 0x56, 0x54, 0x30, 0x30, 0x27, 0x50,
				       4,    0,	   0,	 0,    0x08, 0x01, 0x10, 0x00};
	static const uint8_t ids[] = {0x19, 0x43, 0x56, 0x54, 0x30, 0x20, 0x43, 0x54,
				      4,    0,	  0,	0,    0x28, 0x09, 0x48, 0x0c};
	write_file(dir, "inventory.img", inv, sizeof(inv));
	write_file(dir, "pstree.img", tree, sizeof(tree));
	write_file(dir, "ids-1.img", ids, sizeof(ids));
}
