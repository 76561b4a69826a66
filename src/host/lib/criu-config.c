/* The settings users give CRIU, carried to the CRIU that runs in the guest.
 *
 * As runc reads /etc/criu/runc.conf, or the file the org.criu.config
 * annotation names (an empty annotation: none), cocoon reads
 * /etc/cocoon/criu.conf ([runtime] criu_config) or that annotation's file.
 * It is a CRIU configuration file: one option per line, "name value" without
 * the dashes, "#" comments. Each option is checked here: those that work in
 * the VM go to the guest as lines of the run's CRIU config file
 * (src/guest/criu-conf.c); those that name host paths, processes or network
 * endpoints, or that cocoon sets itself, are refused with the reason. */
#include "criu-config.h"
#include "cleanup.h"
#include "paths.h"

#include <json-c/json.h>
#include <string.h>
#include <sys/stat.h>

#define CRIU_CONFIG_MAX_BYTES (64 * 1024)
#define CRIU_CONFIG_MAX_LINES 64

/* Options that behave the same inside the VM, with the kind of argument
 * CRIU 3.17 gives each in its getopt table (criu/config.c, long_opts).
 * CRIU reads a config file line by line into one argument vector: the
 * first word of a line becomes "--word" and every further word an
 * argument of its own (parse_statement). So a value is one word, an option
 * without an argument has none (a word after it would be read as the next
 * option: "tcp-established --page-server"), one with a required argument
 * has one (else it takes the next line's option as its value), and one
 * with an optional argument gets it joined by '=', the only way getopt
 * attaches an optional argument. */
enum arg_kind { ARG_NONE, ARG_REQUIRED, ARG_OPTIONAL };
static const struct {
	const char *name;
	enum arg_kind arg;
} allowed[] = {
	{"ghost-limit", ARG_REQUIRED},
	{"tcp-established", ARG_NONE},
	{"tcp-close", ARG_NONE},
	{"skip-in-flight", ARG_NONE},
	{"ext-unix-sk", ARG_OPTIONAL},
	{"shell-job", ARG_NONE},
	{"file-locks", ARG_NONE},
	{"link-remap", ARG_NONE},
	{"evasive-devices", ARG_NONE},
	{"force-irmap", ARG_NONE},
	{"verbosity", ARG_OPTIONAL},
	{"timeout", ARG_REQUIRED},
	{"weak-sysctls", ARG_NONE},
	{"file-validation", ARG_REQUIRED},
	{"enable-fs", ARG_REQUIRED},
	{"auto-dedup", ARG_NONE},
	{"display-stats", ARG_NONE},
	{"enable-external-masters", ARG_NONE},
	{"enable-external-sharing", ARG_NONE},
};

