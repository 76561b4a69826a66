/* config.json's process object (the container's, or exec --process):
 * args, env, cwd, user, rlimits, terminal, and its confinement through
 * spec-confine.c (spec-process.h). */
#include "spec-process.h"
#include "spec-bundle.h"
#include "spec-confine.h"
#include "cleanup.h"
#include "log.h"
#include "paths.h"

#include <json-c/json.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

void spec_process_free(Cocoon__ProcessSpec *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_args; i++)
		free(p->args[i]);
	free(p->args);
	for (size_t i = 0; i < p->n_env; i++)
		free(p->env[i]);
	free(p->env);
	spec_free_pb_string(p->cwd);
	free(p->additional_gids);
	for (size_t i = 0; i < p->n_rlimits; i++) {
		spec_free_pb_string(p->rlimits[i]->type);
		free(p->rlimits[i]);
	}
	free(p->rlimits);
	free(p->capabilities);
	free(p->console_size);
	free(p);
}

/* process.consoleSize {height, width}: the terminal's rows and columns at
 * start (runtime-spec config.md). struct winsize holds unsigned shorts, so
 * a side over 65535 is an error; a zero side means "not set", as runc
 * treats it. */
static int parse_console_size(json_object *proc, Cocoon__ProcessSpec *p, struct error **err)
{
	json_object *box = spec_json_member(proc, "consoleSize");
	uint64_t h = 0, w = 0;
	int r;
	if (!box)
		return 0;
	if ((r = spec_json_want_type(box, json_type_object, "process.consoleSize", err)) < 0 ||
	    (r = spec_json_uint(box, "height", "process.consoleSize.height", 65535, &h, err)) < 0 ||
	    (r = spec_json_uint(box, "width", "process.consoleSize.width", 65535, &w, err)) < 0)
		return r;
	if (h == 0 || w == 0)
		return 0;
	if (!(p->console_size = calloc(1, sizeof(*p->console_size))))
		return error_set(err, ENOMEM, "config.json");
	cocoon__console_size__init(p->console_size);
	p->console_size->rows = (uint32_t)h;
	p->console_size->cols = (uint32_t)w;
	return 0;
}

/* The limits getrlimit(2) knows on Linux: the runtime spec makes any other
 * an error ("MUST generate an error for any values which cannot be mapped
 * to a relevant kernel interface"), and so does a type given twice. */
