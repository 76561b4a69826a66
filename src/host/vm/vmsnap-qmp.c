/* Whole-VM checkpoints over QMP (vmsnap.h): the save of a running VM into
 * the file the host made for it, and the load of a saved VM into a VM
 * started with -incoming defer. QEMU gets each file as a descriptor
 * (add-fd, then file:/dev/fdset/N), never a path. */
#include "vmsnap.h"
#include "cleanup.h"
#include "paths.h"
#include "qmp.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/stat.h>

/* A save of the largest VM under TCG, with room. */
#define VMSNAP_SAVE_TIMEOUT_MS (10 * 60 * 1000)

/* {"execute": NAME, "arguments": {"uri": "file:PATH"}}, escaped by json-c. */
static char *qmp_file_command(const char *name, const char *path)
{
	char *uri = NULL, *line = NULL;
	if (asprintf(&uri, "file:%s", path) < 0)
		return NULL;
	json_object *o = json_object_new_object(), *args = json_object_new_object();
	json_object_object_add(o, "execute", json_object_new_string(name));
	json_object_object_add(args, "uri", json_object_new_string(uri));
	json_object_object_add(o, "arguments", args);
	if (asprintf(&line, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) < 0)
		line = NULL;
	json_object_put(o);
	free(uri);
	return line;
}

