/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What every backend shares: move counts, the move_pages(2) status
 * classification, errno conversion, the thread's last message, and the
 * /proc/PID/maps parser that classifies pages by mapping.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netlink/errno.h>

#include "backend.h"
#include "util.h"

void move_counts_add(MoveCounts *to, const MoveCounts *from)
{
	to->migrated += from->migrated;
	to->already += from->already;
	to->not_present += from->not_present;
	to->file += from->file;
	to->shared += from->shared;
	to->pinned += from->pinned;
	to->unmovable += from->unmovable;
	to->no_space += from->no_space;
	to->failed += from->failed;
}

uint64_t move_counts_skipped(const MoveCounts *c)
{
	return c->not_present + c->file + c->shared + c->pinned + c->unmovable + c->no_space;
}

uint64_t move_counts_total(const MoveCounts *c)
{
	return c->migrated + c->already + move_counts_skipped(c) + c->failed;
}

void move_counts_account_status(MoveCounts *c, int status, int target_node)
{
	if (status >= 0 && status == target_node)
		c->migrated++;
	else if (status == -ENOENT || status == -EFAULT)
		c->not_present++;
	else if (status == -EACCES)
		c->shared++;
	else if (status == -EBUSY)
		c->pinned++;
	else if (status == -ENOMEM)
		c->no_space++;
	else
		c->failed++;
}

uint64_t *move_counts_field_for_map_kind(MoveCounts *c, BackendMapKind k)
{
	switch (k) {
	case BACKEND_MAP_FILE:
		return &c->file;
	case BACKEND_MAP_SHARED:
		return &c->shared;
	case BACKEND_MAP_SPECIAL:
		return &c->unmovable;
	default:
		return NULL;
	}
}

int backend_check_range(uint64_t start, uint64_t length, uint64_t page_size)
{
	if (page_size == 0 || (page_size & (page_size - 1)))
		return -EINVAL;
	if ((start | length) & (page_size - 1))
		return -EINVAL;
	if (length == 0 && start != 0)
		return -EINVAL;    /* "the whole process" has no start */
	if (start > BACKEND_USER_ADDR_MAX || length > BACKEND_USER_ADDR_MAX - start)
		return -EINVAL;
	return 0;
}

int backend_check_sample_windows(const BackendSampleWindow *w, size_t n, uint64_t page_size)
{
	uint64_t pages = 0;

	if (n == 0 || n > BACKEND_SAMPLE_WINDOWS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (backend_check_range(w[i].start, w[i].length, page_size) < 0 || w[i].length == 0)
			return -EINVAL;
		if (i > 0 && w[i].start < w[i - 1].start + w[i - 1].length)
			return -EINVAL;
		pages += w[i].length / page_size;
		if (pages > BACKEND_SAMPLE_PAGES_MAX)
			return -EINVAL;
	}
	return 0;
}

/* ---- messages and errors ---- */

static _Thread_local char last_message[256];
static _Thread_local bool have_last_message;

const char *backend_last_message(void)
{
	return have_last_message ? last_message : NULL;
}

void backend_set_last_message(const char *fmt, ...)
{
	va_list ap;

	if (!fmt) {
		have_last_message = false;
		return;
	}
	va_start(ap, fmt);
	(void) vsnprintf(last_message, sizeof(last_message), fmt, ap);
	va_end(ap);
	have_last_message = true;
}

int backend_errno_from_nl(int nlerr)
{
	switch (nlerr < 0 ? -nlerr : nlerr) {
	case NLE_SUCCESS:
		return 0;
	case NLE_INTR:
		return -EINTR;
	case NLE_BAD_SOCK:
		return -EBADF;
	case NLE_AGAIN:
		return -EAGAIN;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_EXIST:
		return -EEXIST;
	case NLE_INVAL:
		return -EINVAL;
	case NLE_RANGE:
		return -ERANGE;
	case NLE_MSGSIZE:
		return -EMSGSIZE;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	case NLE_AF_NOSUPPORT:
		return -EAFNOSUPPORT;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_NOADDR:
		return -EADDRNOTAVAIL;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_NOACCESS:
		return -EACCES;
	case NLE_PERM:
		return -EPERM;
	case NLE_NODEV:
		return -ENODEV;
	case NLE_NOATTR:
	case NLE_MISSING_ATTR:
	case NLE_MSG_TOOSHORT:
	case NLE_MSG_TRUNC:
	case NLE_MSG_OVERFLOW:
	case NLE_SEQ_MISMATCH:
	case NLE_MSGTYPE_NOSUPPORT:
	case NLE_PARSE_ERR:
	case NLE_ATTRSIZE:
		return -EBADMSG;
	case NLE_DUMP_INTR:
		return -EAGAIN;
	default:
		return -EIO;
	}
}

