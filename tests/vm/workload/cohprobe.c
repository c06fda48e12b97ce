// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * cohprobe: the measuring tools of the VM end-to-end test and the migration
 * benchmark, independent of coherentd (they are the cross-check of what
 * coherentd reports, so they ask the kernel directly).
 *
 *   cohprobe nodes PID RANGE
 *       NUMA node of every page of RANGE of PID, by move_pages(2) with no
 *       target (a query): "nodeN COUNT" lines in node order, then
 *       "absent COUNT" (not present, no mapping, zero page: any -errno).
 *   cohprobe pfns PID RANGE [PHYS_START PHYS_SIZE]
 *       physical frames of RANGE from /proc/PID/pagemap (root only):
 *       "in COUNT" pages inside [PHYS_START, PHYS_START+PHYS_SIZE) (default:
 *       the pool of the VM, $COH_POOL_START and $COH_POOL_SIZE),
 *       "present COUNT", "total COUNT".
 *   cohprobe move PID RANGE NODE [BATCH]
 *       move_pages(2) of every page of RANGE to NODE, BATCH pages per call
 *       (default: all in one call); fails unless every page ends on NODE.
 *       Prints "moved N pages to nodeX in S s"; the time covers the calls only.
 *   cohprobe zombie
 *       forks a child that exits at once, waits until it is a zombie, prints
 *       its pid and sleeps without ever reaping it.
 *   cohprobe time FILE COMMAND [ARG...]
 *       runs COMMAND, writes its wall time in seconds to FILE, exits with its
 *       exit status (128+N after signal N).
 *   cohprobe now
 *       CLOCK_MONOTONIC in seconds, nanosecond resolution.
 *   cohprobe varlink [-w] SOCKET METHOD [PARAMETERS]
 *       one raw Varlink call on the AF_UNIX socket SOCKET, bypassing cohctl
 *       and its checks: sends {"method": METHOD, "parameters": PARAMETERS}
 *       (a JSON object, default {}) and prints the reply on one line.
 *       With -w it connects, prints "connected" and sends only when it gets
 *       SIGUSR1: a client ready to ask at a precise moment, with no process
 *       start in between.
 *   cohprobe json PATH
 *       reads one JSON value on stdin and prints the part PATH selects:
 *       dot-separated steps, each a member name, an array index, "#" (the
 *       length of an array) or KEY=VALUE (the first array element whose
 *       member KEY prints as VALUE). Strings print raw, other values as JSON.
 *       Exit 1 when PATH selects nothing.
 *
 * RANGE is "START-END", hexadecimal with 0x or decimal, END exclusive, as
 * cohwork writes it. Exit status: 0 success, 1 failure, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <numaif.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define PAGE 4096UL
#define MAX_NODES 64

/* libnuma must not print on its own. */
void numa_error(char *where);
void numa_warn(int num, char *fmt, ...);

void numa_error(char *where)
{
	(void)where;
}

void numa_warn(int num, char *fmt, ...)
{
	(void)num;
	(void)fmt;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: cohprobe nodes PID RANGE\n"
		"       cohprobe pfns PID RANGE [PHYS_START PHYS_SIZE]\n"
		"       cohprobe move PID RANGE NODE [BATCH]\n"
		"       cohprobe zombie\n"
		"       cohprobe time FILE COMMAND [ARG...]\n"
		"       cohprobe now\n"
		"       cohprobe varlink [-w] SOCKET METHOD [PARAMETERS]\n"
		"       cohprobe json PATH\n"
		"RANGE is START-END (END exclusive).\n");
	return 2;
}

static int parse_u64(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* "256M", "0x10000000", "4096": bytes. */
static int parse_size(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	default: break;
	}
	if (*end)
		return -EINVAL;
	*ret = (uint64_t)v << shift;
	return 0;
}

static int parse_pid(const char *s, pid_t *ret)
{
	uint64_t v;

	if (parse_u64(s, &v) < 0 || v == 0 || v > INT32_MAX)
		return -EINVAL;
	*ret = (pid_t)v;
	return 0;
}

