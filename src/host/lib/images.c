/* Verifying a checkpoint's images before anything reads them: the
 * manifest, each file's size and hash, the page maps, the chain of parents
 * (images.h). Publishing is images-publish.c. */
#include "images.h"
#include "images-walk.h"
#include "cleanup.h"
#include "config.h"
#include "fdio.h"
#include "paths.h"
#include "images-ns.h"
#include "resources-kept.h"
#include "resources.h"
#include "pbwire.h"
#include "safefs.h"

#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <xxhash.h>

/* CRIU's pagemap image (criu/images/pagemap.proto): two magics, then
 * u32-sized entries; the first is pagemap_head { pages_id = 1 }, the rest
 * pagemap_entry { vaddr = 1, nr_pages = 2, in_parent = 3, flags = 4 }. */
#define PE_PARENT (1 << 0)
#define PE_PRESENT (1 << 2)
#define PAGE_BYTES 4096

struct pagemap_entry {
	uint64_t nr, in_parent, flags;
	bool has_flags, has_id;
	uint64_t id;
};

static bool pagemap_entry_parse(const uint8_t *q, const uint8_t *qe, struct pagemap_entry *e)
{
	*e = (struct pagemap_entry){0};
	while (q < qe) {
		uint64_t key, v;
		if (!pbwire_varint(&q, qe, &key))
			return false;
		if ((key & 7) == 1) { /* fixed64: vaddr in some CRIU versions */
			if (qe - q < 8)
				return false;
			q += 8;
			continue;
		}
		if ((key & 7) != 0 || !pbwire_varint(&q, qe, &v))
			return false;
		switch (key >> 3) {
		case 1:
			e->id = v;
			e->has_id = true;
			break;
		case 2:
			e->nr = v;
			break;
		case 3:
			e->in_parent = v;
			break;
		case 4:
			e->flags = v;
			e->has_flags = true;
			break;
		}
	}
	return true;
}

int images_pagemap_pages(const uint8_t *data, size_t len, uint64_t *pages_id, uint64_t *pages,
			 struct error **err)
{
	const uint8_t *p = data + 8, *end = data + len;
	bool head = true;

	*pages = *pages_id = 0;
	if (len < 8)
		return error_setx(err, EINVAL, "truncated");
	while (p < end) {
		uint32_t n;
		struct pagemap_entry e;
		if (end - p < 4)
			return error_setx(err, EINVAL, "truncated");
		memcpy(&n, p, 4);
		p += 4;
		if (n > (size_t)(end - p))
			return error_setx(err, EINVAL, "truncated");
		if (!pagemap_entry_parse(p, p + n, &e))
			return error_setx(err, EINVAL, "corrupt");
		p += n;
		if (head) {
			*pages_id = e.id;
			head = false;
			continue;
		}
		bool here = e.has_flags ? (e.flags & PE_PRESENT) && !(e.flags & PE_PARENT)
					: !e.in_parent;
		if (!here)
			continue;
		if (e.nr > UINT64_MAX / PAGE_BYTES - *pages)
			return error_setx(err, EOVERFLOW, "page count overflows");
		*pages += e.nr;
	}
	return 0;
}

/* A pagemap's page count against its pages file's size. The read and the
 * parse are within the verify deadline (b): a restore directory holds as
 * many 64 MiB pagemaps as checkpoint_max_files and _bytes let it, and a
 * hostile one would otherwise stall the restore reading them. */
static int check_pages(int dirfd, const char *name, const struct images_budget *b,
		       struct error **err)
{
	unsigned id;
	char pages_name[64], tail;
	uint64_t pages_id, pages;
	struct stat st;
	_cleanup_free_ char *data = NULL;
	size_t len;