/* ---- /proc/PID/maps ---- */

#define MAPS_ALIGN UINT64_C(4096)

static const char *const map_kind_table[_BACKEND_MAP_KIND_MAX] = {
	[BACKEND_MAP_ANON] = "anon",
	[BACKEND_MAP_FILE] = "file",
	[BACKEND_MAP_SHARED] = "shared",
	[BACKEND_MAP_SPECIAL] = "special",
};

const char *backend_map_kind_to_string(BackendMapKind k)
{
	return k >= 0 && k < _BACKEND_MAP_KIND_MAX ? map_kind_table[k] : NULL;
}

void backend_mappings_free(BackendMapping *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(m[i].path);
	free(m);
}

/* Hex digits up to a delimiter; at most 16. Advances *p. */
static int parse_hex(const char **p, const char *end, char delim, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;
	size_t n = 0;

	while (s < end && *s != delim) {
		int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else
			return -EBADMSG;
		if (++n > 16)
			return -EBADMSG;
		v = v << 4 | (uint64_t) d;
		s++;
	}
	if (n == 0 || s >= end)
		return -EBADMSG;
	*p = s + 1;    /* past the delimiter */
	*ret = v;
	return 0;
}

static int parse_dec(const char **p, const char *end, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;
	size_t n = 0;

	while (s < end && *s >= '0' && *s <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return -EBADMSG;
		v = v * 10 + (uint64_t) (*s - '0');
		s++;
		n++;
	}
	if (n == 0)
		return -EBADMSG;
	*p = s;
	*ret = v;
	return 0;
}

static BackendMapKind classify(const char *perms, uint64_t inode, const char *path)
{
	if (perms[3] == 's')
		return BACKEND_MAP_SHARED;
	if (path && path[0] == '[') {
		if (streq(path, "[heap]") || startswith(path, "[stack") || startswith(path, "[anon:"))
			return inode == 0 ? BACKEND_MAP_ANON : BACKEND_MAP_FILE;
		return BACKEND_MAP_SPECIAL;
	}
	if (inode != 0 || path)
		return BACKEND_MAP_FILE;
	return BACKEND_MAP_ANON;
}

static int parse_line(const char *s, const char *end, BackendMapping *m)
{
	uint64_t major, minor;
	const char *q;
	int r;

	/* start-end perms offset major:minor inode [path] */
	r = parse_hex(&s, end, '-', &m->start);
	if (r < 0)
		return r;
	r = parse_hex(&s, end, ' ', &m->end);
	if (r < 0)
		return r;
	if (end - s < 5 || s[4] != ' ')
		return -EBADMSG;
	if ((s[0] != 'r' && s[0] != '-') || (s[1] != 'w' && s[1] != '-') ||
	    (s[2] != 'x' && s[2] != '-') || (s[3] != 'p' && s[3] != 's'))
		return -EBADMSG;
	memcpy(m->perms, s, 4);
	m->perms[4] = '\0';
	s += 5;
	r = parse_hex(&s, end, ' ', &m->offset);
	if (r < 0)
		return r;
	r = parse_hex(&s, end, ':', &major);
	if (r < 0)
		return r;
	r = parse_hex(&s, end, ' ', &minor);
	if (r < 0)
		return r;
	r = parse_dec(&s, end, &m->inode);
	if (r < 0)
		return r;
	if (s < end && *s != ' ')
		return -EBADMSG;
	while (s < end && *s == ' ')
		s++;

	if (m->start >= m->end || (m->start | m->end) % MAPS_ALIGN)
		return -EBADMSG;

	/* The rest of the line is the path, verbatim (the kernel escapes '\n'). */
	q = end;
	if (q > s) {
		m->path = strndup(s, (size_t) (q - s));
		if (!m->path)
			return -ENOMEM;
	}
	m->kind = classify(m->perms, m->inode, m->path);
	return 0;
}

int backend_maps_parse(const char *text, size_t size, BackendMapping **ret, size_t *ret_n)
{
	BackendMapping *maps = NULL;
	size_t n = 0, alloc = 0;
	const char *p = text, *end = text + size;
	int r;

	if (memchr(text, '\0', size)) {
		r = -EBADMSG;
		goto fail;
	}
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t) (end - p));
		const char *le = eol ?: end;
		BackendMapping m = {};

		if (le == p) {
			/* An empty line is only allowed as nothing at all. */
			r = -EBADMSG;
			goto fail;
		}
		r = parse_line(p, le, &m);
		if (r < 0) {
			free(m.path);
			goto fail;
		}
		if (n > 0 && m.start < maps[n - 1].end) {
			free(m.path);
			r = -EBADMSG;
			goto fail;
		}
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 64;
			BackendMapping *nm = realloc(maps, na * sizeof(*maps));

			if (!nm) {
				free(m.path);
				r = -ENOMEM;
				goto fail;
			}
			maps = nm;
			alloc = na;
		}
		maps[n++] = m;
		p = eol ? eol + 1 : end;
	}
	*ret = maps;
	*ret_n = n;
	return 0;
