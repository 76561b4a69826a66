/* What a checkpoint tells its user (checkpoint-report.h). */
#include "checkpoint-report.h"
#include "agent-client.h"
#include "cleanup.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void checkpoint_report_add(const struct checkpoint_options *o, const char *fmt, ...)
{
	_cleanup_free_ char *line = NULL;
	char *all = NULL;
	va_list ap;
	if (!o->report)
		return;
	va_start(ap, fmt);
	int n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (asprintf(&all, "%s%s", o->report->text ? o->report->text : "", line) < 0)
		return;
	free(o->report->text);
	o->report->text = all;
}

void checkpoint_report_stats(const struct checkpoint_options *o, const Cocoon__CheckpointReply *rep,
			     long long total_ms, const char *dest)
{
	if (!o->print_stats)
		return;
	const Cocoon__CriuStats *st = rep->stats;
	json_object *j = json_object_new_object();
	json_object_object_add(j, "frozen_ms",
			       json_object_new_double(st ? st->frozen_us / 1000.0 : 0));
	json_object_object_add(j, "freezing_ms",
			       json_object_new_double(st ? st->freezing_us / 1000.0 : 0));
	json_object_object_add(j, "memdump_ms",
			       json_object_new_double(st ? st->memdump_us / 1000.0 : 0));
	json_object_object_add(j, "memwrite_ms",
			       json_object_new_double(st ? st->memwrite_us / 1000.0 : 0));
	json_object_object_add(j, "pages_written",
			       json_object_new_uint64(st ? st->pages_written : 0));
	json_object_object_add(j, "criu_ms", json_object_new_uint64(rep->dump_ms));
	json_object_object_add(j, "copy_ms", json_object_new_uint64(rep->copy_ms));
	json_object_object_add(j, "copy_overlapped", json_object_new_boolean(rep->copy_overlapped));
	json_object_object_add(j, "dev_shm_second_try", json_object_new_boolean(o->shm_second_try));
	/* The guest's word, bound for a terminal: JSON escapes C0 only. */
	char route[64];
	snprintf(route, sizeof(route), "%s", rep->route ? rep->route : "");
	agent_text_sanitize(route);
	json_object_object_add(j, "route", json_object_new_string(route));
	json_object_object_add(j, "staging",
			       json_object_new_string(o->staged_beside ? "beside" : "shared"));
	json_object_object_add(j, "container_mib", json_object_new_uint64(rep->container_mib));
	json_object_object_add(j, "guest_available_mib",
			       json_object_new_uint64(rep->available_mib));
	/* The most guest memory the checkpoint took (MemAvailable's low-water
	 * mark, sampled in the agent). */
	json_object_object_add(j, "guest_peak_used_mib",
			       json_object_new_uint64(rep->peak_used_mib));
	json_object_object_add(j, "total_ms", json_object_new_int64(total_ms));
	json_object_object_add(j, "bytes", json_object_new_uint64(rep->bytes));
	json_object_object_add(j, "path", json_object_new_string(dest));
	checkpoint_report_add(o, "stats: %s\n",
			      json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	json_object_put(j);
}
