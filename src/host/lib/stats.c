/* runc events --stats in the host library (stats.h). */
#include "stats.h"
#include "cleanup.h"
#include "container.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

static json_object *u64(uint64_t v)
{
	return json_object_new_uint64(v);
}

/* A key of memory.stat the guest sent that is not a plain name is dropped:
 * the guest is not trusted to write our JSON's keys. */
json_object *stats_json(const char *id, const Cocoon__StatsReply *s)
{
	json_object *cpu = json_object_new_object(), *usage = json_object_new_object(),
		    *thr = json_object_new_object();
	json_object_object_add(usage, "total", u64(s->cpu_usage_usec * 1000));
	json_object_object_add(usage, "kernel", u64(s->cpu_system_usec * 1000));
	json_object_object_add(usage, "user", u64(s->cpu_user_usec * 1000));
	json_object_object_add(cpu, "usage", usage);
	json_object_object_add(thr, "periods", u64(s->cpu_nr_periods));
	json_object_object_add(thr, "throttledPeriods", u64(s->cpu_nr_throttled));
	json_object_object_add(thr, "throttledTime", u64(s->cpu_throttled_usec * 1000));
	json_object_object_add(cpu, "throttling", thr);

	json_object *mem = json_object_new_object(), *mu = json_object_new_object(),
		    *raw = json_object_new_object();
	/* No memory.max: the VM's memory is the limit. */
	json_object_object_add(mu, "limit",
			       u64(s->memory_max ? s->memory_max : s->guest_memory_total));
	json_object_object_add(mu, "usage", u64(s->memory_current));
	json_object_object_add(mu, "max", u64(s->memory_peak));
	json_object_object_add(mu, "failcnt", u64(s->memory_oom_kill));
	json_object_object_add(mem, "usage", mu);
	for (size_t i = 0; i < s->n_memory_stat && i < 64; i++) {
		const char *k = s->memory_stat[i]->key;
		size_t n = strlen(k), j = 0;
		while (j < n && (islower((unsigned char)k[j]) || isdigit((unsigned char)k[j]) ||
				 k[j] == '_'))
			j++;
		if (n && n < 64 && j == n && !json_object_object_get_ex(raw, k, NULL))
			json_object_object_add(raw, k, u64(s->memory_stat[i]->value));
	}
	json_object_object_add(mem, "raw", raw);

	json_object *pids = json_object_new_object();
	json_object_object_add(pids, "current", u64(s->pids_current));
	json_object_object_add(pids, "limit", u64(s->pids_max));

	json_object *data = json_object_new_object();
	json_object_object_add(data, "cpu", cpu);
	json_object_object_add(data, "memory", mem);
	json_object_object_add(data, "pids", pids);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string("stats"));
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "data", data);
	return o;
}

int stats_container(struct global_opts *g, const char *id, json_object **out, struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__StatsRequest sr = COCOON__STATS_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	_cleanup_free_ char *dir = NULL;

	int r = container_load_live(g, id, &dir, err);
	if (r < 0)
		return r == -ESRCH ? error_wrap(err, "events %s", id) : r;
	sr.id = (char *)id;
	req.body_case = COCOON__REQUEST__BODY_STATS;
	req.stats = &sr;
	if (container_call(g, id, &req, &resp, err) < 0)
		return error_wrap(err, "events %s", id);
	if (resp->body_case != COCOON__RESPONSE__BODY_STATS || !resp->stats) {
		cocoon__response__free_unpacked(resp, NULL);
		return error_setx(err, EPROTO, "events %s: the guest's reply has no stats", id);
	}
	*out = stats_json(id, resp->stats);
	cocoon__response__free_unpacked(resp, NULL);
	return *out ? 0 : error_set(err, ENOMEM, "events %s", id);
}
