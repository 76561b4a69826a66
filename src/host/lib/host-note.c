/* This host's notes about its checkpoint directories (host-note.h). */
#include "host-note.h"
#include "cleanup.h"
#include "paths.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

char *host_checkpoint_note_path(const struct cocoon_config *cfg, const char *kind, const char *real)
{
	char *path;
	if (asprintf(&path, "%s/%s/%016llx.json", cfg->host_checkpoint_dir, kind,
		     (unsigned long long)XXH3_64bits(real, strlen(real))) < 0)
		return NULL;
	return path;
}

int host_checkpoint_note_write(const struct cocoon_config *cfg, const char *kind,
			       const char *image_dir, const char *key, json_object *value,
			       struct error **err)
{
	char real[PATH_MAX];
	_cleanup_free_ char *dir = NULL, *path = NULL;
	if (!realpath(image_dir, real))
		return error_set(err, errno, "%s", image_dir);
	if (asprintf(&dir, "%s/%s", cfg->host_checkpoint_dir, kind) < 0 ||
	    !(path = host_checkpoint_note_path(cfg, kind, real)))
		return error_set(err, ENOMEM, "this host's note (%s) of %s", kind, real);
	if (!value) {
		if (unlink(path) < 0 && errno != ENOENT)
			return error_set(err, errno, "%s", path);
		return 0;
	}
	int r = mkdir_p(dir, 0700, err);
	if (r < 0)
		return r;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "image_path", json_object_new_string(real));
	json_object_object_add(o, key, json_object_get(value));
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	r = write_file_atomic(path, text, strlen(text), 0600, err);
	json_object_put(o);
	return r;
}

json_object *host_checkpoint_note_read(const struct cocoon_config *cfg, const char *kind,
				       const char *resolved_dir, const char *key, size_t max)
{
	_cleanup_free_ char *path = host_checkpoint_note_path(cfg, kind, resolved_dir),
			    *text = NULL;
	json_object *o, *v, *out = NULL;
	if (!path || read_file_bounded(path, max, &text, NULL, NULL) < 0 ||
	    !(o = json_tokener_parse(text)))
		return NULL;
	if (json_object_object_get_ex(o, "image_path", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    strcmp(json_object_get_string(v), resolved_dir) == 0 &&
	    json_object_object_get_ex(o, key, &v))
		out = json_object_get(v);
	json_object_put(o);
	return out;
}
