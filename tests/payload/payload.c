/* The static multi-call test payload (after crun's tests/init.c). Every e2e
 * test runs one of these inside a container instead of shell one-liners.
 *
 *   payload echo WORDS...       print the words
 *   payload exit N              exit with status N
 *   payload kill-self SIG       die of signal SIG (a number)
 *   payload env                 print the environment
 *   payload cwd                 print the working directory
 *   payload hostname            print the hostname
 *   payload cat                 copy stdin to stdout
 *   payload lines N             print N lines "%015d\n" (0, 1, ...: 16 bytes
 *                               each, so every byte's place is known) in
 *                               64 KiB writes, then "lines: done" on stderr
 *   payload counter [MS]        print 0, 1, 2, ... every MS ms (default 100);
 *                               exits 143 on SIGTERM
 *   payload sleep SECONDS       sleep
 *   payload memhog MIB [SEED [DIRTY%]]  fill MIB of anonymous memory with
 *                               pseudo-random bytes, print its hash, then print
 *                               it again every second, dirtying DIRTY% of the
 *                               pages each round
 *   payload threads N           N threads each counting; prints all counts
 *   payload pipes               parent and child talk over a pipe and a
 *                               socketpair, printing each round trip
 *   payload fileoffset PATH     append lines to PATH, printing the offset
 *   payload mmapfile PATH       map PATH shared and count in it: every 200 ms
 *                               the next number is written into the mapping
 *                               (as "N\n") and printed as "mmap N"
 *   payload forks N             start up to N sleeping children, then print
 *                               "forked K" (K < N when fork() failed, with
 *                               the error) and wait
 *   payload tcp PORT [pair]     listen on 127.0.0.1:PORT and answer each
 *                               8-byte number with the next; with "pair", a
 *                               child holds one connection to it and prints
 *                               each round trip
 *   payload tcp-connect PORT    one round trip to "payload tcp", printed
 *   payload tcp-client PORT     round trips to "payload tcp" every 200 ms, printed
 *   payload shm-put KEY TEXT    a SysV shared memory segment under KEY with TEXT
 *   payload shm-get KEY         print the text of segment KEY (pods: IPC shared)
 *   payload echo-server PORT    listen on every address (v4 and v6) at PORT
 *                               and send back whatever each connection sends;
 *                               prints "accepted" and "closed N" (N bytes)
 *   payload sink PORT           listen on every address at PORT; for each
 *                               connection in turn, read until EOF, answer
 *                               "N\n" (N bytes read) and close (the network
 *                               bench's stream receiver)
 *   payload escape [MS]         tries what a confined container must not do
 *                               and prints one "what: result" line each
 *                               (OK or the errno name); with MS, repeats
 *                               every MS ms, each round ending in "--"
 *   payload kill-all [MS]       prints "pid: N" (its own pid), then every MS
 *                               ms (default 10) sends SIGKILL to every process
 *                               it may signal (kill(-1)); prints
 *                               "kill-all: OK" or the errno name at each change
 *   payload files DIR [KEEP-CWD] every kind of file CRIU meets, held open:
 *                               fd 3 the FIFO DIR/fifo with "fifo-data\n" in
 *                               it, fd 4 a memfd and fd 5 an O_TMPFILE in
 *                               DIR (64 KiB of pseudo-random bytes each,
 *                               offset 1234), fd 6 a unix socket listening
 *                               on DIR/sock, fds 7 and 8 a connected pair
 *                               through it with "ping\n" in flight each way;
 *                               the working directory DIR/gone, removed
 *                               (unless KEEP-CWD). Prints "files: NAME: ERROR"
 *                               for what the filesystem refuses, then
 *                               "files: ready", then answers each connection on
 *                               fd 6 with "pong\n"; once DIR/check exists,
 *                               reads the pair and prints "pair: ok" or
 *                               "pair: BAD ..."
 *   payload unix-connect PATH   sends "ping\n" to the socket PATH, prints
 *                               the answer
 *   payload lock PATH           takes an exclusive flock() on PATH (made
 *                               if missing), prints "lock: held", sleeps
 *   payload trylock PATH        tries that lock without waiting: prints
 *                               "trylock: busy" (someone holds it) or
 *                               "trylock: free", or the error
 *   payload own-guest [HELPER]  (a privileged container) takes the guest's
 *                               root: core_pattern runs "payload HELPER"
 *                               (hold-images unless named) as root in the
 *                               guest's own namespaces when a
 *                               child crashes; prints "own-guest: OK" once
 *                               that helper logs to /hold.log
 *   payload hold-images PID     that helper: opens every file that appears in
 *                               the guest's checkpoints share, keeps the
 *                               handles, and once /go exists in the
 *                               container's root writes through each (at 0
 *                               and 4 MiB past its end, three times), logging
 *                               to /hold.log there: "opened NAME", "wrote N
 *                               bytes", "done"
 *   payload fill-xattrs PID     another helper: user.* extended attributes of
 *                               64 KiB on one file of the guest's shared
 *                               directory, up to 64 MiB, logging "xattrs N
 *                               KiB", then "refused: ERROR" or "done"
 *   payload fill-unlinked PID   another: a file of the shared directory
 *                               opened, removed, and 64 MiB written into it,
 *                               logging "unlinked N MiB", then "refused:
 *                               ERROR" or "done"
 */