	if (sscanf(name, "pagemap-%u.im%c", &id, &tail) != 2 || tail != 'g')
		return 0;
	int r = images_read_budgeted(dirfd, name, 64 << 20, b, &data, &len, err);
	if (r < 0)
		return r;
	if (images_pagemap_pages((const uint8_t *)data, len, &pages_id, &pages, err) < 0)
		return error_wrap(err, "%s", name);
	if (images_budget_time(b, err) < 0)
		return error_wrap(err, "%s", name);
	snprintf(pages_name, sizeof(pages_name), "pages-%llu.img", (unsigned long long)pages_id);
	off_t have = fstatat(dirfd, pages_name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_size : 0;
	if ((uint64_t)have != pages * PAGE_BYTES)
		return error_setx(err, EINVAL,
				  "%s holds %lld bytes but %s accounts for %llu pages (%llu bytes)",
				  pages_name, (long long)have, name, (unsigned long long)pages,
				  (unsigned long long)pages * PAGE_BYTES);
	return 0;
}

/* A restore directory holds what cocoon.json lists, cocoon.json itself and
 * CRIU's "parent" link (walk_files refuses every other kind of entry):
 * anything else would reach CRIU unchecked (a stray pages-9.img or
 * core-99.img is read if some image names it). A second link means the
 * file can change under another name after it was checked. */
struct listed_ctx {
	const struct images_meta *m;
	const struct images_budget *b;
	struct error **err;
};

static int check_listed(int dirfd, const char *name, void *ud)
{
	struct listed_ctx *c = ud;
	struct stat st;
	bool listed = strcmp(name, IMAGES_META) == 0;
	for (size_t i = 0; i < c->m->n_files && !listed; i++)
		listed = strcmp(c->m->files[i].name, name) == 0;
	if (!listed)
		return error_setx(c->err, EINVAL, "%s is not listed in " IMAGES_META, name);
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return error_set(c->err, errno, "%s", name);
	if (st.st_nlink != 1)
		return error_setx(c->err, EMLINK, "%s has %ju links (a hard link); refused", name,
				  (uintmax_t)st.st_nlink);
	return check_pages(dirfd, name, c->b, c->err);
}

void images_meta_free(struct images_meta *m)
{
	for (size_t i = 0; i < m->n_files; i++)
		free(m->files[i].name);
	free(m->files);
	free(m->version);
	free(m->checkpoint);
	free(m->resources);
	memset(m, 0, sizeof(*m));
}

/* A typed field, or NULL: a null, a number where a string belongs, an
 * object where a number belongs all count as absent. */
static json_object *field(json_object *o, const char *key, json_type type)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, type) ? v : NULL;
}

static int meta_file(json_object *entry, const char *name, struct images_meta *m,
		     struct error **err)
{
	json_object *jsize = field(entry, "size", json_type_int),
		    *jhash = field(entry, "xxh3", json_type_string);
	if (!images_plain_name(name) || !jsize || !jhash || json_object_get_int64(jsize) < 0 ||
	    !xxh3_text_valid(json_object_get_string(jhash)))
		return error_setx(err, EINVAL, "bad entry for '%.40s'", name);
	struct images_meta_file *f = &m->files[m->n_files];
	f->size = json_object_get_uint64(jsize);
	if (f->size > UINT64_MAX - m->total_bytes)
		return error_setx(err, EOVERFLOW, "file sizes overflow");
	m->total_bytes += f->size;
	snprintf(f->xxh3, sizeof(f->xxh3), "%s", json_object_get_string(jhash));
	if (!(f->name = strdup(name)))
		return error_set(err, ENOMEM, "manifest");
	m->n_files++;
	return 0;
}

