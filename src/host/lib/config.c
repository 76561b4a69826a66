/* A hand-written parser for the TOML subset in docs/config.md. Debian has no
 * C TOML library (only C++ ones), and the subset we need is small: sections,
 * key = value, strings, integers, booleans, comments. Every error names the
 * file, the line and the key. */
#include "config.h"
#include "cleanup.h"
#include "paths.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

enum value_type { T_BOOL, T_INT, T_STRING };

struct key_def {
	const char *section;
	const char *key;
	enum value_type type;
	size_t offset;
	int64_t min, max;	    /* T_INT */
	const char *const *choices; /* T_STRING, NULL = free text */
};

static const char *const accel_choices[] = {"auto", "kvm", "tcg", NULL};
static const char *const fs_choices[] = {"9p", "virtiofs", NULL};
static const char *const mode_choices[] = {"criu", "vm", NULL};

#define OFF(f) offsetof(struct cocoon_config, f)
static const struct key_def keys[] = {
	{"runtime", "enable_checkpoint", T_BOOL, OFF(enable_checkpoint), 0, 0, NULL},
	{"runtime", "enable_debug", T_BOOL, OFF(enable_debug), 0, 0, NULL},
	{"runtime", "guest_criu_path", T_STRING, OFF(guest_criu_path), 0, 0, NULL},
	{"runtime", "guest_checkpoint_dir", T_STRING, OFF(guest_checkpoint_dir), 0, 0, NULL},
	{"runtime", "host_checkpoint_dir", T_STRING, OFF(host_checkpoint_dir), 0, 0, NULL},
	{"runtime", "criu_config", T_STRING, OFF(criu_config), 0, 0, NULL},
	{"runtime", "checkpoint_mode", T_STRING, OFF(checkpoint_mode), 0, 0, mode_choices},
	{"vm", "kernel", T_STRING, OFF(kernel), 0, 0, NULL},
	{"vm", "initrd", T_STRING, OFF(initrd), 0, 0, NULL},
	{"vm", "qemu", T_STRING, OFF(qemu), 0, 0, NULL},
	{"vm", "accel", T_STRING, OFF(accel), 0, 0, accel_choices},
	{"vm", "shared_fs", T_STRING, OFF(shared_fs), 0, 0, fs_choices},
	{"vm", "rootfs_fs", T_STRING, OFF(rootfs_fs), 0, 0, fs_choices},
	{"vm", "memory_mib", T_INT, OFF(memory_mib), 128, 65536, NULL},
	{"vm", "vcpus", T_INT, OFF(vcpus), 1, 64, NULL},
	{"vm", "max_memory_mib", T_INT, OFF(max_memory_mib), 128, 1 << 22, NULL},
	{"vm", "max_vcpus", T_INT, OFF(max_vcpus), 1, 256, NULL},
	{"vm", "boot_timeout_ms", T_INT, OFF(boot_timeout_ms), 500, 600000, NULL},
	{"vm", "template", T_BOOL, OFF(vm_template), 0, 0, NULL},
	{"vm", "template_dir", T_STRING, OFF(template_dir), 0, 0, NULL},
	{"vm", "snapshot_qemu", T_STRING, OFF(snapshot_qemu), 0, 0, NULL},
	{"vm", "snapshot_virtiofsd", T_STRING, OFF(snapshot_virtiofsd), 0, 0, NULL},
	/* 0: vm.state as QEMU wrote it; 1-19 (vmsnap-zstd.h): vm.state.zst. */
	{"vm", "snapshot_zstd_level", T_INT, OFF(snapshot_zstd_level), 0, 19, NULL},
	{"limits", "checkpoint_max_bytes", T_INT, OFF(checkpoint_max_bytes), 1 << 20, INT64_MAX,
	 NULL},
	{"limits", "checkpoint_max_files", T_INT, OFF(checkpoint_max_files), 16, 1000000, NULL},
	{"limits", "verify_timeout_ms", T_INT, OFF(verify_timeout_ms), 100, 3600000, NULL},
	{"limits", "console_log_max_bytes", T_INT, OFF(console_log_max_bytes), 4096, INT64_MAX,
	 NULL},
	{"limits", "shared_max_bytes", T_INT, OFF(shared_max_bytes), 0, INT64_MAX, NULL},
	{"limits", "channel_send_timeout_ms", T_INT, OFF(channel_send_timeout_ms), 100, 3600000,
	 NULL},
	/* At least three of the agent's beats (guest CKPT_PROGRESS_MS). */
	{"limits", "checkpoint_silence_ms", T_INT, OFF(checkpoint_silence_ms), 3000, 3600000, NULL},
	/* Above the shim's high-water mark (1 MiB) by what may still be on
	 * the way when it asks the agent to hold (shim-output.h). At most
	 * 64 MiB: a shim holds up to 2 (1 + SHIM_MAX_EXECS) = 34 such queues
	 * (2176 MiB at this bound; 34 GiB at the 1 GiB it was, review10 10). */
	{"limits", "output_queue_max_bytes", T_INT, OFF(output_queue_max_bytes), 4 << 20, 64 << 20,
	 NULL},
};

