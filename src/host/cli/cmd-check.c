/* cocoon check: boots a VM and reports whether containers and checkpoints
 * can work on this host, naming every item that cannot (the probes are the
 * library's check.h). */
#include "accel.h"
#include "check.h"
#include "commands.h"
#include "cleanup.h"
#include "paths.h"
#include "sandbox.h"
#include "vmsnap.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct check_report {
	int failures;
};

static void row(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void row(const char *name, const char *fmt, ...)
{
	va_list ap;
	printf("  %-14s ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void fail(struct check_report *rep, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct check_report *rep, const char *name, const char *fmt, ...)
{
	va_list ap;
	printf("  %-14s FAIL: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	rep->failures++;
}

static void check_version(struct sandbox *sb, struct check_report *rep)
{
	_cleanup_error_ struct error *err = NULL;
	Cocoon__Response *resp = NULL;

	if (check_agent_version(sb, &resp, &err) < 0) {
		fail(rep, "agent", "%s", err->msg);
		return;
	}
	row("agent", "%s (protocol %u)", resp->version->agent_version, resp->version->protocol);
	cocoon__response__free_unpacked(resp, NULL);
}

/* What check_guest_info said (its text made safe for the terminal). */
static void check_guest(struct sandbox *sb, const struct cocoon_config *cfg,
			struct check_report *rep)
{
	_cleanup_error_ struct error *err = NULL;
	Cocoon__Response *resp = NULL;

	if (check_guest_info(sb, &resp, &err) < 0) {
		fail(rep, "guest info", "%s", err->msg);
		return;
	}
	Cocoon__GuestInfoReply *info = resp->guest_info;
	row("guest kernel", "%s", info->kernel_release);
	if (!*info->criu_version)
		fail(rep, "criu", "%s does not run in the guest (guest_criu_path)",
		     info->criu_path);
	else
		row("criu", "%s at %s", info->criu_version, info->criu_path);
	if (info->criu_check_ok && info->n_criu_check_lines == 0)
		row("criu check", "ok");
	else if (info->criu_check_ok)
		row("criu check", "ok, with warnings");
	else
		fail(rep, "criu check", "not clean");
	for (size_t i = 0; i < info->n_criu_check_lines; i++)
		printf("  %-14s   %s\n", "", info->criu_check_lines[i]);
	if (cfg->enable_debug && *info->criu_check_output)
		printf("--- criu check output ---\n%s---\n", info->criu_check_output);
	if (info->n_module_failures == 0)
		row("modules", "all loaded");
	for (size_t i = 0; i < info->n_module_failures; i++)
		fail(rep, "modules", "%s", info->module_failures[i]);
	if (!cfg->enable_checkpoint)
		row("checkpoint", "disabled by runtime.enable_checkpoint in %s",
		    cfg->source ? cfg->source : "the configuration");
	else if (info->criu_check_ok && *info->criu_version)
		row("checkpoint", "can work");
	else
		fail(rep, "checkpoint", "cannot work: CRIU in the guest is not usable (see above)");
	cocoon__response__free_unpacked(resp, NULL);
}

static void check_shared(struct sandbox *sb, struct check_report *rep, const char *fs)
{
	_cleanup_error_ struct error *err = NULL;
	if (check_shared_dir(sb, &err) < 0)
		fail(rep, "shared dir", "%s", err->msg);
	else
		row("shared dir", "ok (%s, read and write)", fs);
}

/* Whole-VM checkpoints (vmsnap.h): what the configured VMM can do. A
 * failure only when checkpoint_mode asks for them. */
static void check_vmsnap(const struct cocoon_config *cfg, struct check_report *rep)
{
	struct vmsnap_caps c;
	char why[1024];
	vmsnap_probe(cfg, &c);
	if (vmsnap_caps_check(&c, why, sizeof(why)) == 0)
		row("whole-VM ckpt", "available (QEMU %d.%d.%d%s, %s)", c.qemu_major, c.qemu_minor,
		    c.qemu_micro, c.mapped_ram ? " with mapped-ram" : "", c.virtiofsd_version);
	else if (strcmp(cfg->checkpoint_mode, "vm") == 0)
		fail(rep, "whole-VM ckpt", "checkpoint_mode \"vm\", but %s", why);
	else
		row("whole-VM ckpt", "not available: %s", why);
}

static void check_usage(void)
{
	printf("Usage: cocoon check\n"
	       "\n"
	       "Boots a VM with the configured kernel and image, talks to its agent and\n"
	       "prints a readiness report: acceleration, boot time, guest kernel, CRIU\n"
	       "version, `criu check`, and the shared directory. Exits 1 when any item\n"
	       "fails, naming it.\n");
}

int cmd_check(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	_cleanup_error_ struct error *err = NULL;
	_cleanup_free_ char *dir = NULL, *note = NULL;
	struct check_report rep = {0};
	struct sandbox sb;

	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		check_usage();
		return 0;
	}
	if (argc > 1)
		return usage_error("check", "unexpected argument '%s'", argv[1]);
	if (mkdir_p(g->root, 0700, &err) < 0 ||
	    asprintf(&dir, "%s/check-%d", g->root, getpid()) < 0) {
		return err ? cli_fail(errp, &err) : cli_failf(errp, "out of memory");
	}
	char accel[8];
	if (accel_resolve(&g->cfg, accel, &note, sandbox_probe_kvm, &err) < 0) {
		return cli_fail(errp, &err);
	}
	struct sandbox_options opts = {.accel = accel};
	printf("cocoon check\n");
	row("config", "%s", g->cfg.source ? g->cfg.source : "(defaults; no config file)");
	if (sandbox_boot(&sb, &g->cfg, dir, &opts, &err) < 0) {
		fail(&rep, "boot", "%s", err->msg);
		printf("result: NOT READY (1 failure: boot)\n");
		return 1;
	}
	row("accel", "%s%s%s%s", accel, note ? " (" : "", note ? note : "", note ? ")" : "");
	row("boot", "%lld ms to agent ready (%s)", sb.boot_ms,
	    sb.from_template ? "from the VM template" : "cold boot");
	check_version(&sb, &rep);
	check_guest(&sb, &g->cfg, &rep);
	check_shared(&sb, &rep, g->cfg.shared_fs);
	check_vmsnap(&g->cfg, &rep);
	sandbox_shutdown(&sb);
	sandbox_destroy(&sb, true);
	if (rep.failures) {
		printf("result: NOT READY (%d failure%s, marked FAIL above)\n", rep.failures,
		       rep.failures == 1 ? "" : "s");
		return 1;
	}
	printf("result: ready\n");
	return 0;
}
