/* config.json's process object (spec-process.c). */
#pragma once

#include "spec-json.h"

/* Parses a process object (exec --process, or the "process" member). */
int spec_parse_process_file(const char *path, Cocoon__ProcessSpec **out, struct error **err);
void spec_process_free(Cocoon__ProcessSpec *p);
/* The "process" member PROC of config.json into *OUT (spec_process_free);
 * warnings go to B. Returns 0 or a negative errno with *ERR set. */
int spec_parse_process(json_object *proc, Cocoon__ProcessSpec **out, struct oci_bundle *b,
		       struct error **err);