static void set_string(char **field, const char *value)
{
	free(*field);
	*field = strdup(value);
}

void config_init_defaults(struct cocoon_config *c)
{
	memset(c, 0, sizeof(*c));
	c->enable_checkpoint = true;
	set_string(&c->guest_criu_path, COCOON_GUEST_CRIU);
	set_string(&c->guest_checkpoint_dir, COCOON_GUEST_CKPT_DIR);
	set_string(&c->host_checkpoint_dir, "/var/lib/cocoon/checkpoints");
	set_string(&c->criu_config, "/etc/cocoon/criu.conf");
	set_string(&c->qemu, "qemu-system-x86_64");
	set_string(&c->accel, "auto");
	set_string(&c->shared_fs, "9p");
	set_string(&c->rootfs_fs, "9p");
	set_string(&c->checkpoint_mode, "criu");
	set_string(&c->snapshot_qemu, "");
	/* Where Debian 13's virtiofsd package puts it. */
	set_string(&c->snapshot_virtiofsd, "/usr/libexec/virtiofsd");
	c->memory_mib = 512;
	c->vcpus = 1;
	/* A container may ask for a larger VM, up to the host's size. */
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE),
	     online = sysconf(_SC_NPROCESSORS_ONLN);
	c->max_memory_mib = pages > 0 && page > 0 ? (int64_t)pages * page >> 20 : 65536;
	c->max_vcpus = online > 0 ? online : 1;
	c->boot_timeout_ms = 60000;
	c->vm_template = false;
	c->checkpoint_max_bytes = 64LL << 30;
	c->checkpoint_max_files = 20000;
	c->verify_timeout_ms = 300000;
	c->console_log_max_bytes = 16 << 20;
	c->channel_send_timeout_ms = 10000; /* AGENT_SEND_TIMEOUT_MS */
	c->checkpoint_silence_ms = 30000;
	c->output_queue_max_bytes = 16 << 20;
}

void config_free(struct cocoon_config *c)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (keys[i].type == T_STRING)
			free(*(char **)((char *)c + keys[i].offset));
	free(c->source);
	memset(c, 0, sizeof(*c));
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

/* Parses a basic string starting at the opening quote; *rest points after the
 * closing quote. Returns NULL with *why set on error. */
