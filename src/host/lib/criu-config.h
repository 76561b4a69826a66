/* The user's CRIU settings (cocoon's criu.conf, the org.criu.config
 * annotation), checked and carried into the guest's CRIU run. */
#pragma once

#include "error.h"
#include "proto.h"

#define CRIU_CONFIG_DEFAULT_PATH "/etc/cocoon/criu.conf"
#define CRIU_CONFIG_ANNOTATION "org.criu.config"

/* Fills o->config from the annotation of bundle's config.json when it has
 * one, else from default_path when that file exists. */
int criu_config_collect(const char *default_path, const char *bundle, Cocoon__CriuOptions *o,
			struct error **err);
/* Parses CRIU config text (named file in errors) into o->config. */
int criu_config_parse(const char *text, const char *file, Cocoon__CriuOptions *o,
		      struct error **err);
void criu_config_free(Cocoon__CriuOptions *o);