static int parse_range(const char *s, uint64_t *ret_start, size_t *ret_npages)
{
	char buf[64], *dash;
	uint64_t start, end;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	dash = strchr(buf + 1, '-');
	if (!dash)
		return -EINVAL;
	*dash = '\0';
	if (parse_u64(buf, &start) < 0 || parse_u64(dash + 1, &end) < 0)
		return -EINVAL;
	if (start % PAGE || end % PAGE || end <= start)
		return -EINVAL;
	*ret_start = start;
	*ret_npages = (end - start) / PAGE;
	return 0;
}

static void **page_array(uint64_t start, size_t n)
{
	void **pages = malloc(n * sizeof(*pages) + 1);

	if (pages)
		for (size_t i = 0; i < n; i++)
			pages[i] = (void *)(uintptr_t)(start + i * PAGE);
	return pages;
}

static int cmd_nodes(int argc, char **argv)
{
	uint64_t counts[MAX_NODES] = { 0 }, absent = 0, start;
	size_t n;
	void **pages;
	int *status;
	pid_t pid;
	long r;

	if (argc != 3 || parse_pid(argv[1], &pid) < 0 || parse_range(argv[2], &start, &n) < 0)
		return usage();
	pages = page_array(start, n);
	status = malloc(n * sizeof(*status) + 1);
	if (!pages || !status) {
		fprintf(stderr, "cohprobe: out of memory\n");
		return 1;
	}
	r = move_pages(pid, n, pages, NULL, status, 0);
	if (r < 0) {
		fprintf(stderr, "cohprobe: move_pages(%d) query: %m\n", (int)pid);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (status[i] >= 0 && status[i] < MAX_NODES)
			counts[status[i]]++;
		else
			absent++;
	}
	for (int i = 0; i < MAX_NODES; i++)
		if (counts[i])
			printf("node%d %" PRIu64 "\n", i, counts[i]);
	printf("absent %" PRIu64 "\n", absent);
	return 0;
}

static int cmd_pfns(int argc, char **argv)
{
	uint64_t start, lo, size, in = 0, present = 0, *ent;
	const char *s_start, *s_size;
	char path[64];
	size_t n, done = 0;
	pid_t pid;
	int fd;

	if ((argc != 3 && argc != 5) || parse_pid(argv[1], &pid) < 0 ||
	    parse_range(argv[2], &start, &n) < 0)
		return usage();
	s_start = argc == 5 ? argv[3] : getenv("COH_POOL_START");
	s_size = argc == 5 ? argv[4] : getenv("COH_POOL_SIZE");
	if (!s_start || !s_size || parse_size(s_start, &lo) < 0 || parse_size(s_size, &size) < 0) {
		fprintf(stderr, "cohprobe: no pool range (PHYS_START PHYS_SIZE or $COH_POOL_*)\n");
		return 2;
	}
	ent = malloc(n * sizeof(*ent) + 8);
	if (!ent) {
		fprintf(stderr, "cohprobe: out of memory\n");
		return 1;
	}
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "cohprobe: %s: %m\n", path);
		return 1;
	}
	while (done < n) {
		ssize_t k = pread(fd, ent + done, (n - done) * 8, (off_t)((start / PAGE + done) * 8));

		if (k <= 0) {
			fprintf(stderr, "cohprobe: read %s: %s\n", path, k < 0 ? strerror(errno) : "EOF");
			return 1;
		}
		done += (size_t)k / 8;
	}
	close(fd);
	for (size_t i = 0; i < n; i++) {
		uint64_t pfn = ent[i] & ((UINT64_C(1) << 55) - 1);

		if (!(ent[i] >> 63))
			continue;
		present++;
		if (pfn == 0) {
			/* Present with PFN 0: pagemap hides frames from unprivileged readers. */
			fprintf(stderr, "cohprobe: %s shows no frame numbers (not root?)\n", path);
			return 1;
		}
		if (pfn >= lo / PAGE && pfn < (lo + size) / PAGE)
			in++;
	}
	printf("in %" PRIu64 "\npresent %" PRIu64 "\ntotal %zu\n", in, present, n);
	return 0;
}