static char *parse_string(const char *p, const char **rest, const char **why)
{
	_cleanup_free_ char *out = malloc(strlen(p) + 1);
	size_t n = 0;

	if (!out) {
		*why = "out of memory";
		return NULL;
	}
	for (p++; *p && *p != '"'; p++) {
		if ((unsigned char)*p < 0x20) {
			*why = "control character in string";
			return NULL;
		}
		if (*p != '\\') {
			out[n++] = *p;
			continue;
		}
		switch (*++p) {
		case '"':
		case '\\':
			out[n++] = *p;
			break;
		case 'n':
			out[n++] = '\n';
			break;
		case 't':
			out[n++] = '\t';
			break;
		default:
			*why = "unsupported escape in string (only \\\" \\\\ \\n \\t)";
			return NULL;
		}
	}
	if (*p != '"') {
		*why = "unterminated string";
		return NULL;
	}
	out[n] = 0;
	*rest = p + 1;
	return TAKE_PTR(out);
}

/* After a value only whitespace or a comment may follow. */
static bool only_comment(const char *p)
{
	p += strspn(p, " \t");
	return *p == 0 || *p == '#';
}

static int parse_value(struct cocoon_config *c, const struct key_def *k, const char *v,
		       const char *where, struct error **err)
{
	void *field = (char *)c + k->offset;
	const char *why = NULL, *rest = NULL;

	switch (k->type) {
	case T_BOOL: {
		size_t tok = strcspn(v, " \t#");
		bool rest_ok = only_comment(v + tok);
		if (rest_ok && tok == 4 && memcmp(v, "true", 4) == 0)
			*(bool *)field = true;
		else if (rest_ok && tok == 5 && memcmp(v, "false", 5) == 0)
			*(bool *)field = false;
		else
			return error_setx(err, EINVAL,
					  "%s: %s.%s: expected a boolean (true or false)", where,
					  k->section, k->key);
		return 0;
	}
	case T_INT: {
		char *end = NULL;
		errno = 0;
		long long n = strtoll(v, &end, 10);
		if (end == v || errno || !only_comment(end) ||
		    (!isdigit((unsigned char)*v) && *v != '-' && *v != '+'))
			return error_setx(err, EINVAL, "%s: %s.%s: expected an integer", where,
					  k->section, k->key);
		if (n < k->min || n > k->max)
			return error_setx(
				err, ERANGE, "%s: %s.%s: %lld is out of range [%lld, %lld]", where,
				k->section, k->key, n, (long long)k->min, (long long)k->max);
		*(int64_t *)field = n;
		return 0;
	}
	case T_STRING: {
		if (*v != '"')
			return error_setx(err, EINVAL,
					  "%s: %s.%s: expected a string in double quotes", where,
					  k->section, k->key);
		_cleanup_free_ char *s = parse_string(v, &rest, &why);
		if (!s)
			return error_setx(err, EINVAL, "%s: %s.%s: %s", where, k->section, k->key,
					  why);
		if (!only_comment(rest))
			return error_setx(err, EINVAL,
					  "%s: %s.%s: unexpected text after the string", where,
					  k->section, k->key);
		if (k->choices) {
			bool ok = false;
			char accepted[128] = "";
			for (const char *const *ch = k->choices; *ch; ch++) {
				ok |= strcmp(*ch, s) == 0;
				size_t used = strlen(accepted);
				snprintf(accepted + used, sizeof(accepted) - used, "%s\"%s\"",
					 used ? ", " : "", *ch);
			}
			if (!ok)
				return error_setx(err, EINVAL, "%s: %s.%s: \"%s\" is not one of %s",
						  where, k->section, k->key, s, accepted);
		}
		free(*(char **)field);
		*(char **)field = TAKE_PTR(s);
		return 0;
	}
	}
	return -EINVAL;
}

int config_parse_string(struct cocoon_config *c, const char *name, const char *text,
			struct error **err)
{
	_cleanup_free_ char *copy = strdup(text);
	char section[64] = "";
	bool seen[ARRAY_SIZE(keys)] = {false};
	unsigned lineno = 0;
	char *save = NULL;

