/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Policy targets: the set the daemon keeps, and which processes a target is
 * now, read from procfs and cgroupfs under a root directory. Nothing here
 * logs.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "targets.h"

/* Depth of cgroup directories below a target that are still read; deeper is -ELOOP. */
#define CGROUP_WALK_DEPTH_MAX 64
/* Where Slurm's cgroup/v2 job directories are looked for (the mount is depth 0). */
#define CGROUP_JOB_DEPTH_MAX 6
/* cgroup.procs of one cgroup; 4 MiB is about half a million pids. */
#define CGROUP_PROCS_MAX READ_FILE_MAX_DEFAULT

static const char *const kind_table[_TARGET_KIND_MAX] = {
	[TARGET_PID] = "pid",
	[TARGET_CGROUP] = "cgroup",
	[TARGET_JOB] = "job",
};

const char *target_kind_to_string(TargetKind k)
{
	return (unsigned) k < _TARGET_KIND_MAX ? kind_table[k] : NULL;
}

int target_kind_from_string(const char *s)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < _TARGET_KIND_MAX; i++)
		if (streq(s, kind_table[i]))
			return (int) i;
	return -EINVAL;
}

/* ---------------------------------------------------------------- keys */

bool target_key_equal(const TargetKey *a, const TargetKey *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case TARGET_PID:
		return a->pid == b->pid && a->starttime == b->starttime;
	case TARGET_CGROUP:
		return a->cgroup && b->cgroup && streq(a->cgroup, b->cgroup);
	case TARGET_JOB:
		return a->job == b->job;
	default:
		return false;
	}
}

int target_key_copy(TargetKey *dst, const TargetKey *src)
{
	TargetKey k = *src;

	if (src->cgroup) {
		k.cgroup = strdup(src->cgroup);
		if (!k.cgroup)
			return -ENOMEM;
	}
	*dst = k;
	return 0;
}

void target_key_done(TargetKey *k)
{
	free(k->cgroup);
	k->cgroup = NULL;
}

char *target_key_format(const TargetKey *k, char *buf, size_t size)
{
	switch (k->kind) {
	case TARGET_PID:
		snprintf(buf, size, "pid:%d", (int) k->pid);
		break;
	case TARGET_CGROUP:
		snprintf(buf, size, "cgroup:%s", k->cgroup ? k->cgroup : "");
		break;
	case TARGET_JOB:
		snprintf(buf, size, "job:%" PRIu64, k->job);
		break;
	default:
		snprintf(buf, size, "invalid");
		break;
	}
	return buf;
}