static int cmd_move(int argc, char **argv)
{
	uint64_t start, node, batch = 0;
	double t = 0, t0;
	size_t n, bad = 0;
	void **pages;
	int *nodes, *status;
	pid_t pid;

	if ((argc != 4 && argc != 5) || parse_pid(argv[1], &pid) < 0 ||
	    parse_range(argv[2], &start, &n) < 0 || parse_u64(argv[3], &node) < 0 ||
	    node >= MAX_NODES || (argc == 5 && parse_u64(argv[4], &batch) < 0))
		return usage();
	if (batch == 0 || batch > n)
		batch = n;
	pages = page_array(start, n);
	nodes = malloc(n * sizeof(*nodes) + 1);
	status = malloc(n * sizeof(*status) + 1);
	if (!pages || !nodes || !status) {
		fprintf(stderr, "cohprobe: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		nodes[i] = (int)node;
	for (size_t i = 0; i < n; i += batch) {
		size_t k = n - i < batch ? n - i : batch;
		long r;

		t0 = now();
		r = move_pages(pid, k, pages + i, nodes + i, status + i, MPOL_MF_MOVE);
		t += now() - t0;
		if (r < 0) {
			fprintf(stderr, "cohprobe: move_pages(%d, %zu pages): %m\n", (int)pid, k);
			return 1;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (status[i] != (int)node) {
			if (bad++ < 5)
				fprintf(stderr, "cohprobe: page 0x%" PRIx64 ": status %d\n",
					start + i * PAGE, status[i]);
		}
	printf("moved %zu pages to node%d in %.6f s\n", n - bad, (int)node, t);
	if (bad) {
		fprintf(stderr, "cohprobe: %zu of %zu pages not on node%d\n", bad, n, (int)node);
		return 1;
	}
	return 0;
}

static int cmd_zombie(int argc, char **argv)
{
	char path[64], buf[256], *p;
	pid_t child;

	(void)argv;
	if (argc != 1)
		return usage();
	/* The zombie's parent must not reap it, whatever the shell does with SIGCHLD. */
	signal(SIGCHLD, SIG_DFL);
	child = fork();
	if (child < 0) {
		fprintf(stderr, "cohprobe: fork: %m\n");
		return 1;
	}
	if (child == 0)
		_exit(0);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)child);
	for (int i = 0; i < 1000; i++) {
		FILE *f = fopen(path, "re");
		bool zombie = false;

		if (f) {
			if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1] == ' ' &&
			    p[2] == 'Z')
				zombie = true;
			fclose(f);
		}
		if (zombie) {
			printf("%d\n", (int)child);
			fflush(stdout);
			for (;;)
				pause();
		}
		usleep(10000);
	}
	fprintf(stderr, "cohprobe: child %d did not become a zombie\n", (int)child);
	return 1;
}

static int cmd_time(int argc, char **argv)
{
	double t0, t;
	pid_t child;
	int status;
	FILE *f;

	if (argc < 3)
		return usage();
	t0 = now();
	child = fork();
	if (child < 0) {
		fprintf(stderr, "cohprobe: fork: %m\n");
		return 1;
	}
	if (child == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "cohprobe: exec %s: %m\n", argv[2]);
		_exit(127);
	}
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, "cohprobe: waitpid: %m\n");
			return 1;
		}
	t = now() - t0;
	f = fopen(argv[1], "we");
	if (!f || fprintf(f, "%.6f\n", t) < 0 || fclose(f) != 0) {
		fprintf(stderr, "cohprobe: cannot write %s: %m\n", argv[1]);
		return 1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int cmd_varlink(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	json_object *msg, *params;
	char reply[1 << 16];
	bool wait_signal = false;
	const char *text;
	size_t len = 0;
	sigset_t set;
	int fd, sig;

	if (argc > 1 && strcmp(argv[1], "-w") == 0) {
		wait_signal = true;
		argc--;
		argv++;
		/* Blocked before connecting: an early SIGUSR1 waits instead of killing. */
		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		sigprocmask(SIG_BLOCK, &set, NULL);
	}
	if ((argc != 3 && argc != 4) || strlen(argv[1]) >= sizeof(sa.sun_path))
		return usage();
	params = json_tokener_parse(argc == 4 ? argv[3] : "{}");
	if (!params || !json_object_is_type(params, json_type_object)) {
		fprintf(stderr, "cohprobe: PARAMETERS is not a JSON object\n");
		return 2;
	}
	msg = json_object_new_object();
	json_object_object_add(msg, "method", json_object_new_string(argv[2]));
	json_object_object_add(msg, "parameters", params);
	text = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
	strcpy(sa.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "cohprobe: connect %s: %m\n", argv[1]);
		return 1;
	}
	if (wait_signal) {
		printf("connected\n");
		fflush(stdout);
		while (sigwait(&set, &sig) != 0)
			;
	}
	/* The message with its terminating NUL. */
	if (send(fd, text, strlen(text) + 1, MSG_NOSIGNAL) != (ssize_t)(strlen(text) + 1)) {
		fprintf(stderr, "cohprobe: send: %m\n");
		return 1;
	}
	while (len < sizeof(reply) - 1) {
		ssize_t k = recv(fd, reply + len, sizeof(reply) - 1 - len, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			fprintf(stderr, "cohprobe: %s before a complete reply\n",
				k < 0 ? strerror(errno) : "EOF");
			return 1;
		}
		if (memchr(reply + len, '\0', (size_t)k))
			break;
		len += (size_t)k;
	}
	reply[sizeof(reply) - 1] = '\0';
	printf("%s\n", reply);
	close(fd);
	return 0;
}