static int meta_parse_obj(json_object *o, const struct images_limits *lim, struct images_meta *m,
			  struct error **err)
{
	json_object *v, *files;
	if (!json_object_is_type(o, json_type_object))
		return error_setx(err, EINVAL, "not a JSON object");
	m->format = (v = field(o, "format", json_type_int)) ? (int)json_object_get_int(v) : -1;
	m->version = strdup((v = field(o, "version", json_type_string)) ? json_object_get_string(v)
									: "?");
	if ((v = field(o, "checkpoint", json_type_string)))
		m->checkpoint = strdup(json_object_get_string(v));
	if (!m->version)
		return error_set(err, ENOMEM, "manifest");
	if (m->format != IMAGES_FORMAT || strcmp(m->version, COCOON_VERSION) != 0)
		return error_setx(
			err, EPROTO,
			"was made by cocoon %.40s (image format %d); this is cocoon %s (format %d): restore it with the version that made it",
			m->version, m->format, COCOON_VERSION, IMAGES_FORMAT);
	if (!(files = field(o, "files", json_type_object)))
		return error_setx(err, EINVAL, "lists no files");
	size_t n = (size_t)json_object_object_length(files);
	if (n > lim->max_files)
		return error_setx(err, E2BIG,
				  "lists %zu files, more than %llu (limits.checkpoint_max_files)",
				  n, (unsigned long long)lim->max_files);
	if (!(m->files = calloc(n ? n : 1, sizeof(*m->files))))
		return error_set(err, ENOMEM, "manifest");
	json_object_object_foreach(files, name, entry)
	{
		int r = meta_file(entry, name, m, err);
		if (r < 0)
			return r;
	}
	if (m->total_bytes > lim->max_bytes)
		return error_setx(err, EFBIG,
				  "lists %llu bytes, more than %llu (limits.checkpoint_max_bytes)",
				  (unsigned long long)m->total_bytes,
				  (unsigned long long)lim->max_bytes);
	/* The limits update set, laid over the bundle's at restore: the values
	 * create and update accept, nothing else. */
	json_object *kept = NULL;
	if (json_object_object_get_ex(o, "resources", &kept) && kept) {
		int r = resources_check_json(kept, "resources", ".", true, err);
		if (r < 0)
			return r;
		const char *text = json_object_to_json_string_ext(kept, JSON_C_TO_STRING_PLAIN);
		if (strlen(text) > RESOURCES_KEPT_MAX)
			return error_setx(err, E2BIG, "resources: more than %d bytes",
					  RESOURCES_KEPT_MAX);
		if (!(m->resources = strdup(text)))
			return error_set(err, ENOMEM, "manifest");
	}
	return 0;
}

int images_meta_parse(const char *text, size_t len, const struct images_limits *lim,
		      struct images_meta *m, struct error **err)
{
	memset(m, 0, sizeof(*m));
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return error_set(err, ENOMEM, "manifest");
	json_object *o = len <= INT_MAX ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
	if (!o && json_tokener_get_error(tok) == json_tokener_continue)
		o = json_tokener_parse_ex(tok, "", 1); /* the end of the text ends a bare value */
	bool complete = json_tokener_get_error(tok) == json_tokener_success;
	json_tokener_free(tok);
	int r = complete ? meta_parse_obj(o, lim, m, err)
			 : error_setx(err, EINVAL, "not valid JSON");
	json_object_put(o);
	if (r < 0)
		images_meta_free(m);
	return r;
}

static int verify_file(int dirfd, const struct images_meta_file *f, const struct images_budget *b,
		       struct error **err)
{
	struct stat st;
	uint64_t hash;
	char hex[17];
	_cleanup_close_ int fd = safefs_open_regular(dirfd, f->name, f->size, &st, err);
	if (fd < 0)
		return fd;
	if ((uint64_t)st.st_size != f->size)
		return error_setx(err, EINVAL, "%s is %llu bytes, expected %llu (truncated?)",
				  f->name, (unsigned long long)st.st_size,
				  (unsigned long long)f->size);
	int r = images_hash_fd(fd, f->name, f->size, b, &hash, err);
	if (r < 0)
		return r;
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)hash);
	if (strcmp(hex, f->xxh3) != 0)
		return error_setx(err, EINVAL, "%s is corrupt (checksum mismatch)", f->name);
	return 0;
}

