/* log.h's stderr writer: only the thread that set it calls it; lines other
 * threads log (the shim's sandbox guard) wait for log_flush_deferred() on
 * that thread, in order and bounded (review11 finding 1). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"

static pthread_t owner;
static char got[256 * 1024];
static size_t got_len;
static int calls_off_owner;

static void writer(void *data, const char *text, size_t len)
{
	(void)data;
	if (!pthread_equal(pthread_self(), owner))
		calls_off_owner++;
	if (got_len + len <= sizeof(got)) {
		memcpy(got + got_len, text, len);
		got_len += len;
	}
}

static void *other_thread(void *arg)
{
	int n = *(int *)arg;
	for (int i = 0; i < n; i++)
		log_errorf("guard line %d", i);
	return NULL;
}

static void run_other(int n)
{
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, other_thread, &n), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
}

static void test_other_thread_never_calls_the_writer(void **st)
{
	(void)st;
	owner = pthread_self();
	got_len = 0;
	calls_off_owner = 0;
	log_set_stderr_writer(writer, NULL);
	run_other(2);
	assert_int_equal(calls_off_owner, 0);
	assert_int_equal(got_len, 0); /* nothing yet: it waits for the owner */
	log_errorf("main line");      /* the deferred lines first, in order */
	got[got_len] = 0;
	assert_string_equal(got, "cocoon: guard line 0\ncocoon: guard line 1\ncocoon: main line\n");
	log_flush_deferred(); /* nothing left */
	assert_int_equal(strlen("cocoon: guard line 0\ncocoon: guard line 1\ncocoon: main line\n"),
			 got_len);
	log_set_stderr_writer(NULL, NULL);
}

static void test_deferred_lines_are_bounded(void **st)
{
	(void)st;
	owner = pthread_self();
	got_len = 0;
	calls_off_owner = 0;
	log_set_stderr_writer(writer, NULL);
	run_other(20000); /* ~460 KiB of lines */
	log_flush_deferred();
	assert_int_equal(calls_off_owner, 0);
	assert_true(got_len > 0);
	assert_true(got_len <= 64 * 1024);
	assert_memory_equal(got, "cocoon: guard line 0\n", strlen("cocoon: guard line 0\n"));
	log_set_stderr_writer(NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_other_thread_never_calls_the_writer),
		cmocka_unit_test(test_deferred_lines_are_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
