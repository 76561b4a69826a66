/* The per-mount flags of a container's mounts, kept across a restore
 * (mount-flags.h). */
#include "cleanup.h"
#include "fdio.h"
#include "mount-flags.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

/* The per-mount options of mountinfo (proc(5), the kernel's
 * show_mnt_opts); strictatime shows as the absence of noatime and
 * relatime. Superblock options (a tmpfs' size) are CRIU's to restore. */
static const struct {
	const char *name;
	unsigned long flag;
} mnt_flags[] = {
	{"ro", MS_RDONLY},	   {"nosuid", MS_NOSUID},	    {"nodev", MS_NODEV},
	{"noexec", MS_NOEXEC},	   {"noatime", MS_NOATIME},	    {"nodiratime", MS_NODIRATIME},
	{"relatime", MS_RELATIME}, {"nosymfollow", MS_NOSYMFOLLOW},
};

static unsigned long parse_flags(const char *opts)
{
	unsigned long flags = 0;
	for (const char *t = opts; *t; t += *t == ',') {
		size_t len = strcspn(t, ",");
		for (size_t i = 0; i < sizeof(mnt_flags) / sizeof(mnt_flags[0]); i++)
			if (strlen(mnt_flags[i].name) == len &&
			    strncmp(t, mnt_flags[i].name, len) == 0)
				flags |= mnt_flags[i].flag;
		t += len;
	}
	return flags;
}

/* A remount without an atime flag keeps the mount's current atime mode
 * (the kernel's path_mount: "the default atime for remount is
 * preservation"), so the mode is always named, strictatime included. */
static unsigned long remount_flags(unsigned long want)
{
	if (!(want & (MS_NOATIME | MS_RELATIME)))
		want |= MS_STRICTATIME;
	return want;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
}

/* Fields first and first + 1 (from 0, split at single spaces) of line,
 * NUL-terminated in place: mountinfo's mount point and per-mount options
 * are fields 4 and 5, the saved file's 0 and 1. False when line has fewer. */
static bool two_fields(char *line, int first, char **a, char **b)
{
	char *p = line;
	for (int i = 0; i < first && p; i++) {
		char *sp = strchr(p, ' ');
		p = sp ? sp + 1 : NULL;
	}
	char *sp = p ? strchr(p, ' ') : NULL;
	if (!sp || sp == p)
		return false;
	*sp = 0;
	*a = p;
	*b = sp + 1;
	(*b)[strcspn(*b, " ")] = 0;
	return **b != 0;
}

struct mnt {
	char *mp; /* into the parsed text */
	unsigned long flags;
	size_t pos; /* in mountinfo order: the last of a mount point is the top */
};

struct mnt_list {
	struct mnt *v;
	size_t n;
};

/* Each line of text (modified in place) as a mount, its mount point at
 * field `first`; what names the text in *err. */
static int parse_mounts(char *text, int first, const char *what, struct mnt_list *out,
			struct error **err)
{
	size_t cap = 0;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		char *mp, *opts;
		if (!*line)
			continue;
		if (!two_fields(line, first, &mp, &opts))
			return error_setx(err, EINVAL,
					  "%s: line %zu has no mount point and options", what,
					  out->n + 1);
		if (out->n >= MOUNT_FLAGS_MAX_MOUNTS)
			return error_setx(err, E2BIG,
					  "%s: more than %d mounts, the most cocoon checks", what,
					  MOUNT_FLAGS_MAX_MOUNTS);
		if (out->n == cap) {
			cap = cap ? cap * 2 : 64;
			struct mnt *grown = realloc(out->v, cap * sizeof(*grown));
			if (!grown)
				return error_setx(err, ENOMEM, "%s: out of memory", what);
			out->v = grown;
		}
		unescape(mp);
		out->v[out->n] = (struct mnt){.mp = mp, .flags = parse_flags(opts), .pos = out->n};
		out->n++;
	}
	return 0;
}