int cgroup_path_normalize(const char *path, char **ret)
{
	_cleanup_free_ char *n = NULL;
	size_t len = 0;
	const char *p;

	if (isempty(path))
		return -EINVAL;
	if (strlen(path) > PATH_MAX)
		return -EINVAL;
	n = malloc(strlen(path) + 2);
	if (!n)
		return -ENOMEM;

	for (p = path; *p;) {
		size_t c;

		p += strspn(p, "/");
		c = strcspn(p, "/");
		if (c == 0)
			break;
		if ((c == 1 && p[0] == '.') || (c == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		if (c > NAME_MAX)
			return -EINVAL;
		n[len++] = '/';
		memcpy(n + len, p, c);
		len += c;
		p += c;
	}
	if (len == 0)
		n[len++] = '/';
	n[len] = '\0';

	*ret = TAKE_PTR(n);
	return 0;
}

/* ---------------------------------------------------------------- the set */

void target_set_init(TargetSet *s)
{
	*s = (TargetSet) { .next_id = 1 };
}

void target_set_done(TargetSet *s)
{
	for (size_t i = 0; i < s->n_targets; i++)
		target_key_done(&s->targets[i].key);
	free(s->targets);
	target_set_init(s);
}

Target *target_set_find(const TargetSet *s, const TargetKey *key)
{
	for (size_t i = 0; i < s->n_targets; i++)
		if (target_key_equal(&s->targets[i].key, key))
			return &s->targets[i];
	return NULL;
}

Target *target_set_find_id(const TargetSet *s, uint64_t id)
{
	for (size_t i = 0; i < s->n_targets; i++)
		if (s->targets[i].id == id)
			return &s->targets[i];
	return NULL;
}

int target_set_put(TargetSet *s, const TargetKey *key, uid_t owner, const PolicySpec *policy,
		   uint64_t now_realtime_usec, uint64_t *ret_id)
{
	Target *t, *n;
	int r;

	t = target_set_find(s, key);
	if (t) {
		t->owner = owner;
		t->policy = *policy;
		t->set_realtime_usec = now_realtime_usec;
		if (ret_id)
			*ret_id = t->id;
		return 0;
	}

	n = realloc(s->targets, (s->n_targets + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	s->targets = n;
	t = &s->targets[s->n_targets];
	*t = (Target) {
		.owner = owner,
		.policy = *policy,
		.set_realtime_usec = now_realtime_usec,
	};
	r = target_key_copy(&t->key, key);
	if (r < 0)
		return r;
	if (s->next_id == 0)    /* a TargetSet that was not initialized: ids start at 1 */
		s->next_id = 1;
	t->id = s->next_id++;
	s->n_targets++;
	if (ret_id)
		*ret_id = t->id;
	return 0;
}

static void target_set_remove_at(TargetSet *s, size_t i)
{
	target_key_done(&s->targets[i].key);
	memmove(&s->targets[i], &s->targets[i + 1], (s->n_targets - i - 1) * sizeof(Target));
	s->n_targets--;
}

int target_set_remove(TargetSet *s, const TargetKey *key)
{
	Target *t = target_set_find(s, key);

	if (!t)
		return -ENOENT;
	target_set_remove_at(s, (size_t) (t - s->targets));
	return 0;
}

int target_set_remove_id(TargetSet *s, uint64_t id)
{
	Target *t = target_set_find_id(s, id);

	if (!t)
		return -ENOENT;
	target_set_remove_at(s, (size_t) (t - s->targets));
	return 0;
}

/* ---------------------------------------------------------------- mountinfo */

/* Undo the kernel's octal escapes of ' ', '\t', '\n' and '\\' in mountinfo paths, in place. */
static void mountinfo_unescape(char *s)
{
	char *w = s;

	for (const char *p = s; *p;) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*w++ = (char) (((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
			p += 4;
		} else
			*w++ = *p++;
	}
	*w = '\0';
}

/*
 * One line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER".
 * Returns the mount point (in the line's buffer) when the file system is cgroup2.
 */
static char *mountinfo_line_cgroup2(char *line)
{
	char *fields[5], *sep, *fstype, *save = NULL, *tok;
	size_t n = 0;

	sep = strstr(line, " - ");
	if (!sep)
		return NULL;
	*sep = '\0';
	fstype = sep + 3;
	fstype[strcspn(fstype, " ")] = '\0';
	if (!streq(fstype, "cgroup2"))
		return NULL;

	for (tok = strtok_r(line, " ", &save); tok && n < ELEMENTSOF(fields);
	     tok = strtok_r(NULL, " ", &save))
		fields[n++] = tok;
	if (n < 5 || fields[4][0] != '/')
		return NULL;
	mountinfo_unescape(fields[4]);
	return fields[4];
}

int cgroup2_find_mount(const char *root, char **ret)
{
	_cleanup_free_ char *text = NULL;
	char *line, *save = NULL;
	int r;

	r = read_file_root(root, "/proc/self/mountinfo", 0, &text, NULL);
	if (r < 0)
		return r;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *m = mountinfo_line_cgroup2(line);

		if (m) {
			char *c = strdup(m);

			if (!c)
				return -ENOMEM;
			*ret = c;
			return 0;
		}
	}
	return -ENOENT;
}

/* ---------------------------------------------------------------- procfs */

static int proc_path(pid_t pid, const char *file, char *buf, size_t size)
{
	if (pid <= 0)
		return -ESRCH;
	snprintf(buf, size, "/proc/%d/%s", (int) pid, file);
	return 0;
}

/* The state letter and the start time from /proc/PID/stat. */
static int pid_read_stat(const char *root, pid_t pid, char *ret_state, uint64_t *ret_starttime)
{
	_cleanup_free_ char *text = NULL;
	char path[64], *p, *end;
	uint64_t v;
	int r;

	r = proc_path(pid, "stat", path, sizeof(path));
	if (r < 0)
		return r;
	r = read_file_root(root, path, 0, &text, NULL);
	if (r == -ENOENT || r == -ESRCH)
		return -ESRCH;
	if (r < 0)
		return r;

	/* comm may contain anything, ')' and spaces included: the last ')' ends it. */
	p = strrchr(text, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -EBADMSG;
	p += 2;
	if (ret_state)
		*ret_state = *p;
	/* field 3 is the state; 19 more spaces lead to field 22. */
	for (unsigned i = 0; i < 19; i++) {
		p = strchr(p, ' ');
		if (!p)
			return -EBADMSG;
		p++;
	}
	if (*p < '0' || *p > '9')
		return -EBADMSG;
	errno = 0;
	v = strtoull(p, &end, 10);
	if (errno != 0 || (*end != ' ' && *end != '\n' && *end != '\0'))
		return -EBADMSG;
	if (ret_starttime)
		*ret_starttime = v;
	return 0;
}

int pid_read_starttime(const char *root, pid_t pid, uint64_t *ret)
{
	return pid_read_stat(root, pid, NULL, ret);
}

static int pid_read_status(const char *root, pid_t pid, AuthProcStatus *ret)
{
	_cleanup_free_ char *text = NULL;
	char path[64];
	size_t size;
	int r;

	r = proc_path(pid, "status", path, sizeof(path));
	if (r < 0)
		return r;
	r = read_file_root(root, path, 0, &text, &size);
	if (r == -ENOENT || r == -ESRCH)
		return -ESRCH;
	if (r < 0)
		return r;
	return auth_parse_status(text, size, ret);
}

int pid_read_uid(const char *root, pid_t pid, uid_t *ret)
{
	AuthProcStatus st;
	int r;

	r = pid_read_status(root, pid, &st);
	if (r < 0)
		return r;
	*ret = st.ruid;
	return 0;
}

/* ---------------------------------------------------------------- cgroupfs */

static char *cgroup_dir_path(const char *root, const char *mount, const char *cgroup)
{
	_cleanup_free_ char *m = NULL;
	char *p;

	m = path_join_root(root, mount);
	if (!m)
		return NULL;
	p = path_join_root(m, cgroup);
	return p;
}

static bool dirent_is_dir(int fd_dir, const struct dirent *de)
{
	struct stat st;

	if (de->d_type == DT_DIR)
		return true;
	if (de->d_type != DT_UNKNOWN)
		return false;
	return fstatat(fd_dir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static bool job_dir_name(const char *name, uint64_t *ret_job)
{
	const char *n = startswith(name, "job_");

	/* Slurm writes "job_%u": no sign, no leading zero (job_042 is not job 42). */
	if (!n || *n < '1' || *n > '9')
		return false;
	return safe_atou64(n, ret_job) >= 0;
}

/* Depth-first below fd_dir (which is at depth `depth`, path `rel`). 1 when found. */
static int find_job_at(int fd_dir, const char *rel, unsigned depth, uint64_t job, char **ret)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int fd, r;

	d = fdopendir(fd_dir);
	if (!d) {
		safe_close(fd_dir);
		return -errno;
	}

	while ((errno = 0, de = readdir(d))) {
		_cleanup_free_ char *sub = NULL;
		uint64_t j;

		if (de->d_name[0] == '.')
			continue;
		if (!dirent_is_dir(dirfd(d), de))
			continue;
		if (asprintf(&sub, "%s/%s", streq(rel, "/") ? "" : rel, de->d_name) < 0)
			return -ENOMEM;
		if (job_dir_name(de->d_name, &j)) {
			if (j == job) {
				*ret = TAKE_PTR(sub);
				return 1;
			}
			continue;       /* jobs do not nest: nothing to find inside another job */
		}
		if (depth + 1 >= CGROUP_JOB_DEPTH_MAX)
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			if (errno == ENOENT)    /* removed while we looked */
				continue;
			return -errno;
		}
		r = find_job_at(fd, sub, depth + 1, job, ret);
		if (r != 0)
			return r;
	}
	return errno > 0 ? -errno : 0;
}

int cgroup_find_job(const char *root, const char *mount, uint64_t job, char **ret)
{
	_cleanup_free_ char *top = NULL;
	int fd, r;

	if (!mount)
		return -EINVAL;
	top = path_join_root(root, mount);
	if (!top)
		return -ENOMEM;
	fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = find_job_at(fd, "/", 0, job, ret);
	if (r < 0)
		return r;
	return r > 0 ? 0 : -ENOENT;
}

typedef struct PidList {
	pid_t *pids;
	size_t n, alloc;
} PidList;

static int pid_list_add(PidList *l, pid_t pid)
{
	if (l->n == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 16;
		pid_t *np = reallocarray(l->pids, na, sizeof(pid_t));

		if (!np)
			return -ENOMEM;
		l->pids = np;
		l->alloc = na;
	}
	l->pids[l->n++] = pid;
	return 0;
}

static int pid_compare(const void *a, const void *b)
{
	pid_t x = *(const pid_t *) a, y = *(const pid_t *) b;

	return x < y ? -1 : x > y;
}

static void pid_list_sort_unique(PidList *l)
{
	size_t w = 0;

	if (l->n == 0)
		return;
	qsort(l->pids, l->n, sizeof(pid_t), pid_compare);
	for (size_t i = 1; i < l->n; i++)
		if (l->pids[i] != l->pids[w])
			l->pids[++w] = l->pids[i];
	l->n = w + 1;
}

/* cgroup.procs: one decimal pid a line. */
static int parse_cgroup_procs(char *text, PidList *l)
{
	char *line, *save = NULL;
	int r;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int v;

		if (line[0] < '0' || line[0] > '9')
			return -EBADMSG;
		r = safe_atoi(line, &v);
		if (r < 0 || v <= 0)
			return -EBADMSG;
		r = pid_list_add(l, (pid_t) v);
		if (r < 0)
			return r;
	}
	return 0;
}

static int read_procs_at(int fd_dir, PidList *l)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *text = NULL;
	char path[64];

	/* read_file() takes a path: go through the directory fd so a rename cannot redirect us. */
	fd = openat(fd_dir, "cgroup.procs", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	{
		int r = read_file(path, CGROUP_PROCS_MAX, &text, NULL);

		if (r < 0)
			return r;
	}
	return parse_cgroup_procs(text, l);
}

/*
 * The pids of fd_dir's cgroup and below. skip_name: directories of that name
 * are not read (their processes do not count). Takes fd_dir over.
 */
static int walk_procs_at(int fd_dir, unsigned depth, const char *skip_name, PidList *l)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int r;

	d = fdopendir(fd_dir);
	if (!d) {
		safe_close(fd_dir);
		return -errno;
	}

	r = read_procs_at(dirfd(d), l);
	/*
	 * A cgroup removed under us reads ENODEV; threaded cgroups refuse cgroup.procs
	 * (their processes are listed by the threaded domain above). Only the top counts.
	 */
	if (r < 0 && depth == 0)
		return r == -ENODEV ? -ENOENT : r;
	if (r < 0 && r != -ENOENT && r != -ENODEV && r != -EOPNOTSUPP)
		return r;

	while ((errno = 0, de = readdir(d))) {
		int fd;

		if (de->d_name[0] == '.')
			continue;
		if (skip_name && streq(de->d_name, skip_name))
			continue;
		if (!dirent_is_dir(dirfd(d), de))
			continue;
		if (depth + 1 > CGROUP_WALK_DEPTH_MAX)
			return -ELOOP;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		r = walk_procs_at(fd, depth + 1, skip_name, l);
		if (r < 0)
			return r;
	}
	return errno > 0 ? -errno : 0;
}

static int cgroup_read_pids(const char *root, const char *mount, const char *cgroup,
			    const char *skip_name, PidList *l, struct stat *ret_st)
{
	_cleanup_free_ char *dir = NULL;
	int fd;

	dir = cgroup_dir_path(root, mount, cgroup);
	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOTDIR ? -ENOENT : -errno;
	if (ret_st && fstat(fd, ret_st) < 0) {
		safe_close(fd);
		return -errno;
	}
	return walk_procs_at(fd, 0, skip_name, l);
}

/* Slurm's own processes of a step (slurmstepd), beside the "user" directory with the tasks. */
#define SLURM_PROCESSES_DIR "slurm_processes"

/* ---------------------------------------------------------------- slurmstepd */

/*
 * "slurmstepd: [42.0]" (also .batch, .extern, .interactive): the title
 * slurmstepd gives itself. 1 and *ret_job when cmdline is one, else 0.
 */
static int slurmstepd_title_job(const char *cmdline, size_t size, uint64_t *ret_job)
{
	static const char prefix[] = "slurmstepd: [";
	char buf[64], *end;
	size_t l = MIN(size, sizeof(buf) - 1);

	memcpy(buf, cmdline, l);
	buf[l] = '\0';
	if (!startswith(buf, prefix))
		return 0;
	if (buf[sizeof(prefix) - 1] < '0' || buf[sizeof(prefix) - 1] > '9')
		return 0;
	errno = 0;
	*ret_job = strtoull(buf + sizeof(prefix) - 1, &end, 10);
	if (errno != 0 || *end != '.')
		return 0;
	return 1;
}

typedef struct ProcEntry {
	pid_t pid, ppid;
	bool stepd;             /* a root slurmstepd of the job */
	bool in;                /* a descendant of one */
} ProcEntry;

static int proc_read_ppid(const char *root, pid_t pid, pid_t *ret_ppid, char *ret_state)
{
	_cleanup_free_ char *text = NULL;
	char path[64], *p;
	int ppid;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	if (read_file_root(root, path, 0, &text, NULL) < 0)
		return -ESRCH;
	p = strrchr(text, ')');
	if (!p || sscanf(p, ") %c %d", ret_state, &ppid) != 2)
		return -EBADMSG;
	*ret_ppid = ppid;
	return 0;
}

/*
 * The job's processes without a cgroup (proctrack/linuxproc nodes, cgroup v1
 * or hybrid hosts): every descendant of the job's slurmstepd processes, which
 * run as root and carry the job id in their title. A user cannot forge that:
 * only root's processes are taken as slurmstepd.
 */
static int slurm_job_read_pids(const char *root, uint64_t job, PidList *l)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_closedir_ DIR *d = NULL;
	_cleanup_free_ ProcEntry *e = NULL;
	size_t n = 0, alloc = 0;
	struct dirent *de;
	bool any = false, changed;
	int r;

	dir = path_join_root(root, "/proc");
	if (!dir)
		return -ENOMEM;
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((errno = 0, de = readdir(d))) {
		_cleanup_free_ char *cmdline = NULL;
		char path[64], state;
		size_t size;
		uint64_t j;
		pid_t ppid;
		int pid;

		if (de->d_name[0] < '1' || de->d_name[0] > '9' || safe_atoi(de->d_name, &pid) < 0)
			continue;
		if (proc_read_ppid(root, pid, &ppid, &state) < 0 || state == 'Z' || state == 'X')
			continue;
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 256;
			ProcEntry *ne = reallocarray(e, na, sizeof(ProcEntry));

			if (!ne)
				return -ENOMEM;
			e = ne;
			alloc = na;
		}
		e[n] = (ProcEntry) { .pid = pid, .ppid = ppid };
		snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
		if (read_file_root(root, path, 0, &cmdline, &size) >= 0 &&
		    slurmstepd_title_job(cmdline, size, &j) > 0 && j == job) {
			uid_t uid;

			if (pid_read_uid(root, pid, &uid) >= 0 && uid == 0)
				e[n].stepd = any = true;
		}
		n++;
	}
	if (errno > 0)
		return -errno;
	if (!any)
		return 0;

	/* Descendants: a fixed point, since a child's pid may be below its parent's. */
	do {
		changed = false;
		for (size_t i = 0; i < n; i++) {
			if (e[i].in || e[i].stepd)
				continue;
			for (size_t k = 0; k < n; k++)
				if (e[k].pid == e[i].ppid && (e[k].stepd || e[k].in)) {
					e[i].in = changed = true;
					break;
				}
		}
	} while (changed);

	for (size_t i = 0; i < n; i++)
		if (e[i].in) {
			r = pid_list_add(l, e[i].pid);
			if (r < 0)
				return r;
		}
	return 0;
}

int target_resolve_pids(const char *root, const char *mount, const TargetKey *key,
			pid_t **ret, size_t *ret_n, char **ret_cgroup)
{
	_cleanup_free_ char *found = NULL;
	PidList l = {};
	const char *cgroup;
	int r;

	switch (key->kind) {
	case TARGET_PID: {
		uint64_t st;
		char state;

		r = pid_read_stat(root, key->pid, &state, &st);
		if (r < 0)
			return r;
		if (st != key->starttime || state == 'Z' || state == 'X')
			return -ESRCH;
		r = pid_list_add(&l, key->pid);
		if (r < 0)
			return r;
		goto done;
	}
	case TARGET_CGROUP:
		if (!mount || !key->cgroup)
			return -EINVAL;
		cgroup = key->cgroup;
		break;
	case TARGET_JOB:
		r = mount ? cgroup_find_job(root, mount, key->job, &found) : -ENOENT;
		if (r == -ENOENT) {
			/* No job cgroup (not started yet, or a node without cgroup v2 tracking). */
			r = slurm_job_read_pids(root, key->job, &l);
			if (r < 0) {
				free(l.pids);
				return r;
			}
			goto done;
		}
		if (r < 0)
			return r;
		cgroup = found;
		break;
	default:
		return -EINVAL;
	}

	r = cgroup_read_pids(root, mount, cgroup, NULL, &l, NULL);
	if (r == -ENOENT && key->kind == TARGET_JOB) {
		/* It went away between finding and reading: the job just ended. */
		found = mfree(found);
		r = 0;
	}
	if (r < 0) {
		free(l.pids);
		return r;
	}

done:
	pid_list_sort_unique(&l);
	*ret = l.pids;
	*ret_n = l.n;
	if (ret_cgroup)
		*ret_cgroup = TAKE_PTR(found);
	return 0;
}

/* uid may act on every pid in l (and there is one); pids that exited meanwhile do not count. */
static int pids_owned_by(const char *root, const PidList *l, uid_t uid)
{
	size_t n_checked = 0;

	for (size_t i = 0; i < l->n; i++) {
		AuthProcStatus st;
		int r;

		r = pid_read_status(root, l->pids[i], &st);
		if (r == -ESRCH)
			continue;
		if (r < 0)
			return r;
		if (auth_decide(uid, &st) != AUTH_ALLOW)
			return -EPERM;
		n_checked++;
	}
	return n_checked > 0 ? 0 : -EPERM;
}

int target_check_owner(const char *root, const char *mount, const TargetKey *key, uid_t uid)
{
	_cleanup_free_ char *found = NULL;
	PidList l = {};
	struct stat st;
	int r;

	if (uid == 0)
		return 0;

	switch (key->kind) {
	case TARGET_PID: {
		AuthProcStatus ps;
		uint64_t start;

		r = pid_read_starttime(root, key->pid, &start);
		if (r < 0)
			return r;
		if (start != key->starttime)
			return -ESRCH;
		r = pid_read_status(root, key->pid, &ps);
		if (r < 0)
			return r;
		return auth_decide(uid, &ps) == AUTH_ALLOW ? 0 : -EPERM;
	}
	case TARGET_CGROUP:
		if (!mount || !key->cgroup)
			return -EINVAL;
		r = cgroup_read_pids(root, mount, key->cgroup, NULL, &l, &st);
		break;
	case TARGET_JOB:
		r = mount ? cgroup_find_job(root, mount, key->job, &found) : -ENOENT;
		if (r == -ENOENT) {
			/* No job cgroup: the job's tasks, below its slurmstepd, must all be theirs. */
			r = slurm_job_read_pids(root, key->job, &l);
			if (r >= 0)
				r = l.n > 0 ? pids_owned_by(root, &l, uid) : -ENOENT;
			free(l.pids);
			return r;
		}
		if (r < 0)
			return r;
		r = cgroup_read_pids(root, mount, found, SLURM_PROCESSES_DIR, &l, &st);
		break;
	default:
		return -EINVAL;
	}
	if (r >= 0)
		r = st.st_uid == uid ? 0 : pids_owned_by(root, &l, uid);
	free(l.pids);
	return r;
}
