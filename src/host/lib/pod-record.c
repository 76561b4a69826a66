/* The bundles of a pod checkpoint, as this host recorded them (pod-record.h). */
#include "pod-record.h"
#include "cleanup.h"
#include "paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define POD_RECORD_DIR "pods"
#define POD_RECORD_MAX (256 * 1024)

static char *record_path(const struct cocoon_config *cfg, const char *real)
{
	char *path;
	if (asprintf(&path, "%s/" POD_RECORD_DIR "/%016llx.json", cfg->host_checkpoint_dir,
		     (unsigned long long)XXH3_64bits(real, strlen(real))) < 0)
		return NULL;
	return path;
}

int pod_record_write(const struct cocoon_config *cfg, const char *image_dir, json_object *bundles,
		     struct error **err)
{
	char real[PATH_MAX];
	_cleanup_free_ char *dir = NULL, *path = NULL;
	if (!realpath(image_dir, real))
		return error_set(err, errno, "%s", image_dir);
	if (asprintf(&dir, "%s/" POD_RECORD_DIR, cfg->host_checkpoint_dir) < 0 ||
	    !(path = record_path(cfg, real)))
		return error_set(err, ENOMEM, "pod record");
	int r = mkdir_p(dir, 0700, err);
	if (r < 0)
		return r;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "image_path", json_object_new_string(real));
	json_object_object_add(o, "bundles", json_object_get(bundles));
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	r = write_file_atomic(path, text, strlen(text), 0600, err);
	json_object_put(o);
	return r;
}

char *pod_record_bundle(const struct cocoon_config *cfg, const char *resolved_dir, const char *id)
{
	_cleanup_free_ char *path = record_path(cfg, resolved_dir), *text = NULL;
	json_object *o, *v, *bundles, *b;
	char *out = NULL;
	if (!path || read_file_bounded(path, POD_RECORD_MAX, &text, NULL, NULL) < 0 ||
	    !(o = json_tokener_parse(text)))
		return NULL;
	if (json_object_object_get_ex(o, "image_path", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    strcmp(json_object_get_string(v), resolved_dir) == 0 &&
	    json_object_object_get_ex(o, "bundles", &bundles) &&
	    json_object_object_get_ex(bundles, id, &b) &&
	    json_object_is_type(b, json_type_string) && json_object_get_string(b)[0] == '/')
		out = strdup(json_object_get_string(b));
	json_object_put(o);
	return out;
}