#include "payload.h"
#include "payload-files.h"
#include "payload-guest.h"
#include "payload-net.h"

#include <errno.h>
#include <sys/shm.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static void on_term(int sig)
{
	static const char msg[] = "counter: terminated\n";
	if (write(1, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(128 + sig);
}

static int cmd_lines(int argc, char **argv)
{
	static char buf[(64 << 10) + 1]; /* + snprintf's NUL */
	unsigned long n = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
	size_t len = 0;
	for (unsigned long i = 0; i < n; i++) {
		len += (size_t)snprintf(buf + len, 17, "%015lu\n", i);
		if (len == sizeof(buf) - 1 || i + 1 == n) {
			for (size_t off = 0; off < len;) {
				ssize_t w = write(1, buf + off, len - off);
				if (w <= 0)
					return 1;
				off += (size_t)w;
			}
			len = 0;
		}
	}
	fprintf(stderr, "lines: done\n");
	return 0;
}

/* A container's process is PID 1 of its pid namespace and gets only the
 * signals it handles; the counter handles TERM like a well-behaved service. */
static int __attribute__((noreturn)) cmd_counter(int argc, char **argv)
{
	long ms = argc > 2 ? atol(argv[2]) : 100;
	signal(SIGTERM, on_term);
	for (unsigned long i = 0;; i++) {
		printf("%lu\n", i);
		fflush(stdout);
		payload_sleep_ms(ms);
	}
}

static int cmd_memhog(int argc, char **argv)
{
	size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 16;
	uint64_t x = argc > 3 ? (uint64_t)atoll(argv[3]) : 88172645463325252ULL;
	size_t len = mib << 20;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (size_t i = 0; i < len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
	/* Optionally keep dirtying the same DIRTY percent of it, every page of
	 * that part each round, so that an incremental dump finds exactly that
	 * share dirty however long it waits. */
	long dirty_pct = argc > 4 ? atol(argv[4]) : 0;
	size_t dirty_pages =
		(len / 4096) * (size_t)(dirty_pct > 0 && dirty_pct <= 100 ? dirty_pct : 0) / 100;
	for (unsigned long round = 0;; round++) {
		printf("memhog %zu MiB hash %016llx round %lu\n", mib,
		       (unsigned long long)fnv1a(p, len), round);
		fflush(stdout);
		for (size_t i = 0; i < dirty_pages; i++)
			p[i * 4096] ^= 1;
		payload_sleep_ms(1000);
	}
}

static volatile unsigned long thread_counts[64];

static void *thread_main(void *arg)
{
	size_t i = (size_t)arg;
	for (;;) {
		thread_counts[i]++;
		payload_sleep_ms(50);
	}
	return NULL;
}

static int __attribute__((noreturn)) cmd_threads(int argc, char **argv)
{
	size_t n = argc > 2 ? (size_t)atol(argv[2]) : 4;
	if (n > 64)
		n = 64;
	for (size_t i = 0; i < n; i++) {
		pthread_t t;
		pthread_create(&t, NULL, thread_main, (void *)i);
	}
	for (;;) {
		payload_sleep_ms(500);
		printf("threads");
		for (size_t i = 0; i < n; i++)
			printf(" %lu", thread_counts[i]);
		printf("\n");
		fflush(stdout);
	}
}

static int cmd_pipes(void)
{
	int p2c[2], c2p[2], sv[2];
	if (pipe(p2c) < 0 || pipe(c2p) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		unsigned long v;
		for (;;) {
			if (read(p2c[0], &v, sizeof(v)) != sizeof(v))
				_exit(1);
			v++;
			if (write(c2p[1], &v, sizeof(v)) != sizeof(v))
				_exit(1);
			if (read(sv[1], &v, sizeof(v)) != sizeof(v))
				_exit(1);
			v++;
			if (write(sv[1], &v, sizeof(v)) != sizeof(v))
				_exit(1);
		}
	}
	for (unsigned long v = 0;;) {
		unsigned long sent = v;
		if (write(p2c[1], &v, sizeof(v)) != sizeof(v) ||
		    read(c2p[0], &v, sizeof(v)) != sizeof(v) ||
		    write(sv[0], &v, sizeof(v)) != sizeof(v) ||
		    read(sv[0], &v, sizeof(v)) != sizeof(v)) {
			printf("pipes broken\n");
			return 1;
		}
		printf("pipes %lu -> %lu %s\n", sent, v, v == sent + 2 ? "ok" : "BAD");
		fflush(stdout);
		payload_sleep_ms(200);
	}
}

static int cmd_mmapfile(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	FILE *f = fopen(argv[2], "a+");
	if (!f || ftruncate(fileno(f), 4096) < 0) {
		perror(argv[2]);
		return 1;
	}
	char *map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fileno(f), 0);
	if (map == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	fclose(f); /* the mapping alone holds the file */
	unsigned long n = strtoul(map, NULL, 10);
	for (;; n++) {
		int len = snprintf(map, 64, "%lu\n", n);
		memset(map + len, 0, 64 - (size_t)len);
		printf("mmap %lu\n", n);
		fflush(stdout);
		payload_sleep_ms(200);
	}
}

static int cmd_forks(int argc, char **argv)
{
	int want = argc > 2 ? atoi(argv[2]) : 1, k = 0;
	const char *why = "";
	for (; k < want; k++) {
		pid_t pid = fork();
		if (pid == 0) {
			for (;;)
				pause();
		}
		if (pid < 0) {
			why = strerror(errno);
			break;
		}
	}
	printf("forked %d%s%s\n", k, *why ? " " : "", why);
	fflush(stdout);
	for (;;)
		pause();
	return 0;
}

static int cmd_fileoffset(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	FILE *f = fopen(argv[2], "a+");
	if (!f) {
		perror(argv[2]);
		return 1;
	}
	for (unsigned long i = 0;; i++) {
		fprintf(f, "line %lu\n", i);
		fflush(f);
		printf("offset %ld line %lu\n", ftell(f), i);
		fflush(stdout);
		payload_sleep_ms(200);
	}
}

/* SysV shared memory: what the containers of a pod share through their
 * IPC namespace. The segment outlives the process that made it. */
static int cmd_shm(int argc, char **argv, bool put)
{
	if (argc < (put ? 4 : 3))
		return 2;
	key_t key = (key_t)atoi(argv[2]);
	int id = shmget(key, 4096, put ? IPC_CREAT | 0600 : 0);
	char *mem = id < 0 ? (void *)-1 : shmat(id, NULL, 0);
	if (mem == (void *)-1) {
		fprintf(stderr, "payload: shm %d: %s\n", key, strerror(errno));
		return 1;
	}
	if (put)
		snprintf(mem, 4096, "%s", argv[3]);
	else
		printf("%s\n", mem);
	return 0;
}

static void report(const char *what, int r)
{
	printf("%s: %s\n", what, r < 0 ? strerrorname_np(errno) : "OK");
}

/* The guest's shares and modules, pid 1, the masked and read-only paths,
 * and a syscall the e2e seccomp profile answers with EOPNOTSUPP. */
static void escape_round(void)
{
	mkdir("/tmp/escape-mnt", 0755);
	report("mount-share",
	       mount("cocoon", "/tmp/escape-mnt", "9p", 0, "trans=virtio,version=9p2000.L"));
	umount2("/tmp/escape-mnt", MNT_DETACH);
	report("mount-tmpfs", mount("tmpfs", "/tmp/escape-mnt", "tmpfs", 0, NULL));
	umount2("/tmp/escape-mnt", MNT_DETACH);
	int fd = open("/bin/payload", O_RDONLY | O_CLOEXEC);
	report("finit-module", (int)syscall(SYS_finit_module, fd, "", 0));
	close(fd);
	report("mknod", mknod("/dev/escape-null", S_IFCHR | 0600, makedev(1, 3)));
	unlink("/dev/escape-null");
	report("chroot", chroot("/"));
	report("kill-1-0", kill(1, 0));
	char buf[64];
	fd = open("/proc/kcore", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	printf("read-kcore: %s\n", n < 0 ? strerrorname_np(errno) : n == 0 ? "empty" : "data");
	if (fd >= 0)
		close(fd);
	/* Opened for writing, never written: on a read-only mount the open
	 * itself fails (EROFS). */
	fd = open("/proc/sys/kernel/hostname", O_WRONLY | O_CLOEXEC);
	report("open-proc-sys-rw", fd);
	if (fd >= 0)
		close(fd);
	errno = 0;
	report("getpriority", syscall(SYS_getpriority, PRIO_PROCESS, 0) < 0 && errno ? -1 : 0);
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "CapEff:", 7) || !strncmp(line, "CapBnd:", 7) ||
		    !strncmp(line, "Seccomp:", 8) || !strncmp(line, "NoNewPrivs:", 11))
			fputs(line, stdout);
	if (f)
		fclose(f);
}

static int cmd_escape(int argc, char **argv)
{
	long ms = argc > 2 ? atol(argv[2]) : 0;
	for (;;) {
		escape_round();
		if (ms <= 0)
			return 0;
		printf("--\n");
		fflush(stdout);
		payload_sleep_ms(ms);
	}
}

static int __attribute__((noreturn)) cmd_kill_all(int argc, char **argv)
{
	long ms = argc > 2 ? atol(argv[2]) : 10;
	int last = -1;
	printf("pid: %d\n", (int)getpid());
	fflush(stdout);
	for (;;) {
		int r = kill(-1, SIGKILL) == 0 ? 0 : errno;
		if (r != last) {
			printf("kill-all: %s\n", r ? strerrorname_np(r) : "OK");
			fflush(stdout);
			last = r;
		}
		payload_sleep_ms(ms);
	}
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (strcmp(cmd, "echo") == 0) {
		for (int i = 2; i < argc; i++)
			printf("%s%s", argv[i], i + 1 < argc ? " " : "");
		printf("\n");
		return 0;
	}
	if (strcmp(cmd, "exit") == 0)
		return argc > 2 ? atoi(argv[2]) : 0;
	if (strcmp(cmd, "kill-self") == 0) {
		fflush(stdout);
		int sig = argc > 2 ? atoi(argv[2]) : SIGTERM;
		signal(sig, SIG_DFL);
		kill(getpid(), sig);
		pause();
		return 1;
	}
	if (strcmp(cmd, "env") == 0) {
		extern char **environ;
		for (char **e = environ; *e; e++)
			printf("%s\n", *e);
		return 0;
	}
	if (strcmp(cmd, "cwd") == 0) {
		char buf[4096];
		printf("%s\n", getcwd(buf, sizeof(buf)) ? buf : "?");
		return 0;
	}
	if (strcmp(cmd, "hostname") == 0) {
		char buf[256] = "";
		gethostname(buf, sizeof(buf));
		printf("%s\n", buf);
		return 0;
	}
	if (strcmp(cmd, "cat") == 0) {
		char buf[4096];
		ssize_t n;
		while ((n = read(0, buf, sizeof(buf))) > 0)
			if (write(1, buf, (size_t)n) != n)
				return 1;
		return 0;
	}
	if (strcmp(cmd, "counter") == 0)
		return cmd_counter(argc, argv);
	if (strcmp(cmd, "lines") == 0)
		return cmd_lines(argc, argv);
	if (strcmp(cmd, "sleep") == 0) {
		payload_sleep_ms(argc > 2 ? atol(argv[2]) * 1000 : 1000);
		return 0;
	}
	if (strcmp(cmd, "memhog") == 0)
		return cmd_memhog(argc, argv);
	if (strcmp(cmd, "threads") == 0)
		return cmd_threads(argc, argv);
	if (strcmp(cmd, "pipes") == 0)
		return cmd_pipes();
	if (strcmp(cmd, "fileoffset") == 0)
		return cmd_fileoffset(argc, argv);
	if (strcmp(cmd, "mmapfile") == 0)
		return cmd_mmapfile(argc, argv);
	if (strcmp(cmd, "forks") == 0)
		return cmd_forks(argc, argv);
	if (strcmp(cmd, "tcp") == 0)
		return cmd_tcp(argc, argv);
	if (strcmp(cmd, "tcp-connect") == 0)
		return cmd_tcp_connect(argc, argv);
	if (strcmp(cmd, "tcp-client") == 0)
		return cmd_tcp_client(argc, argv);
	if (strcmp(cmd, "shm-put") == 0 || strcmp(cmd, "shm-get") == 0)
		return cmd_shm(argc, argv, strcmp(cmd, "shm-put") == 0);
	if (strcmp(cmd, "echo-server") == 0)
		return cmd_echo_server(argc, argv);
	if (strcmp(cmd, "sink") == 0)
		return cmd_sink(argc, argv);
	if (strcmp(cmd, "escape") == 0)
		return cmd_escape(argc, argv);
	if (strcmp(cmd, "kill-all") == 0)
		return cmd_kill_all(argc, argv);
	if (strcmp(cmd, "files") == 0)
		return cmd_files(argc, argv);
	if (strcmp(cmd, "unix-connect") == 0)
		return cmd_unix_connect(argc, argv);
	if (strcmp(cmd, "lock") == 0 || strcmp(cmd, "trylock") == 0)
		return cmd_lock(argc, argv, strcmp(cmd, "lock") == 0);
	if (strcmp(cmd, "own-guest") == 0)
		return cmd_own_guest(argc, argv);
	if (strcmp(cmd, "hold-images") == 0)
		return cmd_hold_images(argc, argv);
	if (strcmp(cmd, "fill-xattrs") == 0)
		return cmd_fill_xattrs(argc, argv);
	if (strcmp(cmd, "fill-unlinked") == 0)
		return cmd_fill_unlinked(argc, argv);
	fprintf(stderr, "payload: unknown command '%s'\n", cmd);
	return 2;
}
