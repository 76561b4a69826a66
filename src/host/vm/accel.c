/* Choosing between KVM and TCG.
 *
 * "auto" cannot trust the mere presence of /dev/kvm: on our CI hosts it is a
 * nested "PVM" KVM that opens fine but cannot run a stock guest kernel; QEMU
 * then spins at 100% system CPU forever. So the first "auto" boot probes: it
 * boots the real guest under KVM and waits a short while for the agent. A
 * working KVM answers in well under a second. The verdict is cached, keyed by
 * everything that could change it, so the probe is paid once per host.
 */
#include "accel.h"
#include "cleanup.h"
#include "log.h"
#include "paths.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>

static int probe_cache_key(const struct cocoon_config *cfg, char **key, struct error **err)
{
	_cleanup_free_ char *kernel = NULL, *initrd = NULL;
	struct utsname u;
	struct stat st = {0};

	int r = config_image_paths(cfg, &kernel, &initrd, err);
	if (r < 0)
		return r;
	uname(&u);
	stat(kernel, &st);
	if (asprintf(key, "host=%s qemu=%s kernel=%s@%lld", u.release, cfg->qemu, kernel,
		     (long long)st.st_mtime) < 0)
		return error_set(err, ENOMEM, "accel cache key");
	return 0;
}

int accel_resolve(const struct cocoon_config *cfg, char out[8], char **note,
		  accel_probe_fn probe_kvm, struct error **err)
{
	_cleanup_free_ char *key = NULL, *cache = NULL, *cached = NULL;

	if (strcmp(cfg->accel, "auto") != 0) {
		if (strcmp(cfg->accel, "kvm") == 0 && access("/dev/kvm", R_OK | W_OK) < 0)
			return error_set(err, errno, "accel = \"kvm\" but /dev/kvm is not usable");
		snprintf(out, 8, "%s", cfg->accel);
		return 0;
	}
	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		snprintf(out, 8, "tcg");
		if (note)
			*note = strdup("no usable /dev/kvm");
		return 0;
	}
	int r = probe_cache_key(cfg, &key, err);
	if (r < 0)
		return r;
	if (asprintf(&cache, "%s/accel-probe", cache_dir()) < 0)
		return error_set(err, ENOMEM, "accel");
	if (read_file_bounded(cache, 4096, &cached, NULL, NULL) == 0) {
		char *nl = strchr(cached, '\n');
		if (nl && (size_t)(nl - cached) == strlen(key) &&
		    strncmp(cached, key, strlen(key)) == 0) {
			bool kvm = strncmp(nl + 1, "kvm", 3) == 0;
			snprintf(out, 8, "%s", kvm ? "kvm" : "tcg");
			if (note && !kvm)
				*note = strdup("KVM cannot boot the guest here (cached probe)");
			return 0;
		}
	}

	bool works = false;
	_cleanup_free_ char *why = NULL;
	long long start = now_ms();
	r = probe_kvm(cfg, &works, &why, err);
	if (r < 0)
		return r;
	snprintf(out, 8, "%s", works ? "kvm" : "tcg");
	if (!works) {
		log_warning(
			"/dev/kvm is present but KVM cannot boot the guest (%s); falling back to TCG (probe took %lld ms, limit %d ms; result cached in %s)",
			why ? why : "no answer", now_ms() - start, ACCEL_PROBE_TIMEOUT_MS, cache);
		if (note)
			*note = strdup("KVM cannot boot the guest here (probed now)");
	}
	_cleanup_free_ char *line = NULL;
	if (asprintf(&line, "%s\n%s\n", key, out) >= 0 && mkdir_p(cache_dir(), 0755, NULL) == 0)
		(void)write_file_atomic(cache, line, strlen(line), 0644, NULL); /* a cache */
	return 0;
}

const char *accel_cpuinfo_path = "/proc/cpuinfo";

/* "key\t: value" of a cpuinfo line: value when the line is key's. */
static const char *cpuinfo_value(const char *line, const char *key)
{
	size_t n = strlen(key);
	if (strncmp(line, key, n) != 0)
		return NULL;
	const char *v = line + n + strspn(line + n, " \t"); /* "model" is not "model name" */
	if (*v != ':')
		return NULL;
	return v + 1 + strspn(v + 1, " \t");
}

int accel_host_cpu(FILE *out, struct error **err)
{
	static const char *const keys[] = {"vendor_id", "cpu family", "model",
					   "stepping",	"model name", "flags"};
	_cleanup_fclose_ FILE *f = fopen(accel_cpuinfo_path, "re");
	_cleanup_free_ char *line = NULL;
	char *val[ARRAY_SIZE(keys)] = {NULL};
	size_t cap = 0;

	if (!f)
		return error_set(err, errno, "%s", accel_cpuinfo_path);
	/* The first processor's block: up to its blank line. */
	while (getline(&line, &cap, f) > 0 && line[0] != '\n') {
		line[strcspn(line, "\n")] = 0;
		for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
			const char *v = cpuinfo_value(line, keys[i]);
			if (v && !val[i])
				val[i] = strdup(v);
		}
	}
	/* The features are what a saved guest depends on; a field a
	 * hypervisor leaves out of the rest is shown as "?". */
	int r = val[5] ? 0
		       : error_setx(err, EINVAL, "%s: no \"flags\" line for the first processor",
				    accel_cpuinfo_path);
	if (r == 0) {
		uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, 64 bits */
		int count = 0;
		for (const char *p = val[5]; *p; p++)
			h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
		for (const char *p = val[5] + strspn(val[5], " "); *p; p += strspn(p, " ")) {
			count++;
			p += strcspn(p, " ");
		}
		/* The model name is the host's text: nothing that ends or
		 * quotes the key's line. */
		for (char *p = val[4]; p && *p; p++)
			if ((unsigned char)*p < 0x20 || *p == '\'')
				*p = '?';
		fprintf(out,
			"host-cpu=%.64s family %.16s model %.16s stepping %.16s '%.128s' flags %d fnv1a %016llx\n",
			val[0] ? val[0] : "?", val[1] ? val[1] : "?", val[2] ? val[2] : "?",
			val[3] ? val[3] : "?", val[4] ? val[4] : "?", count, (unsigned long long)h);
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		free(val[i]);
	return r;
}