/* Refused, with why. */
static const struct {
	const char *name;
	const char *why;
} refused[] = {
	{"images-dir", "cocoon chooses where images go (--image-path)"},
	{"work-dir",
	 "cocoon chooses CRIU's work directory in the guest (--work-path is on the host)"},
	{"prev-images-dir", "use --parent-path"},
	{"log-file", "CRIU's log is kept by cocoon (dump.log, restore.log)"},
	{"output", "CRIU's log is kept by cocoon (dump.log, restore.log)"},
	{"root", "the container's root is set up by cocoon in the guest"},
	{"pidfile", "cocoon reads the restored pid itself"},
	{"tree", "cocoon dumps the container's init"},
	{"freeze-cgroup", "cocoon freezes the container's cgroup in the guest"},
	{"cgroup-root", "host cgroup paths do not exist in the guest"},
	{"manage-cgroups", "the guest's cgroups are cocoon's"},
	{"external", "host paths and devices do not exist in the guest"},
	{"inherit-fd", "host file descriptors cannot cross into the VM"},
	{"action-script", "a host script cannot run in the guest"},
	{"exec-cmd", "a host command cannot run in the guest"},
	{"lib", "CRIU plugins from the host cannot run in the guest"},
	{"page-server", "CRIU runs in the VM; the host's network is not reachable from it"},
	{"address", "CRIU runs in the VM; the host's network is not reachable from it"},
	{"port", "CRIU runs in the VM; the host's network is not reachable from it"},
	{"lazy-pages", "lazy restore needs a page server on the host side of the VM"},
	{"status-fd", "host file descriptors cannot cross into the VM"},
	{"join-ns", "namespaces of the host do not exist in the guest"},
	{"veth-pair", "the container's network is set up by cocoon in the guest"},
	{"leave-running", "use cocoon checkpoint --leave-running"},
	{"leave-stopped", "cocoon decides what happens to the container after a dump"},
	{"restore-detached", "cocoon restores detached"},
	{"restore-sibling", "cocoon restores detached"},
	{"network-lock", "cocoon locks the container's network itself"},
	{"track-mem", "cocoon uses --pre-dump for that"},
	{"config", "a config file cannot include another"},
	{"no-default-config", "cocoon's guest has no other CRIU config"},
	{"tls", "CRIU runs in the VM with no page server"},
	{"tls-cacert", "CRIU runs in the VM with no page server"},
	{"tls-cert", "CRIU runs in the VM with no page server"},
	{"tls-key", "CRIU runs in the VM with no page server"},
	{"lsm-profile", "no LSM runs in the guest"},
	{"lsm-mount-context", "no LSM runs in the guest"},
	/* Not options of the guest's CRIU 3.17 (its --help and option
	 * table): CRIU would stop before writing its log. */
	{"log-level", "the guest's CRIU 3.17 has no such option; use 'verbosity'"},
	{"v", "the guest's CRIU 3.17 reads only long options from a config file; use 'verbosity'"},
	{"tcp-skip-in-flight", "the guest's CRIU 3.17 has no such option; use 'skip-in-flight'"},
	{"skip-file-rwx-check", "the guest's CRIU 3.17 has no such option (CRIU 4.0 added it)"},
	{"ext-masters", "the guest's CRIU 3.17 has no such option; use 'enable-external-masters'"},
};

/* The line for the guest's CRIU config file: "name", "name value" or
 * "name=value", by the option's kind of argument (see allowed[]). */
static int option_line(const char *name, const char *value, enum arg_kind arg, const char *file,
		       int lineno, char **out, struct error **err)
{
	if (strpbrk(value, " \t"))
		return error_setx(
			err, EINVAL,
			"%s:%d: CRIU option '%s' takes one value, not '%s': CRIU would read each further word as an argument of its own",
			file, lineno, name, value);
	if (arg == ARG_NONE && *value)
		return error_setx(
			err, EINVAL,
			"%s:%d: CRIU option '%s' takes no value: CRIU would read '%s' as an argument of its own",
			file, lineno, name, value);
	if (arg == ARG_REQUIRED && !*value)
		return error_setx(
			err, EINVAL,
			"%s:%d: CRIU option '%s' needs a value: without one CRIU would take the next option as its value",
			file, lineno, name);
	int n = *value ? asprintf(out, "%s%c%s", name, arg == ARG_OPTIONAL ? '=' : ' ', value)
		       : asprintf(out, "%s", name);
	if (n < 0)
		return error_set(err, ENOMEM, "%s", file);
	return 0;
}