static bool member_matches(json_object *elem, const char *key, const char *value)
{
	json_object *m;
	const char *s;

	if (!json_object_is_type(elem, json_type_object) || !json_object_object_get_ex(elem, key, &m))
		return false;
	s = json_object_is_type(m, json_type_string) ? json_object_get_string(m)
						      : json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
	return s && strcmp(s, value) == 0;
}

static int cmd_json(int argc, char **argv)
{
	json_object *root, *cur;
	char *path, *step, *save = NULL;
	size_t len = 0, cap = 1 << 16;
	char *in = malloc(cap);
	size_t k;

	if (argc != 2 || !in)
		return usage();
	while ((k = fread(in + len, 1, cap - len - 1, stdin)) > 0) {
		len += k;
		if (cap - len - 1 == 0) {
			char *bigger = realloc(in, cap * 2);

			if (!bigger) {
				fprintf(stderr, "cohprobe: out of memory\n");
				return 1;
			}
			in = bigger;
			cap *= 2;
		}
	}
	in[len] = '\0';
	root = json_tokener_parse(in);
	if (!root) {
		fprintf(stderr, "cohprobe: stdin is not JSON\n");
		return 1;
	}
	cur = root;
	path = strdup(argv[1]);
	for (step = strtok_r(path, ".", &save); step; step = strtok_r(NULL, ".", &save)) {
		char *eq = strchr(step, '=');
		uint64_t idx;

		if (json_object_is_type(cur, json_type_array)) {
			size_t n = json_object_array_length(cur);
			json_object *found = NULL;

			if (strcmp(step, "#") == 0) {
				printf("%zu\n", n);
				return 0;
			}
			if (eq) {
				*eq = '\0';
				for (size_t i = 0; i < n && !found; i++)
					if (member_matches(json_object_array_get_idx(cur, i), step, eq + 1))
						found = json_object_array_get_idx(cur, i);
			} else if (parse_u64(step, &idx) == 0 && idx < n) {
				found = json_object_array_get_idx(cur, idx);
			}
			if (!found)
				return 1;
			cur = found;
		} else if (json_object_is_type(cur, json_type_object)) {
			if (!json_object_object_get_ex(cur, step, &cur))
				return 1;
		} else {
			return 1;
		}
	}
	if (json_object_is_type(cur, json_type_string))
		printf("%s\n", json_object_get_string(cur));
	else
		printf("%s\n", json_object_to_json_string_ext(cur, JSON_C_TO_STRING_PLAIN |
								    JSON_C_TO_STRING_NOSLASHESCAPE));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "nodes") == 0)
		return cmd_nodes(argc - 1, argv + 1);
	if (strcmp(argv[1], "pfns") == 0)
		return cmd_pfns(argc - 1, argv + 1);
	if (strcmp(argv[1], "move") == 0)
		return cmd_move(argc - 1, argv + 1);
	if (strcmp(argv[1], "zombie") == 0)
		return cmd_zombie(argc - 1, argv + 1);
	if (strcmp(argv[1], "time") == 0)
		return cmd_time(argc - 1, argv + 1);
	if (strcmp(argv[1], "now") == 0 && argc == 2) {
		printf("%.9f\n", now());
		return 0;
	}
	if (strcmp(argv[1], "varlink") == 0)
		return cmd_varlink(argc - 1, argv + 1);
	if (strcmp(argv[1], "json") == 0)
		return cmd_json(argc - 1, argv + 1);
	return usage();
}
