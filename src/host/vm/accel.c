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
