/* The guest side of VM templates (docs/performance.md, "VM templates").
 *
 * A template VM boots as usual, loads every module, then lets go of its
 * shares and answers the host, which saves the VM's devices with QEMU's
 * migration and keeps its memory file. Each later VM starts from that file,
 * mapped copy-on-write, and its agent carries on in this same loop: the
 * first request it gets is TemplateResume.
 *
 * QEMU 7.2 refuses to migrate a VM with a mounted 9p share ("Migration is
 * disabled when VirtFS export path ... is mounted"); unmounting clunks the
 * root fid and lifts the blocker. So the tools tree is mounted only while
 * the late modules load, and the shared directory only after resuming.
 */
#include "agent.h"
#include "cleanup.h"

#include <fcntl.h>
#include <linux/random.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <time.h>

#define TEMPLATE_SEED_MAX 512

void agent_template_prepare(struct agent *a)
{
	agent_load_late_modules_now(a);
	/* Nothing is open under /tools now: the modules are in the kernel and
	 * the agent runs from the initramfs. */
	if (umount2(AGENT_TOOLS_DIR, 0) < 0 && errno != EINVAL)
		agent_log(a, "template: unmount %s: %s", AGENT_TOOLS_DIR, strerror(errno));
}

/* RNDADDENTROPY credits the bytes; RNDRESEEDCRNG makes the kernel's CRNG
 * (and every per-CPU one, by its generation counter) draw a new key from
 * the pool now, instead of at its next reseed interval, which could be a
 * minute away: until then two clones would read the same /dev/urandom. */
static int reseed_rng(const uint8_t *seed, size_t len)
{
	struct {
		struct rand_pool_info info;
		uint8_t buf[TEMPLATE_SEED_MAX];
	} e = {.info = {.entropy_count = (int)(len * 8), .buf_size = (int)len}};
	_cleanup_close_ int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);

	memcpy(e.buf, seed, len);
	if (fd < 0 || ioctl(fd, RNDADDENTROPY, &e.info) < 0 || ioctl(fd, RNDRESEEDCRNG) < 0)
		return -errno;
	return 0;
}

void template_resume_handle(struct agent *a, uint64_t id, const Cocoon__TemplateResumeRequest *req)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__TemplateResumeReply reply = COCOON__TEMPLATE_RESUME_REPLY__INIT;

	if (!req || (!a->template_mode && !req->whole_vm)) {
		agent_send_error(a, id, EINVAL,
				 "template_resume: this VM did not start from a template");
		return;
	}
	if (req->seed.len < 16 || req->seed.len > TEMPLATE_SEED_MAX) {
		agent_send_error(a, id, EINVAL, "template_resume: seed of %zu bytes (16 to %d)",
				 req->seed.len, TEMPLATE_SEED_MAX);
		return;
	}
	int r = a->is_init ? reseed_rng(req->seed.data, req->seed.len) : 0;
	if (r < 0) {
		agent_send_error(a, id, -r, "template_resume: reseed the RNG: %s", strerror(-r));
		return;
	}
	if (a->is_init && req->realtime_ns > 0) {
		struct timespec ts = {.tv_sec = req->realtime_ns / 1000000000LL,
				      .tv_nsec = req->realtime_ns % 1000000000LL};
		if (clock_settime(CLOCK_REALTIME, &ts) < 0)
			agent_log(a, "template_resume: set the clock: %s", strerror(errno));
	}
	/* A whole-VM restore: the shares came back mounted, with the VM. */
	bool mount_shares = a->template_mode;
	a->template_mode = false;
	if (a->is_init && mount_shares) {
		if (agent_mount_9p(COCOON_TAG_TOOLS, AGENT_TOOLS_DIR,
				   MS_RDONLY | MS_NOSUID | MS_NODEV, "loose") < 0 &&
		    a->debug)
			agent_log(a, "no tools share (%s)", strerror(errno));
		if (agent_mount_share(a, COCOON_TAG_SHARED, AGENT_SHARED_DIR,
				      MS_NOSUID | MS_NODEV) == 0)
			a->shared_mounted = true;
		else if (a->debug)
			agent_log(a, "no shared directory (%s)", strerror(errno));
	}
	reply.shared_mounted = a->shared_mounted;
	resp.id = id;
	resp.body_case = COCOON__RESPONSE__BODY_TEMPLATE_RESUME;
	resp.template_resume = &reply;
	agent_send_response(a, &resp);
}
