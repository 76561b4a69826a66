/* Where cocoon's own messages go.
 *
 * Engines run `cocoon create` with the container's stdout and stderr (podman's
 * conmon hands over the pipes that become the container's log), and read the
 * file given with --log. So an error goes to stderr and to --log; a warning
 * (a spec field not applied, a fallback taken) goes to --log only when there
 * is one, and to stderr otherwise, where a user at a terminal sees it. This
 * is runc's split: its warnings are logrus lines in --log.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Set once by main() from --log and --log-format ("text" or "json"); path
 * NULL means no log file. The strings must outlive the process's use. The
 * file is opened for appending (created if missing) once here: a negative
 * errno when it cannot be, and then nothing is logged to it. */
int log_init(const char *path, const char *format);

/* An error: to stderr as "cocoon: MSG", and to --log as level "error"
 * (containerd's shim reports the last such line). */
void log_error(const char *msg);
/* log_error() of a printf-formatted message. */
void log_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A warning: to --log as level "warning" when there is one, else to stderr
 * as "cocoon: warning: MSG". */
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* From now on, what would go to stderr goes to WRITER(DATA, TEXT, LEN)
 * instead (NULL: stderr again), one whole line (TEXT) per call: the shim's
 * stderr is the container's, the engine's pipe, which a write may block on
 * for as long as the engine does not read (issue 11), so the shim queues
 * its lines with the container's output, never blocking (shim-output.h). */
void log_set_stderr_writer(void (*writer)(void *data, const char *text, size_t len), void *data);

/* Hands the writer what other threads logged since (they never call it:
 * their lines wait, at most 64 KiB, the rest dropped). Called by the
 * thread that set the writer, from its loop; a no-op on any other thread
 * or with no writer. */
void log_flush_deferred(void);

/* Makes text safe for a terminal or a log, in place: C0 controls (but
 * newlines and tabs when keep_lines), DEL and C1 controls (U+0080..U+009F)
 * become spaces, bytes that are not UTF-8 become '?'. log_error() and
 * log_warning() apply it to every message; agent_text_sanitize() is it
 * without keep_lines. */
void log_text_clean(char *s, bool keep_lines);
