/* The bundles of a pod checkpoint, as this host recorded them (pod-record.h). */
#include "pod-record.h"
#include "host-note.h"

#include <stdlib.h>
#include <string.h>

#define POD_RECORD_DIR "pods" /* the note's kind (host-note.h) */
#define POD_RECORD_MAX (256 * 1024)

int pod_record_write(const struct cocoon_config *cfg, const char *image_dir, json_object *bundles,
		     struct error **err)
{
	return host_checkpoint_note_write(cfg, POD_RECORD_DIR, image_dir, "bundles", bundles, err);
}

char *pod_record_bundle(const struct cocoon_config *cfg, const char *resolved_dir, const char *id)
{
	json_object *bundles = host_checkpoint_note_read(cfg, POD_RECORD_DIR, resolved_dir,
							 "bundles", POD_RECORD_MAX);
	json_object *b;
	char *out = NULL;
	if (bundles && json_object_object_get_ex(bundles, id, &b) &&
	    json_object_is_type(b, json_type_string) && json_object_get_string(b)[0] == '/')
		out = strdup(json_object_get_string(b));
	json_object_put(bundles);
	return out;
}
