/* The fixture test-vmsnap-state.c and test-vmsnap-zstd.c share
 * (vmsnap-fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paths.h"
#include "vmsnap-fixture.h"
#include "vmsnap-zstd.h"

char dir[] = "/tmp/cocoon-test-vmsnap.XXXXXX";

int fixture_dir_make(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

int fixture_dir_remove(void **state)
{
	return remove_tree(dir, NULL);
}

int make_file(const char *name)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	return fd;
}

uint64_t allocated(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* A mapped-ram-like state: mostly holes, data here and there, an odd end. */
int sparse_state(void)
{
	int fd = make_file("state");
	char buf[1 << 16];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + i / 251);
	assert_int_equal(pwrite(fd, buf, 4096, 0), 4096);
	for (int i = 0; i < 16; i++)
		assert_int_equal(pwrite(fd, buf, sizeof(buf), (10 << 20) + i * (off_t)sizeof(buf)),
				 (ssize_t)sizeof(buf));
	assert_int_equal(pwrite(fd, "tail", 4, SPARSE_SIZE - 4), 4);
	return fd;
}

int pack(int from, const char *name, uint64_t *raw)
{
	uint64_t zst = 0;
	struct error *err = NULL;
	int to = make_file(name);
	assert_int_equal(vmsnap_zstd_pack(from, to, 3, raw, &zst, &err), 0);
	assert_int_equal(lseek(to, 0, SEEK_END), (off_t)zst);
	assert_int_equal(lseek(to, 0, SEEK_SET), 0);
	return to;
}

/* A key as vmsnap_key writes it, for a VM of mib MiB. */
char *key_of(int mib)
{
	static char key[256];
	snprintf(key, sizeof(key),
		 "cocoon-vm-snapshot 1\nqemu-command-line=QEMU -M microvm -nodefaults -m %d -smp 1 "
		 "-append \"x -m 99999\"\nqemu=9.2.0 mapped-ram=yes\n",
		 mib);
	return key;
}
