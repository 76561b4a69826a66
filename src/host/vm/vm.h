/* The VM backend interface. QEMU microvm is the real one (vm-qemu.c); unit
 * tests plug in a fake that runs the agent as a plain process. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

struct vm_spec {
	const char *qemu; /* binary, looked up in PATH */
	const char *kernel;
	const char *initrd;
	const char *cmdline_extra; /* appended to the kernel command line */
	const char *accel;	   /* "kvm" or "tcg": already resolved */
	int memory_mib;
	int vcpus;
	const char *channel_path; /* unix socket the backend creates for the agent channel */
	const char *shared_dir;	  /* host directory shared with tag "cocoon", or NULL */
	const char *shared_fs;	  /* "9p" or "virtiofs" */
	const char *rootfs_dir;	  /* container rootfs shared with tag "rootfs", or NULL */
	/* "virtiofs": the rootfs is a virtiofs share (QEMU 7.2's C virtiofsd)
	 * whatever shared_fs says; NULL or "9p": virtio-9p. */
	const char *rootfs_fs;
	/* The bind mount sources (volumes.h), tag "volumes", or NULL: a tree
	 * of mount points, so inode numbers are remapped (9p) or submounts
	 * announced (virtiofs). */
	const char *volumes_dir;
	const char *pod_dir;   /* the pod share, tag "pod" (pod.h), or NULL */
	const char *tools_dir; /* the image's tools tree, read-only, tag "tools", or NULL */
	/* Checkpoint image directories shared read-only, tags "images0".. */
	const char *const *images_dirs;
	int n_images_dirs;
	/* Network devices: tap fds (inherited by the VMM) and their MACs. */
	const int *net_fds;
	const char *const *net_macs;
	int n_nets;
	/* VM templates (template.c): guest RAM lives in memory_file; with
	 * memory_shared the guest writes into the file (a template being
	 * built), else the file is mapped copy-on-write (a VM started from the
	 * template). Both add cocoon.template=1 to the kernel command line. */
	const char *memory_file;
	bool memory_shared;
	int incoming_fd;     /* > 0: device state to start from (-incoming) */
	bool incoming_defer; /* -incoming defer: the host loads a state over QMP */
	/* Whole-VM checkpoints (vmsnap.h): every share on virtiofs, the
	 * rootfs and tools too, each served by this virtiofsd (one with
	 * --migration-mode, whose state travels in QEMU's stream). NULL: the
	 * usual shares, and QEMU 7.2's C virtiofsd for shared_fs virtiofs. */
	const char *snapshot_virtiofsd;
	const char *qmp_path;	 /* a QMP socket for the host, or NULL */
	const char *console_log; /* guest serial console goes here */
	const char *vmm_log;	 /* the VMM's own stderr goes here */
};

struct vm;

struct vm_backend {
	const char *name;
	/* Starts the VM; the channel socket exists when this returns 0. */
	int (*start)(struct vm *vm, const struct vm_spec *spec, struct error **err);
	/* Kills the VM and everything the backend started for it, then reaps. */
	void (*kill)(struct vm *vm);
};

/* A virtiofsd for the shared directory, the volumes and each image directory. */
#define VM_MAX_AUX 8

struct vm {
	const struct vm_backend *backend;
	pid_t pid;	       /* the VMM process */
	pid_t aux[VM_MAX_AUX]; /* helpers such as virtiofsd */
	/* The share each virtiofsd of aux serves (its tag, contract.h), for
	 * what a whole-VM checkpoint says about it; "" for none. */
	char aux_tag[VM_MAX_AUX][24];
	bool exited;
	int status;
};

extern const struct vm_backend vm_backend_qemu;
/* The QEMU command line for spec, as one line: what a template is keyed by. */
char *vm_qemu_command_line(const struct vm_spec *spec, struct error **err);

int vm_start(struct vm *vm, const struct vm_backend *backend, const struct vm_spec *spec,
	     struct error **err);
/* 1 when the VMM has exited (status filled in), 0 while it runs. */
int vm_check_exited(struct vm *vm);
/* Waits up to timeout_ms for the VMM to exit on its own, then kills it. */
void vm_stop(struct vm *vm, int timeout_ms);

/* Waits for a unix socket to accept connections, while the VMM lives. */
int vm_wait_socket(struct vm *vm, const char *path, int timeout_ms, struct error **err);
/* How long vm_wait_socket() waits for a socket QEMU serves (the agent's
 * channel, QMP) once QEMU runs, in ms: one figure for every caller. */
#define VM_SOCKET_TIMEOUT_MS 10000
