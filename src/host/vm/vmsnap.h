/* Whole-VM checkpoints, cocoon's second checkpoint mode (vmsnap.c,
 * docs/whole-vm.md): QEMU saves the VM (guest
 * memory and device state, virtiofsd's state of the shares within it) into
 * the image directory, and a restore starts a new VM from that file instead
 * of booting one and running CRIU in it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "vm.h"

/* The OCI annotation that selects the mode per container at create (podman
 * --annotation, ctr --annotation), over [runtime] checkpoint_mode. */
/* The first line of a key and of vm.json: the format of both. */
#define VMSNAP_KEY_FORMAT "cocoon-vm-snapshot 1"
#define VMSNAP_ANNOTATION "io.cocoon.checkpoint-mode"
/* In the image directory: the description (vmsnap_meta) and QEMU's file. */
#define VMSNAP_META "vm.json"
#define VMSNAP_STATE "vm.state"
#define VMSNAP_STATE_ZST "vm.state.zst"
/* CRIU's inventory image, for the engines only (vmsnap-inventory.c):
 * podman 4.3's restore refuses a checkpoint directory without one. */
#define VMSNAP_INVENTORY "inventory.img"
/* In a container's state directory: the VM was booted for whole-VM
 * checkpoints; the file holds the key (vmsnap_key) it was booted with. */
#define VMSNAP_MARK "vmsnap.key"
/* In the state directory: flock()ed by the checkpoint command from before
 * the save until the state is published (or the checkpoint failed) and
 * the container thawed or killed, so that a second checkpoint of the
 * container is refused rather than served while the VM is stopped for the
 * first. */
#define VMSNAP_LOCK "vmsnap.lock"
/* The oldest QEMU whose vhost-user-fs device migrates (its back-end's
 * state travels in the stream: "vhost-user-fs: Implement internal
 * migration", QEMU 8.2). 7.2 marks the device unmigratable. */
#define VMSNAP_QEMU_MIN_MAJOR 8
#define VMSNAP_QEMU_MIN_MINOR 2
#define VMSNAP_KEY_MAX (64 * 1024)
#define VMSNAP_META_MAX (128 * 1024)

/* What the configured QEMU and virtiofsd can do, found by running them. */
struct vmsnap_caps {
	char qemu[256], virtiofsd[256];		/* the binaries asked */
	int qemu_major, qemu_minor, qemu_micro; /* 0.0.0: it did not run */
	bool mapped_ram; /* QMP query-migrate-capabilities lists mapped-ram (QEMU >= 9.0) */
	bool virtiofsd_runs;
	bool virtiofsd_migration; /* its --help has --migration-mode */
	char virtiofsd_version[64];
};

/* "QEMU emulator version 10.0.13 (Debian ...)": 0 and the numbers, or
 * -EINVAL. Pure; unit-tested. */
int vmsnap_parse_qemu_version(const char *text, int *major, int *minor, int *micro);
/* 0 when c can save and restore a VM with virtiofs shares; otherwise
 * -EOPNOTSUPP with what is missing in why (a sentence naming the binaries
 * and versions). Pure; unit-tested. */
int vmsnap_caps_check(const struct vmsnap_caps *c, char *why, size_t size);
/* Fills c by running cfg's snapshot_qemu (--version; QMP on stdio with
 * -M none) and snapshot_virtiofsd (--version, --help), each bounded in time.
 * A binary that is missing or does not run is recorded, not an error.
 * Probed once per process (and its forks) for the same two paths. */
void vmsnap_probe(const struct cocoon_config *cfg, struct vmsnap_caps *c);
/* vmsnap_probe + vmsnap_caps_check: 0, or an error that names what is
 * missing, the config keys to set and where to get newer binaries. */
int vmsnap_require(const struct cocoon_config *cfg, struct vmsnap_caps *c, struct error **err);
/* The QEMU binary whole-VM mode runs: snapshot_qemu, else qemu. */
const char *vmsnap_qemu(const struct cocoon_config *cfg);

/* 1 when the container of bundle_dir wants whole-VM checkpoints (its
 * annotation, else [runtime] checkpoint_mode), 0 when not, or an error for
 * a bad annotation value. */
int vmsnap_wanted(const struct cocoon_config *cfg, const char *bundle_dir, struct error **err);

/* The key of a VM: its QEMU command line with per-VM paths, taps and MACs
 * replaced by placeholders, the QEMU and virtiofsd versions, and a hash of
 * the kernel's, initrd's and tools manifest's contents (not their inodes:
 * a snapshot may move to another host with the same image). Allocated. */
int vmsnap_key(const struct vm_spec *spec, const struct vmsnap_caps *caps, char **key,
	       struct error **err);