static int set_mapped_ram(struct qmp *q, struct error **err)
{
	return qmp_call(
		q,
		"{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":[{\"capability\":\"mapped-ram\",\"state\":true}]}}\n",
		-1, NULL, err);
}

/* Polls query-migrate until the migration completed; 0, or the failure. */
static int wait_migrated(struct qmp *q, struct vm *vm, long long deadline, struct error **err)
{
	for (;;) {
		_cleanup_free_ char *reply = NULL;
		int r = qmp_call(q, "{\"execute\":\"query-migrate\"}\n", -1, &reply, err);
		if (r < 0)
			return r;
		char status[32] = "";
		(void)qmp_status(reply, status, sizeof(status)); /* none: "" */
		if (strcmp(status, "completed") == 0)
			return 0;
		if (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0)
			return error_setx(err, EIO, "QEMU's migration to the file failed: %.300s",
					  reply);
		if (vm_check_exited(vm))
			return error_setx(err, ECHILD, "QEMU exited while saving the VM");
		if (now_ms() > deadline)
			return error_setx(err, ETIMEDOUT, "the VM was not saved within %d s",
					  VMSNAP_SAVE_TIMEOUT_MS / 1000);
		usleep(5000);
	}
}

/* 1 when QEMU's run state (query-status) is want, 0 when another (in
 * now, if asked), or an error. */
static int run_state(struct qmp *q, const char *want, char now[32])
{
	_cleanup_free_ char *reply = NULL;
	char status[32] = "";
	int r = qmp_call(q, "{\"execute\":\"query-status\"}\n", -1, &reply, NULL);
	if (r < 0)
		return r;
	(void)qmp_status(reply, status, sizeof(status)); /* none: "" */
	if (now)
		snprintf(now, 32, "%s", status);
	return strcmp(status, want) == 0;
}

/* cont, until query-status says "running": a cont that meets the end of a
 * migration can be undone by it (the migration thread sets "postmigrate"
 * after query-migrate says completed), so it is sent again while the VM is
 * still stopped, for up to 5 s. */
static int resume(struct qmp *q, struct error **err)
{
	char now[32] = "";
	for (long long until = now_ms() + 5000;;) {
		int r = qmp_call(q, "{\"execute\":\"cont\"}\n", -1, NULL, err);
		if (r < 0)
			return r;
		r = run_state(q, "running", now);
		if (r != 0)
			return r < 0 ? error_setx(err, -r, "QMP query-status after cont") : 0;
		if (now_ms() > until)
			return error_setx(
				err, EIO,
				"the VM did not run again after the save: QEMU says \"%s\"", now);
		usleep(5000);
	}
}

/* The fdsets QEMU gets a saved VM's descriptor through (add-fd): one for
 * the save, another for a restore's load, so that a descriptor a load
 * left (its remove-fd is best effort) is never the one a save writes. */
#define VMSNAP_SAVE_FDSET 8
#define VMSNAP_FDSET 7

/* add-fd of fd into fdset id, after a remove-fd of whatever the set still
 * held (a save that failed before its own remove-fd): QEMU opens
 * /dev/fdset/N as a dup of the first descriptor of the set whose access
 * mode matches. */
static int fdset_add(struct qmp *q, int id, int fd, struct error **err)
{
	char add[128], remove[128];
	snprintf(add, sizeof(add), "{\"execute\":\"add-fd\",\"arguments\":{\"fdset-id\":%d}}\n",
		 id);
	snprintf(remove, sizeof(remove),
		 "{\"execute\":\"remove-fd\",\"arguments\":{\"fdset-id\":%d}}\n", id);
	(void)qmp_call(q, remove, -1, NULL, NULL); /* none: an error, nothing to remove */
	return qmp_call(q, add, fd, NULL, err);
}

/* QEMU's copy of the descriptor goes (its migration channel's dup is
 * closed by QEMU when the migration ends); best effort: a descriptor left
 * goes with QEMU, and the next fdset_add removes it. */
static void fdset_remove(struct qmp *q, int id)
{
	char remove[128];
	snprintf(remove, sizeof(remove),
		 "{\"execute\":\"remove-fd\",\"arguments\":{\"fdset-id\":%d}}\n", id);
	(void)qmp_call(q, remove, -1, NULL, NULL);
}

int vmsnap_save(struct vm *vm, const char *qmp_path, int state_fd, bool mapped_ram,
		bool leave_running, struct vmsnap_save_stats *st, struct error **err)
{
	struct qmp q = {.fd = -1};
	char path[32];
	struct stat sst;

	memset(st, 0, sizeof(*st));
	snprintf(path, sizeof(path), "/dev/fdset/%d", VMSNAP_SAVE_FDSET);
	_cleanup_free_ char *migrate = qmp_file_command("migrate", path);
	if (!migrate)
		return error_set(err, ENOMEM, "save");
	/* QEMU opens the fdset O_WRONLY and dups the descriptor of that
	 * access mode: anything else would be a silent "no such file". */
	int fl = fcntl(state_fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) != O_WRONLY || fstat(state_fd, &sst) < 0 ||
	    !S_ISREG(sst.st_mode))
		return error_setx(
			err, EINVAL,
			"the saved VM's file is not a regular file open for writing only");
	int r = qmp_connect(&q, vm, qmp_path, err);
	if (r == 0)
		r = fdset_add(&q, VMSNAP_SAVE_FDSET, state_fd, err);
	if (r == 0 && mapped_ram)
		r = set_mapped_ram(&q, err);
	if (r < 0)
		goto out;
	long long stop = now_ms();
	r = qmp_call(&q, "{\"execute\":\"stop\"}\n", -1, NULL, err);
	/* Stopped, the guest can open or delete nothing more. */
	if (r == 0)
		r = vmsnap_deleted_held(vm, err);
	if (r == 0)
		r = qmp_call(&q, migrate, -1, NULL, err);
	if (r == 0)
		r = wait_migrated(&q, vm, stop + VMSNAP_SAVE_TIMEOUT_MS, err);
	st->save_ms = now_ms() - stop;
	fdset_remove(&q, VMSNAP_SAVE_FDSET);
	/* QEMU's migration thread moves the VM to "postmigrate" after
	 * query-migrate already says completed: a cont sent before that is
	 * undone ("Can't migrate the vm that was paused due to previous
	 * migration" at the next save, found by make bench-vmsnap). Wait for
	 * the state to settle first. */
	for (long long until = now_ms() + 5000; r == 0 && leave_running && now_ms() < until;) {
		if (run_state(&q, "postmigrate", NULL) != 0)
			break;
		usleep(2000);
	}
	/* The container never pays for a failed save: it runs on. */
	if (r < 0 || leave_running) {
		_cleanup_error_ struct error *e = NULL;
		int c = resume(&q, &e);
		if (r == 0 && c < 0) {
			*err = TAKE_PTR(e);
			r = c;
		}
	}
	st->frozen_ms = now_ms() - stop;
	if (r == 0 && fstat(state_fd, &sst) == 0)
		st->bytes = (uint64_t)sst.st_blocks * 512;
out:
	if (q.fd >= 0)
		close(q.fd);
	return r;
}

int vmsnap_load(struct vm *vm, const char *qmp_path, int state_fd, bool mapped_ram, int timeout_ms,
		struct error **err)
{
	struct qmp q = {.fd = -1};
	_cleanup_free_ char *incoming = NULL;
	char path[32];
	snprintf(path, sizeof(path), "/dev/fdset/%d", VMSNAP_FDSET);
	if (!(incoming = qmp_file_command("migrate-incoming", path)))
		return error_set(err, ENOMEM, "load");
	if (lseek(state_fd, 0, SEEK_SET) < 0)
		return error_set(err, errno, "the saved VM's descriptor");
	int r = qmp_connect(&q, vm, qmp_path, err);
	if (r == 0)
		r = fdset_add(&q, VMSNAP_FDSET, state_fd, err);
	if (r == 0 && mapped_ram)
		r = set_mapped_ram(&q, err);
	if (r == 0)
		r = qmp_call(&q, incoming, -1, NULL, err);
	/* The source was stopped, so the VM comes up paused once loaded. */
	long long deadline = now_ms() + timeout_ms;
	while (r == 0) {
		_cleanup_free_ char *reply = NULL;
		r = qmp_call(&q, "{\"execute\":\"query-status\"}\n", -1, &reply, err);
		if (r < 0)
			break;
		char status[32] = "";
		(void)qmp_status(reply, status, sizeof(status)); /* none: "" */
		if (strcmp(status, "inmigrate") != 0)
			break;
		if (vm_check_exited(vm))
			r = error_setx(err, ECHILD, "QEMU exited while loading the VM");
		else if (now_ms() > deadline)
			r = error_setx(err, ETIMEDOUT, "the VM was not loaded within %d ms",
				       timeout_ms);
		else
			usleep(2000);
	}
	/* QEMU has read what it needs; its copy of the descriptor goes. */
	if (r == 0)
		fdset_remove(&q, VMSNAP_FDSET);
	if (r == 0)
		r = qmp_call(&q, "{\"execute\":\"cont\"}\n", -1, NULL, err);
	if (q.fd >= 0)
		close(q.fd);
	if (r < 0 && vm_check_exited(vm))
		return error_setx(err, ECHILD, "QEMU exited while loading the VM state");
	return r;
}
