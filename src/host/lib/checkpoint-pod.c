/* checkpoint --pod (checkpoint-pod.h): a whole pod, its members paused
 * together, dumped one by one with checkpoint_container and published
 * together (docs/pods.md). */
#include "checkpoint-pod.h"
#include "cleanup.h"
#include "container.h"
#include "log.h"
#include "paths.h"
#include "pod.h"
#include "pod-record.h"

#include <dirent.h>
#include <json-c/json.h>
#include <string.h>

/* The running (or paused) members of sandbox SB under the state root, in
 * ids[]; stopped ones are left out. */
static int pod_members(struct global_opts *g, const char *sb, char ids[][COCOON_ID_MAX + 1],
		       int max, int *n, struct error **err)
{
	_cleanup_closedir_ DIR *d = opendir(g->root);
	struct dirent *de;
	*n = 0;
	if (!d)
		return error_set(err, errno, "state root %s", g->root);
	while ((de = readdir(d))) {
		_cleanup_free_ char *dir = NULL, *owner = NULL;
		struct container_state st;
		if (de->d_name[0] == '.' || validate_id("container", de->d_name, NULL) < 0 ||
		    container_load(g, de->d_name, &dir, &st, NULL) < 0)
			continue;
		if (pod_images_state_dir(g, dir, &owner, NULL) != 1 || !owner)
			continue;
		_cleanup_free_ char *sb_dir = NULL;
		if (state_dir(g->root, sb, &sb_dir, NULL) < 0 || strcmp(owner, sb_dir) != 0)
			continue;
		/* An exited member not yet deleted has nothing in the VM to
		 * dump (docs/pods.md); one not started yet is refused. */
		if (st.status == STATUS_STOPPED) {
			log_warning(
				"checkpoint --pod %s: member %s is stopped: left out of the checkpoint (pod.json does not list it)",
				sb, de->d_name);
			continue;
		}
		if (st.status != STATUS_RUNNING && st.status != STATUS_PAUSED)
			return error_setx(
				err, EINVAL,
				"pod member %s is %s; a pod is checkpointed with all its containers running or paused",
				de->d_name, state_status_name(st.status));
		if (*n == max)
			return error_setx(err, E2BIG, "more than %d containers in pod %s", max, sb);
		if (snprintf(ids[*n], COCOON_ID_MAX + 1, "%s", de->d_name) > COCOON_ID_MAX)
			continue; /* validate_id() refused it above already */
		(*n)++;
	}
	return 0;
}

/* DIR/pod.json: the sandbox and its members, in the order an engine
 * restores them, with where each bundle was; and the host's record of the
 * bundles for restore --pod (pod-record.h). */
static int write_pod_json(struct global_opts *g, const char *id, const struct checkpoint_options *o,
			  char ids[][COCOON_ID_MAX + 1], int n, struct error **err)
{
	struct container_state st;
	int r;
	json_object *j = json_object_new_object(), *members = json_object_new_array();
	json_object_object_add(j, "sandbox", json_object_new_string(id));
	for (int i = 0; i < n - 1; i++)
		json_object_array_add(members, json_object_new_string(ids[i]));
	json_object_object_add(j, "members", members);
	/* Where each bundle was: restore --pod's default. */
	json_object *bundles = json_object_new_object();
	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *d = NULL;
		if (container_load(g, ids[i], &d, &st, NULL) == 0 && st.bundle[0])
			json_object_object_add(bundles, ids[i], json_object_new_string(st.bundle));
	}
	json_object_object_add(j, "bundles", bundles);
	const char *text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY);
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/" POD_CHECKPOINT_FILE, o->image_path) < 0)
		r = error_set(err, ENOMEM, "checkpoint");
	else
		r = write_file_atomic(path, text, strlen(text), 0600, err);
	/* restore --pod takes the bundles from the host's record only
	 * (pod-record.h); without it the pod is restored container by
	 * container, so the checkpoint stands. */
	_cleanup_error_ struct error *rec_err = NULL;
	if (r == 0 && pod_record_write(&g->cfg, o->image_path, bundles, &rec_err) < 0)
		log_warning(
			"checkpoint --pod %s: the bundles were not recorded for restore --pod (restore it container by container): %s",
			id, rec_err->msg);
	json_object_put(j);
	return r;
}