static int check_line(char *line, const char *file, int lineno, char **out, struct error **err)
{
	char *name = line;
	while (*name == ' ' || *name == '\t')
		name++;
	while (*name == '-')
		name++;
	size_t n = strcspn(name, " \t=");
	char *value = name + n;
	if (*value)
		*value++ = 0;
	while (*value == ' ' || *value == '\t' || *value == '=')
		value++;
	size_t vl = strlen(value);
	while (vl && (value[vl - 1] == ' ' || value[vl - 1] == '\t'))
		value[--vl] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++)
		if (strcmp(refused[i].name, name) == 0)
			return error_setx(err, EOPNOTSUPP,
					  "%s:%d: CRIU option '%s' cannot be used with cocoon: %s",
					  file, lineno, name, refused[i].why);
	size_t k = 0;
	while (k < ARRAY_SIZE(allowed) && strcmp(allowed[k].name, name) != 0)
		k++;
	if (k == ARRAY_SIZE(allowed))
		return error_setx(
			err, EOPNOTSUPP,
			"%s:%d: CRIU option '%s' is not supported by cocoon (CRIU runs inside the container's VM; docs/checkpoint-exact.md lists the options that work there)",
			file, lineno, name);
	if (strpbrk(value, "\"'\\"))
		return error_setx(
			err, EINVAL,
			"%s:%d: CRIU option '%s': quotes and backslashes are not supported", file,
			lineno, name);
	return option_line(name, value, allowed[k].arg, file, lineno, out, err);
}

int criu_config_parse(const char *text, const char *file, Cocoon__CriuOptions *o,
		      struct error **err)
{
	_cleanup_free_ char *copy = strdup(text);
	char *save = NULL;
	int lineno = 0;
	if (!copy)
		return error_set(err, ENOMEM, "%s", file);
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		line[strcspn(line, "#\r")] = 0;
		if (strspn(line, " \t") == strlen(line))
			continue;
		if (o->n_config >= CRIU_CONFIG_MAX_LINES)
			return error_setx(err, E2BIG, "%s: at most %d options", file,
					  CRIU_CONFIG_MAX_LINES);
		char **grown = realloc(o->config, (o->n_config + 1) * sizeof(char *));
		if (!grown)
			return error_set(err, ENOMEM, "%s", file);
		o->config = grown;
		char *entry = NULL;
		int r = check_line(line, file, lineno, &entry, err);
		if (r < 0)
			return r;
		o->config[o->n_config++] = entry;
	}
	return 0;
}

/* The annotation's value: 1 and *path set when present (possibly ""). */
static int annotation(const char *bundle, char **path, struct error **err)
{
	_cleanup_free_ char *file = NULL, *text = NULL;
	if (!bundle || asprintf(&file, "%s/config.json", bundle) < 0)
		return 0;
	if (read_file_bounded(file, 4 * 1024 * 1024, &text, NULL, NULL) < 0)
		return 0;
	json_object *root = json_tokener_parse(text), *ann = NULL, *v = NULL;
	int found = 0;
	if (root && json_object_object_get_ex(root, "annotations", &ann) &&
	    json_object_object_get_ex(ann, CRIU_CONFIG_ANNOTATION, &v)) {
		if (!json_object_is_type(v, json_type_string)) {
			json_object_put(root);
			return error_setx(err, EINVAL,
					  "config.json: annotation %s: expected a string",
					  CRIU_CONFIG_ANNOTATION);
		}
		*path = strdup(json_object_get_string(v));
		found = 1;
	}
	if (root)
		json_object_put(root);
	return found;
}

int criu_config_collect(const char *default_path, const char *bundle, Cocoon__CriuOptions *o,
			struct error **err)
{
	_cleanup_free_ char *from_annotation = NULL, *text = NULL;
	int r = annotation(bundle, &from_annotation, err);
	if (r < 0)
		return r;
	const char *path = r ? from_annotation : default_path;
	if (!path || !*path)
		return 0;
	struct stat st;
	if (!r && stat(path, &st) < 0 && errno == ENOENT)
		return 0; /* the default file is optional */
	if (read_file_bounded(path, CRIU_CONFIG_MAX_BYTES, &text, NULL, err) < 0)
		return error_wrap(err, "CRIU config%s",
				  from_annotation ? " (annotation " CRIU_CONFIG_ANNOTATION ")"
						  : "");
	return criu_config_parse(text, path, o, err);
}

void criu_config_free(Cocoon__CriuOptions *o)
{
	for (size_t i = 0; i < o->n_config; i++)
		free(o->config[i]);
	free(o->config);
	o->config = NULL;
	o->n_config = 0;
}