static bool rlimit_known(const char *type)
{
	static const char *const names[] = {
		"RLIMIT_AS",	 "RLIMIT_CORE",	  "RLIMIT_CPU",	       "RLIMIT_DATA",
		"RLIMIT_FSIZE",	 "RLIMIT_LOCKS",  "RLIMIT_MEMLOCK",    "RLIMIT_MSGQUEUE",
		"RLIMIT_NICE",	 "RLIMIT_NOFILE", "RLIMIT_NPROC",      "RLIMIT_RSS",
		"RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(type, names[i]) == 0)
			return true;
	return false;
}

static int parse_rlimits(json_object *proc, Cocoon__ProcessSpec *p, struct error **err)
{
	json_object *v = spec_json_member(proc, "rlimits");
	int r = spec_json_want_type(v, json_type_array, "process.rlimits", err);
	if (r < 0 || !v)
		return r;
	size_t len = json_object_array_length(v);
	if (len > 32)
		return error_setx(err, E2BIG, "config.json: process.rlimits: too many entries");
	p->rlimits = calloc(len ? len : 1, sizeof(*p->rlimits));
	if (!p->rlimits)
		return error_set(err, ENOMEM, "config.json");
	for (size_t i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(v, i);
		char field[64];
		Cocoon__Rlimit *rl = calloc(1, sizeof(*rl));
		if (!rl)
			return error_set(err, ENOMEM, "config.json");
		cocoon__rlimit__init(rl);
		p->rlimits[p->n_rlimits++] = rl;
		snprintf(field, sizeof(field), "process.rlimits[%zu].type", i);
		if ((r = spec_json_string(e, "type", field, true, &rl->type, err)) < 0)
			return r;
		if (!rlimit_known(rl->type))
			return error_setx(err, EINVAL, "config.json: %s: unknown limit '%.64s'",
					  field, rl->type);
		for (size_t j = 0; j < i; j++)
			if (strcmp(p->rlimits[j]->type, rl->type) == 0)
				return error_setx(err, EINVAL,
						  "config.json: %s: %s is set twice (also in "
						  "process.rlimits[%zu])",
						  field, rl->type, j);
		snprintf(field, sizeof(field), "process.rlimits[%zu].hard", i);
		if (!spec_json_member(e, "hard"))
			return error_setx(err, EINVAL, "config.json: %s is required", field);
		if ((r = spec_json_uint(e, "hard", field, UINT64_MAX, &rl->hard, err)) < 0)
			return r;
		snprintf(field, sizeof(field), "process.rlimits[%zu].soft", i);
		if (!spec_json_member(e, "soft"))
			return error_setx(err, EINVAL, "config.json: %s is required", field);
		if ((r = spec_json_uint(e, "soft", field, UINT64_MAX, &rl->soft, err)) < 0)
			return r;
		/* setrlimit(2) refuses it (EINVAL): say so before a VM boots. */
		if (rl->soft > rl->hard)
			return error_setx(
				err, EINVAL,
				"config.json: process.rlimits[%zu] (%s): soft %llu is above "
				"hard %llu",
				i, rl->type, (unsigned long long)rl->soft,
				(unsigned long long)rl->hard);
	}
	return 0;
}

/* process.oomScoreAdj (runtime-spec config.md: "adjusts the oom-killer
 * score in [pid]/oom_score_adj for the process's [pid] in a proc pseudo-
 * filesystem"). The kernel takes -1000..1000 (proc(5)) and refuses the
 * rest with EINVAL; say so at create, before a VM boots, naming the value. */
static int parse_oom_score_adj(json_object *proc, Cocoon__ProcessSpec *p, struct error **err)
{
	int64_t v = 0;
	if (!spec_json_member(proc, "oomScoreAdj"))
		return 0;
	int r = spec_json_int(proc, "oomScoreAdj", "process.oomScoreAdj", &v, err);
	if (r < 0)
		return r;
	if (v < -1000 || v > 1000)
		return error_setx(err, ERANGE,
				  "config.json: process.oomScoreAdj %lld is outside the kernel's "
				  "range -1000..1000 (proc(5), oom_score_adj)",
				  (long long)v);
	p->has_oom_score_adj = true;
	p->oom_score_adj = (int32_t)v;
	return 0;
}

int spec_parse_process(json_object *proc, Cocoon__ProcessSpec **out, struct oci_bundle *b,
		       struct error **err)
{
	Cocoon__ProcessSpec *p = calloc(1, sizeof(*p));
	uint64_t v;
	int r;

	if (!p)
		return error_set(err, ENOMEM, "config.json");
	cocoon__process_spec__init(p);
	*out = p;
	if ((r = spec_json_want_type(proc, json_type_object, "process", err)) < 0)
		return r;
	if ((r = spec_json_string_array(proc, "args", "process.args", &p->args, &p->n_args, err)) <
	    0)
		return r;
	if (p->n_args == 0 || !*p->args[0])
		return error_setx(err, EINVAL, "config.json: process.args must not be empty");
	if ((r = spec_json_string_array(proc, "env", "process.env", &p->env, &p->n_env, err)) < 0)
		return r;
	for (size_t i = 0; i < p->n_env; i++)
		if (!strchr(p->env[i], '='))
			return error_setx(err, EINVAL,
					  "config.json: process.env[%zu]: '%s' is not NAME=VALUE",
					  i, p->env[i]);
	if ((r = spec_json_string(proc, "cwd", "process.cwd", false, &p->cwd, err)) < 0)
		return r;
	if (!p->cwd)
		p->cwd = strdup("/");
	if (p->cwd[0] != '/')
		return error_setx(err, EINVAL, "config.json: process.cwd '%s' must be absolute",
				  p->cwd);
	json_object *user = spec_json_member(proc, "user");
	if ((r = spec_json_want_type(user, json_type_object, "process.user", err)) < 0)
		return r;
	v = 0;
	if ((r = spec_json_uint(user, "uid", "process.user.uid", UINT32_MAX - 1, &v, err)) < 0)
		return r;
	p->uid = (uint32_t)v;
	v = 0;
	if ((r = spec_json_uint(user, "gid", "process.user.gid", UINT32_MAX - 1, &v, err)) < 0)
		return r;
	p->gid = (uint32_t)v;
	json_object *gids = spec_json_member(user, "additionalGids");
	if ((r = spec_json_want_type(gids, json_type_array, "process.user.additionalGids", err)) <
	    0)
		return r;
	size_t ng = gids ? json_object_array_length(gids) : 0;
	if (ng > 64)
		return error_setx(err, E2BIG,
				  "config.json: process.user.additionalGids: at most 64");
	p->additional_gids = calloc(ng ? ng : 1, sizeof(uint32_t));
	for (size_t i = 0; i < ng && p->additional_gids; i++) {
		json_object *g = json_object_array_get_idx(gids, i);
		if (!json_object_is_type(g, json_type_int) || json_object_get_int64(g) < 0)
			return error_setx(
				err, EINVAL,
				"config.json: process.user.additionalGids[%zu]: expected a gid", i);
		p->additional_gids[p->n_additional_gids++] = (uint32_t)json_object_get_int64(g);
	}
	if (spec_json_member(user, "username"))
		spec_warn(b, "process.user.username is not supported (Windows only); ignored");
	if ((r = spec_json_bool(proc, "terminal", "process.terminal", &p->terminal, err)) < 0)
		return r;
	if ((r = parse_console_size(proc, p, err)) < 0)
		return r;
	if ((r = spec_json_bool(proc, "noNewPrivileges", "process.noNewPrivileges",
				&p->no_new_privileges, err)) < 0)
		return r;
	if ((r = parse_rlimits(proc, p, err)) < 0)
		return r;
	if ((r = spec_parse_capabilities(proc, p, b, err)) < 0)
		return r;
	if ((r = parse_oom_score_adj(proc, p, err)) < 0)
		return r;
	/* Not applied inside the VM. */
	static const char *const unapplied[] = {"apparmorProfile", "selinuxLabel", "ioPriority",
						"scheduler"};
	for (size_t i = 0; i < ARRAY_SIZE(unapplied); i++)
		if (spec_json_member(proc, unapplied[i]))
			spec_warn(b, "process.%s is not applied inside the VM; ignored",
				  unapplied[i]);
	return 0;
}

int spec_parse_process_file(const char *path, Cocoon__ProcessSpec **out, struct error **err)
{
	_cleanup_free_ char *text = NULL;
	struct oci_bundle dummy = {0};
	int r = read_file_bounded(path, SPEC_MAX_BYTES, &text, NULL, err);
	if (r < 0)
		return r;
	_cleanup_json_ json_object *root = json_tokener_parse(text);
	if (!root)
		return error_setx(err, EINVAL, "%s: not valid JSON", path);
	r = spec_parse_process(root, out, &dummy, err);
	for (size_t i = 0; i < dummy.n_warnings; i++) {
		log_warning("%s: %s", path, dummy.warnings[i]);
		free(dummy.warnings[i]);
	}
	free(dummy.warnings);
	return r;
}