static int by_mount_point(const void *a, const void *b)
{
	const struct mnt *x = a, *y = b;
	int c = strcmp(x->mp, y->mp);
	return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* The top mount of each mount point: after sorting, the last of its run. */
static bool is_top(const struct mnt_list *l, size_t i)
{
	return i + 1 == l->n || strcmp(l->v[i].mp, l->v[i + 1].mp) != 0;
}

static int plan_add(struct mount_plan *plan, const char *mp, unsigned long flags)
{
	struct mount_remount *grown = realloc(plan->v, (plan->n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	plan->v = grown;
	if (!(grown[plan->n].mp = strdup(mp)))
		return -ENOMEM;
	grown[plan->n++].flags = remount_flags(flags);
	return 0;
}

int mount_flags_plan(const char *saved, const char *now, struct mount_plan *plan,
		     struct error **err)
{
	*plan = (struct mount_plan){0};
	if (!saved || !now)
		return error_setx(err, EINVAL, "no text to plan from");
	_cleanup_free_ char *s = strdup(saved), *n = strdup(now);
	struct mnt_list sv = {0}, nw = {0};
	int r = s && n ? 0 : error_setx(err, ENOMEM, "out of memory");
	if (r == 0)
		r = parse_mounts(s, 0, MOUNT_FLAGS_FILE, &sv, err);
	if (r == 0)
		r = parse_mounts(n, 4, "the restored mountinfo", &nw, err);
	if (r == 0) {
		if (sv.n)
			qsort(sv.v, sv.n, sizeof(*sv.v), by_mount_point);
		if (nw.n)
			qsort(nw.v, nw.n, sizeof(*nw.v), by_mount_point);
	}
	/* Both sorted by mount point: one walk pairs the top mounts. */
	for (size_t i = 0, j = 0; r == 0 && i < sv.n; i++) {
		if (!is_top(&sv, i))
			continue; /* hidden under the top one */
		while (j < nw.n && (strcmp(nw.v[j].mp, sv.v[i].mp) < 0 ||
				    (strcmp(nw.v[j].mp, sv.v[i].mp) == 0 && !is_top(&nw, j))))
			j++;
		if (j == nw.n || strcmp(nw.v[j].mp, sv.v[i].mp) != 0 ||
		    nw.v[j].flags == sv.v[i].flags)
			continue;
		if ((r = plan_add(plan, sv.v[i].mp, sv.v[i].flags)) < 0)
			r = error_setx(err, -r, "out of memory");
	}
	free(sv.v);
	free(nw.v);
	if (r < 0)
		mount_plan_free(plan);
	return r;
}

void mount_plan_free(struct mount_plan *plan)
{
	for (size_t i = 0; i < plan->n; i++)
		free(plan->v[i].mp);
	free(plan->v);
	*plan = (struct mount_plan){0};
}

static int read_text(const char *path, char **out)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return fd_read_bounded(fd, MOUNT_FLAGS_MAX_BYTES, out, NULL);
}

int mount_flags_save(pid_t pid, const char *img_dir)
{
	char src[64], dst[PATH_MAX];
	_cleanup_free_ char *text = NULL;
	snprintf(src, sizeof(src), "/proc/%d/mountinfo", pid);
	if (snprintf(dst, sizeof(dst), "%s/" MOUNT_FLAGS_FILE, img_dir) >= (int)sizeof(dst))
		return -ENAMETOOLONG;
	int r = read_text(src, &text);
	if (r < 0)
		return r;
	_cleanup_fclose_ FILE *out = fopen(dst, "wex");
	if (!out)
		return -errno;
	size_t n = 0;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		char *mp, *opts;
		if (!two_fields(line, 4, &mp, &opts))
			return -EINVAL;
		if (++n > MOUNT_FLAGS_MAX_MOUNTS)
			return -E2BIG;
		fprintf(out, "%s %s\n", mp, opts); /* the mount point still escaped */
	}
	return fflush(out) == 0 && !ferror(out) ? 0 : -EIO;
}

int mount_flags_restore(const char *images, pid_t pid)
{
	char path[PATH_MAX], info[64], ns[64];
	_cleanup_error_ struct error *e = NULL;
	_cleanup_free_ char *saved = NULL, *now = NULL;
	snprintf(path, sizeof(path), "%s/" MOUNT_FLAGS_FILE, images);
	snprintf(info, sizeof(info), "/proc/%d/mountinfo", pid);
	int r = read_text(path, &saved);
	if (r == -ENOENT)
		return 0; /* images from before */
	const char *failed = path;
	/* Read through our /proc: once in the container's mount namespace,
	 * /proc is the container's, where we have no /proc/self. */
	if (r == 0) {
		failed = info;
		r = read_text(info, &now);
	}
	if (r < 0) {
		fprintf(stderr, "cocoon: mount flags: read %s: %s\n", failed, strerror(-r));
		return r;
	}
	struct mount_plan plan;
	if ((r = mount_flags_plan(saved, now, &plan, &e)) < 0) {
		fprintf(stderr, "cocoon: mount flags: %s\n", error_msg(e));
		return r;
	}
	snprintf(ns, sizeof(ns), "/proc/%d/ns/mnt", pid);
	_cleanup_close_ int fd = open(ns, O_RDONLY | O_CLOEXEC);
	/* setns() also moves our root and cwd to the namespace's root. */
	if (fd < 0 || setns(fd, CLONE_NEWNS) < 0) {
		r = -errno;
		fprintf(stderr, "cocoon: mount flags: enter the restored mount namespace: %s\n",
			strerror(-r));
		mount_plan_free(&plan);
		return r;
	}
	for (size_t i = 0; i < plan.n; i++)
		if (mount(NULL, plan.v[i].mp, NULL, MS_REMOUNT | MS_BIND | plan.v[i].flags, NULL) <
		    0) {
			r = -errno;
			fprintf(stderr, "cocoon: mount flags: remount %s (flags %#lx): %s\n",
				plan.v[i].mp, plan.v[i].flags, strerror(-r));
		}
	mount_plan_free(&plan);
	return r;
}