	if (!copy)
		return error_set(err, ENOMEM, "%s", name);
	/* strtok_r would merge empty lines and lose the numbering. */
	for (char *line = copy; line; line = save) {
		char where[512];
		save = strchr(line, '\n');
		if (save)
			*save++ = 0;
		lineno++;
		snprintf(where, sizeof(where), "%s:%u", name, lineno);

		char *p = trim(line);
		if (*p == 0 || *p == '#')
			continue;
		if (*p == '[') {
			char *close = strchr(p, ']');
			if (!close || !only_comment(close + 1))
				return error_setx(err, EINVAL, "%s: malformed section header",
						  where);
			*close = 0;
			char *sname = trim(p + 1);
			if (strcmp(sname, "runtime") != 0 && strcmp(sname, "vm") != 0 &&
			    strcmp(sname, "limits") != 0)
				return error_setx(
					err, EINVAL,
					"%s: unknown section [%s] (known: [runtime], [vm], [limits])",
					where, sname);
			snprintf(section, sizeof(section), "%s", sname);
			continue;
		}
		char *eq = strchr(p, '=');
		if (!eq)
			return error_setx(err, EINVAL, "%s: expected 'key = value'", where);
		*eq = 0;
		char *key = trim(p), *value = trim(eq + 1);
		if (*key == 0)
			return error_setx(err, EINVAL, "%s: missing key before '='", where);
		if (!*section)
			return error_setx(err, EINVAL,
					  "%s: key '%s' outside a section ([runtime] or [vm])",
					  where, key);
		size_t i = 0;
		while (i < ARRAY_SIZE(keys) &&
		       (strcmp(keys[i].section, section) != 0 || strcmp(keys[i].key, key) != 0))
			i++;
		if (i == ARRAY_SIZE(keys))
			return error_setx(err, EINVAL, "%s: unknown key '%s.%s'", where, section,
					  key);
		if (seen[i])
			return error_setx(err, EINVAL, "%s: duplicate key '%s.%s'", where, section,
					  key);
		seen[i] = true;
		if (*value == 0)
			return error_setx(err, EINVAL, "%s: %s.%s: missing value", where, section,
					  key);
		int r = parse_value(c, &keys[i], value, where, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int config_load(struct cocoon_config *c, const char *explicit_path, struct error **err)
{
	const char *env = getenv(CONFIG_ENV);
	const char *path =
		explicit_path ? explicit_path : (env && *env ? env : CONFIG_DEFAULT_PATH);
	bool optional = !explicit_path && !(env && *env);
	_cleanup_free_ char *text = NULL;

	config_init_defaults(c);
	int r = read_file_bounded(path, 1024 * 1024, &text, NULL, err);
	if (r == -ENOENT && optional) {
		error_free(err);
		return 0;
	}
	if (r < 0)
		return error_wrap(err, "config");
	c->source = strdup(path);
	return config_parse_string(c, path, text, err);
}

int config_image_paths(const struct cocoon_config *cfg, char **kernel, char **initrd,
		       struct error **err)
{
	_cleanup_free_ char *k = NULL, *i = NULL;

	if (asprintf(&k, "%s", cfg->kernel ? cfg->kernel : "") < 0 ||
	    asprintf(&i, "%s", cfg->initrd ? cfg->initrd : "") < 0)
		return error_set(err, ENOMEM, "image paths");
	if (!cfg->kernel) {
		free(k);
		if (asprintf(&k, "%s/image/vmlinux", cache_dir()) < 0)
			return error_set(err, ENOMEM, "image paths");
	}
	if (!cfg->initrd) {
		free(i);
		if (asprintf(&i, "%s/image/initrd.img", cache_dir()) < 0)
			return error_set(err, ENOMEM, "image paths");
	}
	if (access(k, R_OK) < 0)
		return error_set(err, errno, "guest kernel %s (run 'cocoon image build')", k);
	if (access(i, R_OK) < 0)
		return error_set(err, errno, "guest initrd %s (run 'cocoon image build')", i);
	*kernel = TAKE_PTR(k);
	*initrd = TAKE_PTR(i);
	return 0;
}
