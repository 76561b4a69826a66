/* The device cgroup program (devcg.h). */
#include "devcg.h"
#include "cleanup.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The instructions used, spelled as include/linux/filter.h does in the
 * kernel (not exported to user space). R1 holds the context, struct
 * bpf_cgroup_dev_ctx: access_type (access << 16 | type), major, minor. */
#define INSN(c, d, s, o, i)                                                                        \
	((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define LDX_W(d, s, o) INSN(BPF_LDX | BPF_MEM | BPF_W, d, s, o, 0)
#define ALU32_IMM(op, d, i) INSN(BPF_ALU | (op) | BPF_K, d, 0, 0, i)
#define MOV32_REG(d, s) INSN(BPF_ALU | BPF_MOV | BPF_X, d, s, 0, 0)
#define JNE32_IMM(d, i, o) INSN(BPF_JMP32 | BPF_JNE | BPF_K, d, 0, o, i)
#define JNE32_REG(d, s, o) INSN(BPF_JMP32 | BPF_JNE | BPF_X, d, s, o, 0)
#define MOV64_IMM(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

enum { R0, R1, R2, R3, R4, R5 };

static uint32_t access_bits(const char *access)
{
	uint32_t a = 0;
	for (const char *p = access ? access : ""; *p; p++)
		a |= *p == 'r'	 ? BPF_DEVCG_ACC_READ
		     : *p == 'w' ? BPF_DEVCG_ACC_WRITE
		     : *p == 'm' ? BPF_DEVCG_ACC_MKNOD
				 : 0;
	return a;
}

#define ACC_ALL (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)

static bool rule_resets(const Cocoon__DeviceRule *d)
{
	return d->type && strcmp(d->type, "a") == 0;
}

/* One rule's test: falls through to its verdict when the request matches,
 * else jumps past the block. */
static size_t emit_rule(const Cocoon__DeviceRule *d, struct bpf_insn *out)
{
	struct bpf_insn b[8];
	int jumps[8];
	size_t n = 0, nj = 0;
	uint32_t acc = access_bits(d->access);
	if (strcmp(d->type, "b") == 0 || strcmp(d->type, "c") == 0) {
		jumps[nj++] = (int)n;
		b[n++] = JNE32_IMM(R2, *d->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR,
				   0);
	}
	if (acc != ACC_ALL) {
		/* (asked & acc) == asked: the rule grants or denies all of it. */
		b[n++] = MOV32_REG(R1, R3);
		b[n++] = ALU32_IMM(BPF_AND, R1, (int32_t)acc);
		jumps[nj++] = (int)n;
		b[n++] = JNE32_REG(R1, R3, 0);
	}
	if (d->major >= 0) {
		jumps[nj++] = (int)n;
		b[n++] = JNE32_IMM(R4, (int32_t)(uint32_t)d->major, 0);
	}
	if (d->minor >= 0) {
		jumps[nj++] = (int)n;
		b[n++] = JNE32_IMM(R5, (int32_t)(uint32_t)d->minor, 0);
	}
	b[n++] = MOV64_IMM(R0, d->allow ? 1 : 0);
	b[n++] = EXIT();
	for (size_t j = 0; j < nj; j++)
		b[jumps[j]].off = (int16_t)(n - 1 - (size_t)jumps[j]);
	memcpy(out, b, n * sizeof(*b));
	return n;
}

int devcg_build(Cocoon__DeviceRule *const *rules, size_t n, void *insns, size_t max)
{
	struct bpf_insn *out = insns;
	size_t first = 0;
	bool allow_all = true; /* a new cgroup v1 device group's default */
	for (size_t i = 0; i < n; i++)
		if (rule_resets(rules[i])) {
			first = i + 1;
			allow_all = rules[i]->allow;
		}
	if (allow_all) {
		bool any_deny = false;
		for (size_t i = first; i < n; i++)
			any_deny |= !rules[i]->allow;
		if (!any_deny)
			return 0;
	}
	static const struct bpf_insn prologue[] = {
		LDX_W(R2, R1, 0), ALU32_IMM(BPF_AND, R2, 0xffff), /* type */
		LDX_W(R3, R1, 0), ALU32_IMM(BPF_RSH, R3, 16),	  /* access */
		LDX_W(R4, R1, 4),				  /* major */
		LDX_W(R5, R1, 8),				  /* minor */
	};
	size_t len = ARRAY_SIZE(prologue);
	if (max < len + 2 + 8 * (n - first))
		return -E2BIG;
	memcpy(out, prologue, sizeof(prologue));
	/* The last matching rule decides: test them from the last. */
	for (size_t i = n; i > first; i--)
		len += emit_rule(rules[i - 1], out + len);
	out[len++] = MOV64_IMM(R0, allow_all ? 1 : 0);
	out[len++] = EXIT();
	return (int)len;
}

static int bpf(int cmd, union bpf_attr *attr)
{
	return (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

int devcg_apply(const char *cgroup, Cocoon__DeviceRule *const *rules, size_t n, struct error **err)
{
	static struct bpf_insn insns[DEVCG_MAX_INSNS];
	static char log[4096];
	if (n == 0)
		return 0;
	int len = devcg_build(rules, n, insns, ARRAY_SIZE(insns));
	if (len < 0)
		return error_setx(err, -len, "linux.resources.devices: too many rules");
	_cleanup_close_ int dir = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return error_set(err, errno, "linux.resources.devices: %s", cgroup);
	if (len == 0) {
		/* Every device allowed: a program left from before (a cgroup
		 * of the same ID) must not decide. None attached: ENOENT. */
		union bpf_attr d = {.target_fd = (uint32_t)dir, .attach_type = BPF_CGROUP_DEVICE};
		(void)bpf(BPF_PROG_DETACH, &d);
		return 0;
	}
	union bpf_attr load = {.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE,
			       .insn_cnt = (uint32_t)len,
			       .insns = (uint64_t)(uintptr_t)insns,
			       .license = (uint64_t)(uintptr_t) "Apache-2.0"};
	_cleanup_close_ int prog = bpf(BPF_PROG_LOAD, &load);
	if (prog < 0) {
		int e = errno;
		/* Again with the verifier's log, for the message only: a log
		 * asked for on every load fails a long program (ENOSPC). */
		log[0] = 0;
		load.log_level = 1;
		load.log_size = sizeof(log);
		load.log_buf = (uint64_t)(uintptr_t)log;
		int again = bpf(BPF_PROG_LOAD, &load);
		if (again >= 0)
			close(again);
		log[sizeof(log) - 1] = 0;
		return error_setx(err, e,
				  "linux.resources.devices: the guest kernel refused the device "
				  "program (BPF_PROG_LOAD: %s)%s%.200s",
				  strerror(e), log[0] ? ": " : "", log);
	}
	/* No flags: the one program of this cgroup, replacing any before. */
	union bpf_attr at = {.target_fd = (uint32_t)dir,
			     .attach_bpf_fd = (uint32_t)prog,
			     .attach_type = BPF_CGROUP_DEVICE};
	if (bpf(BPF_PROG_ATTACH, &at) < 0)
		return error_set(err, errno, "linux.resources.devices: attach to %s", cgroup);
	return 0;
}