static int check_size(int dirfd, const struct images_meta_file *f, struct error **err)
{
	struct stat st;
	if (fstatat(dirfd, f->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return error_set(err, errno, "%s is missing", f->name);
	if (!S_ISREG(st.st_mode))
		return error_setx(err, EINVAL, "%s is not a regular file", f->name);
	if ((uint64_t)st.st_size != f->size)
		return error_setx(err, EINVAL, "%s is %llu bytes, expected %llu (truncated?)",
				  f->name, (unsigned long long)st.st_size,
				  (unsigned long long)f->size);
	return 0;
}

static int images_verify_one(int dirfd, const char *dir, bool need_tree,
			     const struct images_budget *b, char **resources, struct error **err)
{
	_cleanup_free_ char *text = NULL;
	struct images_meta m;
	size_t len;

	int r = safefs_read(dirfd, IMAGES_META, 16 << 20, &text, &len, err);
	if (r == -ENOENT) {
		error_free(err);
		return error_setx(err, ENOENT, "%s is empty or not a cocoon checkpoint (no %s)",
				  dir, IMAGES_META);
	}
	if (r < 0 || (r = images_meta_parse(text, len, b->lim, &m, err)) < 0)
		return error_wrap(err, "%s/%s", dir, IMAGES_META);
	static const char *const required[] = {"inventory.img", "pstree.img"};
	for (size_t i = 0; i < ARRAY_SIZE(required) && need_tree && r == 0; i++) {
		bool found = false;
		for (size_t j = 0; j < m.n_files; j++)
			found |= strcmp(m.files[j].name, required[i]) == 0;
		if (!found)
			r = error_setx(err, ENOENT, "%s has no %s", dir, required[i]);
	}
	/* Sizes and structure first (cheap, and refuses FIFOs and devices
	 * before any read), then every byte. */
	for (size_t i = 0; i < m.n_files && r == 0; i++)
		if ((r = check_size(dirfd, &m.files[i], err)) < 0)
			error_wrap(err, "%s", dir);
	struct listed_ctx lc = {.m = &m, .b = b, .err = err};
	if (r == 0 && (r = images_walk_files(dirfd, true, check_listed, &lc, err)) < 0)
		error_wrap(err, "%s", dir);
	for (size_t i = 0; i < m.n_files && r == 0; i++)
		if ((r = verify_file(dirfd, &m.files[i], b, err)) < 0)
			error_wrap(err, "%s", dir);
	if (r == 0 && need_tree && (r = images_check_namespaces(dirfd, err)) < 0)
		error_wrap(err, "%s", dir);
	if (r == 0 && need_tree)
		*resources = TAKE_PTR(m.resources);
	images_meta_free(&m);
	return r;
}

void images_copy_logs_at(int dirfd, const char *const *from, const char *const *to, size_t n,
			 const char *work_path)
{
	if (dirfd < 0 || !work_path || mkdir_p(work_path, 0700, NULL) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *text = NULL, *dst = NULL;
		size_t len;
		if (safefs_read(dirfd, from[i], IMAGES_MAX_LOG, &text, &len, NULL) == 0 &&
		    asprintf(&dst, "%s/%s", work_path, to[i]) >= 0)
			(void)write_file_atomic(dst, text, len, 0600, NULL); /* logs: best effort */
	}
}

void images_copy_logs(const char *src, const char *work_path)
{
	static const char *const names[] = {COCOON_DUMP_LOG, COCOON_RESTORE_LOG, COCOON_STATS_DUMP,
					    COCOON_STATS_RESTORE};
	_cleanup_close_ int dirfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	images_copy_logs_at(dirfd, names, names, ARRAY_SIZE(names), work_path);
}

void images_chain_free(struct images_chain *c)
{
	for (int i = 0; i < c->n; i++) {
		free(c->dirs[i]);
		free(c->names[i]);
		free(c->shares[i]);
		c->shares[i] = NULL;
		if (c->fds[i] >= 0)
			close(c->fds[i]);
	}
	c->n = 0;
	free(c->resources);
	c->resources = NULL;
}

const char *const *images_chain_paths(const struct images_chain *c)
{
	return (const char *const *)(c->n && c->shares[0] ? c->shares : c->dirs);
}

int images_chain_share_fds(struct images_chain *c, struct error **err)
{
	for (int i = 0; i < c->n; i++)
		if (!c->shares[i] &&
		    asprintf(&c->shares[i], "/proc/%d/fd/%d", (int)getpid(), c->fds[i]) < 0) {
			c->shares[i] = NULL;
			return error_set(err, ENOMEM, "%s", c->dirs[i]);
		}
	return 0;
}

/* The pre-dump NAME beside the checkpoint DIRFD (at PATH, for messages),
 * opened: a directory of its own, never a symlink to a checkpoint
 * elsewhere on this host (another container's pages would be shared into
 * the restored VM). Reached by fd, its parent by "..": no path is walked
 * again. */
static int open_pre_dump(int dirfd, const char *path, const char *dir, const char *name,
			 struct error **err)
{
	_cleanup_close_ int parent = openat(dirfd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent < 0)
		return error_set(err, errno, "%s: its pre-dump %s", dir, path);
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	struct stat ls;
	if ((errno != ELOOP && errno != ENOTDIR) ||
	    fstatat(parent, name, &ls, AT_SYMLINK_NOFOLLOW) < 0)
		return error_set(err, errno, "%s: its pre-dump %s", dir, path);
	return error_setx(
		err, EINVAL,
		"%s: its pre-dump %s is %s, not a directory beside it (runc's ../NAME layout)", dir,
		path, S_ISLNK(ls.st_mode) ? "a symlink" : "not a directory");
}

int images_verify_at(int dirfd, const char *dir, const struct images_limits *lim,
		     long long deadline_ms, struct images_chain *chain, struct error **err)
{
	char cur[PATH_MAX];
	struct images_budget b;
	images_budget_init(&b, lim);
	b.deadline = deadline_ms;
	snprintf(cur, sizeof(cur), "%s", dir);
	chain->n = 0;
	chain->resources = NULL;
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return error_set(err, errno, "image directory %s", dir);
	for (;;) {
		if (chain->n == COCOON_MAX_CHAIN) {
			close(fd);
			return error_setx(err, E2BIG, "%s: more than %d pre-dumps in a chain", dir,
					  COCOON_MAX_CHAIN);
		}
		const char *base = strrchr(cur, '/');
		chain->fds[chain->n] = fd;
		chain->shares[chain->n] = NULL;
		chain->dirs[chain->n] = strdup(cur);
		chain->names[chain->n] = strdup(base ? base + 1 : cur);
		chain->n++;
		int r = images_verify_one(fd, cur, chain->n == 1, &b, &chain->resources, err);
		if (r < 0)
			return r;
		char target[256];
		ssize_t n = readlinkat(fd, "parent", target, sizeof(target) - 1);
		if (n < 0)
			return 0;
		target[n] = 0;
		if (strncmp(target, "../", 3) != 0 || !images_plain_name(target + 3))
			return error_setx(err, EINVAL, "%s: parent link points at '%.60s'", cur,
					  target);
		char *slash = strrchr(cur, '/');
		if (!slash)
			return error_setx(err, EINVAL, "%s: parent outside", cur);
		*slash = 0;
		size_t len = strlen(cur);
		snprintf(cur + len, sizeof(cur) - len, "/%s", target + 3);
		if ((fd = open_pre_dump(fd, cur, dir, target + 3, err)) < 0)
			return fd;
	}
}

int images_verify(const char *dir, const struct images_limits *lim, struct images_chain *chain,
		  struct error **err)
{
	_cleanup_close_ int fd =
		open(dir, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		chain->n = 0;
		chain->resources = NULL;
		return error_set(err, errno, "image directory %s", dir);
	}
	return images_verify_at(fd, dir, lim, now_ms() + (long long)lim->verify_ms, chain, err);
}
