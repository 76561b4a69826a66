#include "log.h"
#include "cleanup.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

static const char *log_path;
static bool log_json;

int log_init(const char *path, const char *format)
{
	log_path = path;
	log_json = format && strcmp(format, "json") == 0;
	if (!path)
		return 0;
	/* Opened as every line will be: a log that cannot be written fails
	 * the command at once (runc opens its --log first too). */
	FILE *f = fopen(path, "ae");
	if (!f) {
		log_path = NULL;
		return -errno;
	}
	fclose(f);
	return 0;
}

/* The length of the valid UTF-8 sequence at p, or 0. */
static size_t utf8_len(const unsigned char *p)
{
	size_t n = p[0] >= 0xc2 && p[0] <= 0xdf	  ? 2
		   : p[0] >= 0xe0 && p[0] <= 0xef ? 3
		   : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
						  : 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	/* Overlong forms, surrogates and code points past U+10FFFF. */
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
		return 0;
	return n;
}

void log_text_clean(char *s, bool keep_lines)
{
	unsigned char *in = (unsigned char *)s, *out = in;
	while (*in) {
		size_t n = *in < 0x80 ? 1 : utf8_len(in);
		if (n == 1)
			*out++ = (*in < 0x20 && !(keep_lines && (*in == '\n' || *in == '\t'))) ||
						 *in == 0x7f
					 ? ' '
					 : *in;
		else if (n == 0)
			*out++ = '?';
		else if (n == 2 && in[0] == 0xc2 && in[1] < 0xa0)
			*out++ = ' '; /* C1 */
		else {
			memmove(out, in, n);
			out += n;
		}
		in += n ? n : 1;
	}
	*out = 0;
}

static void logfmt_quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* One line in the --log file; false when there is none or it cannot be
 * opened. */
static bool log_line(const char *level, const char *msg)
{
	if (!log_path)
		return false;
	_cleanup_fclose_ FILE *f = fopen(log_path, "ae");
	if (!f)
		return false;
	if (log_json) {
		char when[64];
		time_t t = time(NULL);
		struct tm tm;
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		json_object *o = json_object_new_object();
		json_object_object_add(o, "level", json_object_new_string(level));
		json_object_object_add(o, "msg", json_object_new_string(msg));
		json_object_object_add(o, "time", json_object_new_string(when));
		fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else {
		fprintf(f, "level=%s msg=", level);
		logfmt_quoted(f, msg);
		fputc('\n', f);
	}
	return true;
}

static void (*stderr_writer)(void *data, const char *text, size_t len);
static void *stderr_writer_data;
/* The thread that installed the writer: only it may call it (the shim's
 * sinks belong to its main loop). Lines other threads log (the sandbox
 * guard's) wait here, up to LOG_DEFERRED_MAX bytes, for
 * log_flush_deferred() on that thread (review11 finding 1: the guard
 * appended to the container's stderr queue while the main loop flushed it). */
static pthread_t stderr_writer_owner;
static pthread_mutex_t deferred_lock = PTHREAD_MUTEX_INITIALIZER;
static char *deferred;
static size_t deferred_len;
#define LOG_DEFERRED_MAX (64 * 1024)

void log_set_stderr_writer(void (*writer)(void *data, const char *text, size_t len), void *data)
{
	stderr_writer = writer;
	stderr_writer_data = data;
	stderr_writer_owner = pthread_self();
}

void log_flush_deferred(void)
{
	if (!stderr_writer || !pthread_equal(pthread_self(), stderr_writer_owner))
		return;
	pthread_mutex_lock(&deferred_lock);
	_cleanup_free_ char *lines = deferred;
	size_t len = deferred_len;
	deferred = NULL;
	deferred_len = 0;
	pthread_mutex_unlock(&deferred_lock);
	if (lines && len)
		stderr_writer(stderr_writer_data, lines, len);
}

/* LINE (LEN bytes) kept for the writer's thread; dropped past the bound. */
static void defer_line(const char *line, size_t len)
{
	pthread_mutex_lock(&deferred_lock);
	if (deferred_len + len <= LOG_DEFERRED_MAX) {
		char *grown = realloc(deferred, deferred_len + len);
		if (grown) {
			memcpy(grown + deferred_len, line, len);
			deferred = grown;
			deferred_len += len;
		}
	}
	pthread_mutex_unlock(&deferred_lock);
}

/* PREFIX MSG and a newline, to stderr or to the writer that stands for it. */
static void to_stderr(const char *prefix, const char *msg)
{
	_cleanup_free_ char *line = NULL;
	if (!stderr_writer) {
		fprintf(stderr, "%s%s\n", prefix, msg);
		return;
	}
	int n = asprintf(&line, "%s%s\n", prefix, msg);
	if (n <= 0)
		return;
	if (!pthread_equal(pthread_self(), stderr_writer_owner)) {
		defer_line(line, (size_t)n);
		return;
	}
	log_flush_deferred(); /* in the order they were logged */
	stderr_writer(stderr_writer_data, line, (size_t)n);
}

/* Every message is made safe for a terminal where it is printed, whatever
 * it quotes: names in a guest's dump or in a restore directory from
 * elsewhere. */
void log_error(const char *msg)
{
	_cleanup_free_ char *clean = strdup(msg);
	if (clean)
		log_text_clean(clean, true);
	to_stderr("cocoon: ", clean ? clean : "out of memory");
	log_line("error", clean ? clean : "out of memory");
}

void log_errorf(const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	log_error(n < 0 ? "out of memory" : msg);
}

void log_warning(const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	log_text_clean(msg, true);
	if (!log_line("warning", msg))
		to_stderr("cocoon: warning: ", msg);
}