fail:
	backend_mappings_free(maps, n);
	return r;
}

int backend_maps_read(const char *root, pid_t pid, BackendMapping **ret, size_t *ret_n)
{
	_cleanup_free_ char *text = NULL;
	char path[64];
	size_t size;
	int r;

	if (pid <= 0)
		return -ESRCH;
	(void) snprintf(path, sizeof(path), "/proc/%d/maps", (int) pid);
	/* 65530 mappings (vm.max_map_count) of long paths fit. */
	r = read_file_root(root, path, 64U * 1024U * 1024U, &text, &size);
	if (r == -ENOENT)
		return -ESRCH;
	if (r < 0)
		return r;
	return backend_maps_parse(text, size, ret, ret_n);
}

/* ---- /proc/PID/numa_maps ---- */

void backend_numa_maps_free(BackendNumaMapsEntry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].nodes);
	free(e);
}

/* "<digits>" exactly, into *ret. */
static int parse_dec_token(const char *s, const char *end, uint64_t *ret)
{
	const char *p = s;
	int r = parse_dec(&p, end, ret);

	if (r < 0 || p != end)
		return -EBADMSG;
	return 0;
}

static int numa_maps_line(const char *s, const char *end, BackendNumaMapsEntry *e)
{
	int r;

	/* "<start> <policy>[ token...]" */
	r = parse_hex(&s, end, ' ', &e->start);
	if (r < 0 || e->start % MAPS_ALIGN)
		return -EBADMSG;
	if (s >= end || *s == ' ')
		return -EBADMSG;    /* the policy */
	while (s < end) {
		const char *t = s, *te = memchr(s, ' ', (size_t) (end - s)) ?: end;
		const char *v;
		uint64_t x;

		if (te == t)
			return -EBADMSG;    /* two spaces, or a trailing one */
		s = te < end ? te + 1 : end;
		if (te < end && s == end)
			return -EBADMSG;
		if (t[0] == 'N' && (v = memchr(t, '=', (size_t) (te - t)))) {
			uint64_t node;
			BackendNodePages *nn;

			if (parse_dec_token(t + 1, v, &node) < 0)
				continue;    /* some other N-token */
			if (node >= 1024 || parse_dec_token(v + 1, te, &x) < 0)
				return -EBADMSG;
			for (size_t i = 0; i < e->n_nodes; i++)
				if (e->nodes[i].node == (int) node)
					return -EBADMSG;
			nn = realloc(e->nodes, (e->n_nodes + 1) * sizeof(*nn));
			if (!nn)
				return -ENOMEM;
			e->nodes = nn;
			nn[e->n_nodes++] = (BackendNodePages) { (int) node, x };
		} else if ((size_t) (te - t) > STRLEN("kernelpagesize_kB=") &&
			   strneq(t, "kernelpagesize_kB=", STRLEN("kernelpagesize_kB="))) {
			if (parse_dec_token(t + STRLEN("kernelpagesize_kB="), te, &x) < 0 || x == 0 ||
			    x > (UINT64_C(1) << 30))
				return -EBADMSG;
			e->page_kb = x;
		}
	}
	return 0;
}

int backend_numa_maps_parse(const char *text, size_t size, BackendNumaMapsEntry **ret,
			    size_t *ret_n)
{
	BackendNumaMapsEntry *v = NULL;
	size_t n = 0, alloc = 0;
	const char *p = text, *end = text + size;
	int r;

	if (memchr(text, '\0', size))
		return -EBADMSG;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t) (end - p));
		const char *le = eol ?: end;
		BackendNumaMapsEntry e = {};

		r = le == p ? -EBADMSG : numa_maps_line(p, le, &e);
		if (r == 0 && n > 0 && e.start <= v[n - 1].start)
			r = -EBADMSG;
		if (r == 0 && n == alloc) {
			size_t na = alloc ? alloc * 2 : 64;
			BackendNumaMapsEntry *nv = realloc(v, na * sizeof(*nv));

			if (!nv)
				r = -ENOMEM;
			else {
				v = nv;
				alloc = na;
			}
		}
		if (r < 0) {
			free(e.nodes);
			backend_numa_maps_free(v, n);
			return r;
		}
		v[n++] = e;
		p = eol ? eol + 1 : end;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}
