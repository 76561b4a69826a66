/* Terminal sizes: process.consoleSize as the host reads it from
 * config.json (spec.c), and the guest's side (src/guest/terminal.c): the
 * size set on a real pty, and the "winsize" line a checkpoint keeps, which
 * comes back from a checkpoint directory and so is untrusted. */
#include <errno.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <cmocka.h>

#include "console.h"
#include "spec.h"
#include "terminal.h"

static Cocoon__ProcessSpec *parse(const char *console_size, struct error **err)
{
	char path[] = "/tmp/cocoon-test-terminal.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f, "{\"args\": [\"sh\"], \"cwd\": \"/\", \"terminal\": true%s%s}",
		console_size ? ", \"consoleSize\": " : "", console_size ? console_size : "");
	fclose(f);
	Cocoon__ProcessSpec *p = NULL;
	int r = spec_parse_process_file(path, &p, err);
	unlink(path);
	if (r < 0) {
		spec_process_free(p);
		return NULL;
	}
	return p;
}

static void test_console_size_from_the_spec(void **st)
{
	struct error *err = NULL;
	Cocoon__ProcessSpec *p = parse("{\"height\": 33, \"width\": 111}", &err);
	assert_non_null(p);
	assert_non_null(p->console_size);
	assert_int_equal(p->console_size->rows, 33);
	assert_int_equal(p->console_size->cols, 111);
	spec_process_free(p);

	/* Absent, or a zero side: not set, as with runc. */
	p = parse(NULL, &err);
	assert_non_null(p);
	assert_null(p->console_size);
	spec_process_free(p);
	p = parse("{\"height\": 0, \"width\": 80}", &err);
	assert_non_null(p);
	assert_null(p->console_size);
	spec_process_free(p);

	/* struct winsize holds unsigned shorts: more is an error naming the field. */
	static const char *const bad[][2] = {
		{"{\"height\": 65536, \"width\": 80}", "process.consoleSize.height"},
		{"{\"height\": 24, \"width\": -1}", "process.consoleSize.width"},
		{"{\"height\": \"24\", \"width\": 80}", "process.consoleSize.height"},
		{"[24, 80]", "process.consoleSize"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		assert_null(parse(bad[i][0], &err));
		assert_non_null(err);
		if (!strstr(err->msg, bad[i][1]))
			fail_msg("%s: '%s' does not name %s", bad[i][0], err->msg, bad[i][1]);
		error_free(&err);
	}
}

static void test_size_set_on_a_pty(void **st)
{
	int master, slave;
	struct winsize ws;
	assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
	Cocoon__ConsoleSize size = COCOON__CONSOLE_SIZE__INIT;
	size.rows = 33;
	size.cols = 111;
	assert_int_equal(terminal_set_size(master, &size), 0);
	assert_int_equal(ioctl(slave, TIOCGWINSZ, &ws), 0);
	assert_int_equal(ws.ws_row, 33);
	assert_int_equal(ws.ws_col, 111);

	/* NULL or a zero side: left as it is. */
	assert_int_equal(terminal_set_size(master, NULL), 0);
	size.rows = 0;
	assert_int_equal(terminal_set_size(master, &size), 0);
	/* Over what a winsize holds: refused, not truncated. */
	size.rows = 65536;
	assert_int_equal(terminal_set_size(master, &size), -EINVAL);
	assert_int_equal(ioctl(slave, TIOCGWINSZ, &ws), 0);
	assert_int_equal(ws.ws_row, 33);

	char line[64];
	assert_true(terminal_size_line(master, line, sizeof(line)));
	assert_string_equal(line, "winsize 33 111");
	assert_false(terminal_size_line(-1, line, sizeof(line)));
	close(master);
	close(slave);
}

static void test_size_line_is_untrusted(void **st)
{
	Cocoon__ConsoleSize size = COCOON__CONSOLE_SIZE__INIT;
	assert_true(terminal_parse_size_line("winsize 44 120", &size));
	assert_int_equal(size.rows, 44);
	assert_int_equal(size.cols, 120);
	assert_true(terminal_parse_size_line("winsize 65535 65535", &size));
	assert_int_equal(size.rows, 65535);

	static const char *const bad[] = {
		"winsize 65536 80",
		"winsize 24 4294967297",
		"winsize -1 80",
		"winsize 24 +80",
		"winsize 24",
		"winsize 24 80 1",
		"winsize 24 80x",
		"winsize",
		"",
		"tty[88:1e]",
		"winsize 0000000000000024 80",
		"Winsize 24 80",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size.rows = size.cols = 7;
		if (terminal_parse_size_line(bad[i], &size))
			fail_msg("'%s' was taken: %u x %u", bad[i], size.rows, size.cols);
		assert_int_equal(size.rows, 7);
	}
}

/* The restored pty's size comes from the guest: taken within 1..65535 only. */
static void test_guest_reported_size_is_bounded(void **st)
{
	int master, slave;
	struct winsize ws;
	struct console_watch w;
	Cocoon__ConsoleSize size = COCOON__CONSOLE_SIZE__INIT, got = COCOON__CONSOLE_SIZE__INIT;
	assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
	console_watch_init(&w, slave, NULL);
	size.rows = 44;
	size.cols = 120;
	assert_int_equal(console_watch_apply(&w, &size), 0);
	assert_int_equal(ioctl(master, TIOCGWINSZ, &ws), 0);
	assert_int_equal(ws.ws_row, 44);
	assert_int_equal(ws.ws_col, 120);
	/* Taken as the guest's size: no resize goes back for it. */
	assert_false(console_watch_changed(&w, &got));

	static const unsigned bad[][2] = {
		{0, 80}, {24, 0}, {65536, 80}, {24, 70000}, {UINT32_MAX, 1}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size.rows = bad[i][0];
		size.cols = bad[i][1];
		assert_int_equal(console_watch_apply(&w, &size), -ERANGE);
		assert_int_equal(ioctl(master, TIOCGWINSZ, &ws), 0);
		assert_int_equal(ws.ws_row, 44);
		assert_int_equal(ws.ws_col, 120);
	}
	assert_int_equal(console_watch_apply(&w, NULL), -ERANGE);

	/* The engine's resize (on the master) is seen once, then not again. */
	ws.ws_row = 50;
	ws.ws_col = 130;
	assert_int_equal(ioctl(master, TIOCSWINSZ, &ws), 0);
	assert_true(console_watch_changed(&w, &got));
	assert_int_equal(got.rows, 50);
	assert_int_equal(got.cols, 130);
	assert_false(console_watch_changed(&w, &got));
	close(master);
	close(slave);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_console_size_from_the_spec),
		cmocka_unit_test(test_size_set_on_a_pty),
		cmocka_unit_test(test_size_line_is_untrusted),
		cmocka_unit_test(test_guest_reported_size_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