/* checkpoint --pod SANDBOX: every container of the pod is paused (frozen
 * together: the pod's loopback and IPC stay consistent between them), then
 * dumped into DIR/<id> while paused, members first; only once every image
 * directory is published are they all killed, members first, or with
 * --leave-running resumed. A failure resumes them all and removes what was
 * written: the pod runs on. DIR gets pod.json, the order an engine
 * restores them in (docs/pods.md). */
int checkpoint_pod(struct global_opts *g, const char *id, struct checkpoint_options *o,
		   struct error **err)
{
	enum { POD_MAX = POD_MAX_MEMBERS };
	char ids[POD_MAX + 1][COCOON_ID_MAX + 1];
	bool paused[POD_MAX + 1] = {0};
	_cleanup_free_ char *dir = NULL, *sb_of = NULL;
	struct container_state st;
	int n = 0, r;

	if (!o->image_path)
		return error_setx(err, EINVAL, "--pod needs --image-path");
	if (o->pre_dump || o->parent_path)
		return error_setx(err, EINVAL, "--pod takes no --pre-dump or --parent-path yet");
	if ((r = container_load(g, id, &dir, &st, err)) < 0)
		return r;
	if ((r = pod_images_state_dir(g, dir, &sb_of, err)) < 0)
		return r;
	if (r == 1)
		return error_setx(err, EINVAL, "%s is a member of a pod, not its sandbox", id);
	if (st.status != STATUS_RUNNING && st.status != STATUS_PAUSED)
		return error_setx(err, EINVAL, "pod sandbox %s is %s", id,
				  state_status_name(st.status));
	if ((r = pod_members(g, id, ids, POD_MAX, &n, err)) < 0 ||
	    (r = checkpoint_check_destination(o->image_path, err)) < 0)
		return r;
	snprintf(ids[n++], COCOON_ID_MAX + 1, "%s", id); /* the sandbox last */
	if ((r = mkdir_p(o->image_path, 0700, err)) < 0)
		return r;
	/* Frozen together, members first. */
	for (int i = 0; i < n && r == 0; i++) {
		_cleanup_free_ char *d = NULL;
		if ((r = container_load(g, ids[i], &d, &st, err)) == 0 &&
		    st.status == STATUS_RUNNING &&
		    (r = container_pause(g, ids[i], false, err)) == 0)
			paused[i] = true;
	}
	for (int i = 0; i < n && r == 0; i++) {
		struct checkpoint_options one = *o;
		_cleanup_free_ char *dest = NULL;
		if (asprintf(&dest, "%s/%s", o->image_path, ids[i]) < 0) {
			r = error_set(err, ENOMEM, "checkpoint");
			break;
		}
		one.image_path = dest;
		one.leave_running = true; /* stays paused: killed below, once all are safe */
		one.pod = false;
		if ((r = checkpoint_container(g, ids[i], &one, err)) < 0)
			error_wrap(err, "pod container %s", ids[i]);
	}
	if (r == 0)
		r = write_pod_json(g, id, o, ids, n, err);
	if (r < 0) {
		/* Nothing half-done: the images go, the pod runs on. */
		for (int i = 0; i < n; i++)
			if (paused[i])
				(void)container_pause(
					g, ids[i], true,
					NULL);		/* best effort: the error is reported */
		(void)remove_tree(o->image_path, NULL); /* best effort: the error is reported */
		return r;
	}
	/* --leave-running: each goes on as it was before (one the engine had
	 * paused stays paused), as for one container. */
	for (int i = 0; i < n; i++)
		if (!o->leave_running || paused[i])
			checkpoint_thaw_or_kill(g, ids[i], !o->leave_running);
	return 0;
}