/* The first line where two keys differ, for a refusal ("kernel=...").
 * Writes into out; pure. */
void vmsnap_key_diff(const char *want, const char *have, char *out, size_t size);

/* The memory, in MiB, that key's QEMU command line gives the VM (its
 * " -m N"), or -EINVAL when it names none. key may come from an untrusted
 * vm.json: the result is only a claim until the key is compared with the
 * restoring VM's (sandbox.c), and is capped by the caller. Pure. */
int vmsnap_key_memory_mib(const char *key);

/* 1 when key says the VM saves with QEMU's mapped-ram (a sparse file with
 * each page at its own offset: only the pages the guest used take space). */
bool vmsnap_key_mapped_ram(const char *key);

struct vmsnap_save_stats {
	long long frozen_ms; /* from QMP stop to cont (or to the end) */
	long long save_ms;   /* the migration to the file */
	uint64_t bytes;	     /* the file's allocated size */
};

/* 0 when no virtiofsd of vm (vm->aux, and the processes they forked)
 * holds a deleted file or directory of a share open; otherwise
 * -EOPNOTSUPP with an error naming the file (its path in the share), the
 * share and what to do. virtiofsd's find-paths migration hands each file
 * the guest has open over by its path, and a deleted one has none: saved
 * anyway, the restored container gets EIO on it. Reads /proc/PID/fd of
 * virtiofsd, never the guest's word; meant for a stopped VM (vmsnap_save
 * calls it between stop and migrate). Memfds (the guest's memory) do not
 * count. */
int vmsnap_deleted_held(const struct vm *vm, struct error **err);

/* Saves the running VM into state_fd (an empty regular file open for
 * writing only, O_WRONLY: QEMU opens its fdset by access mode; borrowed)
 * over its QMP socket: stop, migrate to the file, then cont when
 * leave_running. QEMU gets the descriptor itself (add-fd, then
 * file:/dev/fdset/N, which QEMU >= 8.2 opens as a dup of it), never a
 * path: the file is wherever the caller made it (vmsnap_stage: beside the
 * image path, not under the state root, which is tmpfs under the engines).
 * A guest holding a deleted file of a share open is refused once stopped,
 * before anything is saved (vmsnap_deleted_held). On failure the VM is let
 * run again; what the file holds is then the caller's to remove. */
int vmsnap_save(struct vm *vm, const char *qmp_path, int state_fd, bool mapped_ram,
		bool leave_running, struct vmsnap_save_stats *st, struct error **err);
/* Loads the saved VM open at state_fd (read from offset 0; the caller's
 * to close) into a VM started with -incoming defer and runs it. QEMU gets
 * the descriptor itself (QMP add-fd, then file:/dev/fdset/N), never a
 * path: what the restore checked is what it loads. */
int vmsnap_load(struct vm *vm, const char *qmp_path, int state_fd, bool mapped_ram, int timeout_ms,
		struct error **err);

/* vm.json of an image directory: what vmsnap_meta_write wrote. */
struct vmsnap_meta {
	char *key;
	char container_id[256];
	bool zstd; /* the state is VMSNAP_STATE_ZST */
	uint64_t state_bytes;
	/* zstd: the decompressed state's size in bytes (vm.json's raw_size;
	 * read back: untrusted, checked by vmsnap_zstd_unpack) */
	uint64_t raw_size;
	int zstd_level; /* vmsnap_publish: 1-19 (vmsnap-zstd.h) when zstd */
	/* The state file's size in bytes and its vmsnap_state_hash, in hex
	 * (vm.json's state_size and xxh3; read back: untrusted, checked by
	 * vmsnap_state_verify). Only for vm.state: zstd checks its own. */
	uint64_t state_size;
	char xxh3[17];
};
int vmsnap_meta_write(int dirfd, const struct vmsnap_meta *m, long long frozen_ms,
		      long long save_ms, struct error **err);
/* Reads and checks dir's vm.json (bounded; every field typed). 0 when
 * there is none (not a whole-VM checkpoint: *found false). */
int vmsnap_meta_read(const char *dir, struct vmsnap_meta *m, bool *found, struct error **err);
void vmsnap_meta_free(struct vmsnap_meta *m);

/* What a whole-VM checkpoint may cost the host, from [limits]: the same
 * bounds at checkpoint (vmsnap_publish) as at restore, so that nothing is
 * published that a restore would refuse. */
struct vmsnap_limits {
	uint64_t max_bytes;	/* checkpoint_max_bytes: vm.state's allocated bytes,
				 * or vm.state.zst's decompressed size */
	uint64_t verify_ms;	/* verify_timeout_ms: hashing vm.state, or
				 * decompressing vm.state.zst */
	int64_t max_memory_mib; /* [vm] max_memory_mib: caps the VM memory a
				 * key may claim (vmsnap_state_bound) */
};

