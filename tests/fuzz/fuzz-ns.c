/* libFuzzer: CRIU's inventory, pstree and ids images, as the host reads
 * them before a restore to refuse an init in the guest's own namespaces
 * (images-ns.h). The input is the inventory and the pstree image, each
 * after its length as two bytes (big-endian), then the ids image: the
 * rest. */
#include <stddef.h>
#include <stdint.h>

#include "images-ns.h"

static size_t take(const uint8_t **p, const uint8_t *end)
{
	if (end - *p < 2)
		return (size_t)(end - *p);
	size_t n = (size_t)(*p)[0] * 256 + (*p)[1];
	*p += 2;
	return n < (size_t)(end - *p) ? n : (size_t)(end - *p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	size_t inv_len = take(&p, end);
	const uint8_t *inv = p;
	p += inv_len;
	size_t tree_len = take(&p, end);
	const uint8_t *tree = p;
	p += tree_len;
	struct error *err = NULL;
	uint32_t pid = 0;
	if (images_ns_init_pid(inv, inv_len, tree, tree_len, &pid, &err) == 0) {
		if (pid == 0 || pid > INT32_MAX)
			__builtin_trap(); /* an ids-PID.img name the host must never build */
		images_ns_check(inv, inv_len, pid, p, (size_t)(end - p), &err);
	}
	error_free(&err);
	return 0;
}