/* What a decompressed VM state holds besides the guest's memory: QEMU's
 * device state (virtio queues, virtiofsd's inode table inside
 * vhost-user-fs's section), the ROM blocks, mapped-ram's per-block header,
 * bitmap and 1 MiB alignment, or a stream's 8-byte header per page (1/512
 * of the memory). Allowed: 1/128 of the memory and this many MiB more. */
#define VMSNAP_STATE_OVERHEAD_MIB 64

/* The most bytes a decompressed vm.state.zst of the VM in key may hold: its
 * memory (vmsnap_key_memory_mib, at most lim->max_memory_mib) plus the
 * overhead above, and never more than lim->max_bytes. *max gets the bound
 * and what a sentence naming it and the limits it comes from. Errors: a key
 * with no memory size (EINVAL), or one over max_memory_mib (EFBIG), named. */
int vmsnap_state_bound(const char *key, const struct vmsnap_limits *lim, uint64_t *max, char *what,
		       size_t size, struct error **err);
/* The same bound for a VM of memory_mib MiB, as the restoring host sizes
 * it (pod_vm_size): a restore bounds by its own VM, never by the untrusted
 * key's claim (rev11b F4). Same errors, naming the VM's memory. */
int vmsnap_state_bound_mib(int memory_mib, const struct vmsnap_limits *lim, uint64_t *max,
			   char *what, size_t size, struct error **err);

/* The checksum of a VM state, fd (name: for errors): XXH3-64 over its
 * size and every 4 KiB block that is not all zeros, each after its offset
 * (u64, little-endian). Holes and written zeros hash alike, so a copy that
 * keeps a mapped-ram file's holes, fills them or punches new ones matches.
 * Reads only the data extents (SEEK_DATA/SEEK_HOLE). *size: the file's
 * size. ETIMEDOUT after max_ms; EFBIG when the file changes size meanwhile. */
int vmsnap_state_hash(int fd, const char *name, uint64_t max_ms, uint64_t *size, uint64_t *hash,
		      struct error **err);
/* Checks an untrusted vm.state (fd, name) against m's state_size and xxh3,
 * within lim->verify_ms: 0, or EINVAL naming the file and what differs
 * (no checksum recorded, another size, a checksum mismatch). */
int vmsnap_state_verify(int fd, const char *name, const struct vmsnap_meta *m,
			const struct vmsnap_limits *lim, struct error **err);

/* A minimal, valid CRIU inventory.img (CRIU's image format 1.1, no
 * process tree: proto/criu-inventory.proto), so that podman 4.3's restore,
 * which stats checkpoint/inventory.img before it calls the runtime, lets a
 * whole-VM checkpoint through. Written into every published directory;
 * never read back: a restore of a whole VM looks at vm.json and the state
 * only, whatever the directory holds besides.
 * encode: the file's bytes, allocated (the caller frees *out): 0, or
 * -ENOMEM. write: creates VMSNAP_INVENTORY in dirfd (O_EXCL, O_NOFOLLOW,
 * fsynced): 0, or an error naming the file. */
int vmsnap_inventory_encode(uint8_t **out, size_t *len);
int vmsnap_inventory_write(int dirfd, struct error **err);

/* Where a whole-VM checkpoint of dest is saved: a new directory beside
 * dest, "<dest>.vmsnap-XXXXXX" (mkdtemp, 0700), on dest's filesystem, so
 * that publishing it is a rename and the saved VM never sits in the state
 * root (tmpfs, i.e. host memory, under containerd and podman:
 * docs/whole-vm.md). *staging (allocated; the caller frees it) gets its
 * path and *state_fd an empty VMSNAP_STATE in it, O_WRONLY (for
 * vmsnap_save; the caller closes it). 0, or an error naming the
 * directory; nothing is left on failure. */
int vmsnap_stage(const char *dest, char **staging, int *state_fd, struct error **err);
/* Publishes a saved VM, staging (vmsnap_stage's directory, holding
 * VMSNAP_STATE as QEMU wrote it), as the image directory dest (absent or
 * empty): vm.state with its size and checksum in vm.json, or vm.state.zst
 * (m->zstd, m->zstd_level) in its place, VMSNAP_INVENTORY and vm.json from
 * m, then staging renamed to dest, so dest appears complete or not at all.
 * A state over lim->max_bytes is refused (EFBIG, naming the limit) before
 * anything is written. On failure staging is removed with all it holds. */
int vmsnap_publish(const char *staging, const char *dest, const struct vmsnap_meta *m,
		   const struct vmsnap_limits *lim, long long frozen_ms, long long save_ms,
		   struct error **err);
