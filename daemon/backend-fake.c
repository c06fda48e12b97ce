/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The scripted fake backend; see backend-fake.h.
 */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "backend-fake.h"
#include "util.h"

typedef struct FakeDevice {
	char name[32];
	int node;
	uint64_t total, used;
} FakeDevice;

typedef struct FakeMapping {
	uint64_t start, end;
	BackendMapKind kind;
} FakeMapping;

typedef struct FakePage {
	uint64_t addr;
	int location;
	unsigned flags;
} FakePage;

typedef struct FakeProcess {
	pid_t pid;
	FakeMapping *maps;
	size_t n_maps;
	FakePage *pages;        /* sorted by addr */
	size_t n_pages;
	bool exit_armed;
	uint64_t exit_after;
} FakeProcess;

struct Backend {
	pthread_mutex_t lock;
	FakeDevice *devices;
	size_t n_devices;
	FakeProcess *procs;
	size_t n_procs;
	int fail_next[_FAKE_OP_MAX];
	unsigned calls[_FAKE_OP_MAX];
	uint64_t batch_pages, delay_usec;

	int event_fd;
	BackendEventFn monitor_fn;
	void *monitor_userdata;
	BackendEvent *events;
	size_t n_events;
};

static FakeSetupFn setup_fn;
static void *setup_userdata;

void backend_fake_set_setup(FakeSetupFn fn, void *userdata)
{
	setup_fn = fn;
	setup_userdata = userdata;
}

/* ---- table ---- */

static FakeProcess *find_proc(Backend *b, pid_t pid)
{
	for (size_t i = 0; i < b->n_procs; i++)
		if (b->procs[i].pid == pid)
			return &b->procs[i];
	return NULL;
}

static FakePage *find_page(FakeProcess *p, uint64_t addr)
{
	size_t lo = 0, hi = p->n_pages;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->pages[mid].addr == addr)
			return &p->pages[mid];
		if (p->pages[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void device_account(Backend *b, int location, int64_t delta)
{
	if (location >= 0 && (size_t) location < b->n_devices)
		b->devices[location].used += (uint64_t) delta;
}

int fake_add_device(Backend *b, const char *name, int node, uint64_t total_pages)
{
	FakeDevice *nd;
	int id;

	pthread_mutex_lock(&b->lock);
	nd = realloc(b->devices, (b->n_devices + 1) * sizeof(*nd));
	if (!nd) {
		pthread_mutex_unlock(&b->lock);
		return -ENOMEM;
	}
	b->devices = nd;
	id = (int) b->n_devices++;
	nd[id] = (FakeDevice) { .node = node, .total = total_pages };
	(void) snprintf(nd[id].name, sizeof(nd[id].name), "%s", name);
	pthread_mutex_unlock(&b->lock);
	return id;
}

int fake_add_process(Backend *b, pid_t pid)
{
	FakeProcess *np;
	int r = 0;

	pthread_mutex_lock(&b->lock);
	if (pid <= 0 || find_proc(b, pid))
		r = -EEXIST;
	else if (!(np = realloc(b->procs, (b->n_procs + 1) * sizeof(*np))))
		r = -ENOMEM;
	else {
		b->procs = np;
		np[b->n_procs++] = (FakeProcess) { .pid = pid };
	}
	pthread_mutex_unlock(&b->lock);
	return r;
}

static void proc_free(Backend *b, FakeProcess *p)
{
	for (size_t i = 0; i < p->n_pages; i++)
		device_account(b, p->pages[i].location, -1);
	free(p->maps);
	free(p->pages);
}

static int remove_locked(Backend *b, pid_t pid)
{
	FakeProcess *p = find_proc(b, pid);

	if (!p)
		return -ESRCH;
	proc_free(b, p);
	*p = b->procs[--b->n_procs];
	return 0;
}

int fake_remove_process(Backend *b, pid_t pid)
{
	int r;

	pthread_mutex_lock(&b->lock);
	r = remove_locked(b, pid);
	pthread_mutex_unlock(&b->lock);
	return r;
}

int fake_add_mapping(Backend *b, pid_t pid, uint64_t start, uint64_t end, BackendMapKind kind)
{
	FakeProcess *p;
	FakeMapping *nm;
	size_t i;
	int r = 0;

	pthread_mutex_lock(&b->lock);
	p = find_proc(b, pid);
	if (!p) {
		r = -ESRCH;
		goto out;
	}
	if (start >= end || (start | end) % FAKE_PAGE_SIZE || kind < 0 ||
	    kind >= _BACKEND_MAP_KIND_MAX) {
		r = -EINVAL;
		goto out;
	}
	for (i = 0; i < p->n_maps; i++)
		if (start < p->maps[i].end && p->maps[i].start < end) {
			r = -EEXIST;
			goto out;
		}
	nm = realloc(p->maps, (p->n_maps + 1) * sizeof(*nm));
	if (!nm) {
		r = -ENOMEM;
		goto out;
	}
	p->maps = nm;
	/* Keep them in address order. */
	for (i = p->n_maps; i > 0 && nm[i - 1].start > start; i--)
		nm[i] = nm[i - 1];
	nm[i] = (FakeMapping) { start, end, kind };
	p->n_maps++;
out:
	pthread_mutex_unlock(&b->lock);
	return r;
}

static int cmp_page(const void *x, const void *y)
{
	const FakePage *a = x, *c = y;

	return (a->addr > c->addr) - (a->addr < c->addr);
}

int fake_set_pages(Backend *b, pid_t pid, uint64_t addr, uint64_t n, int location,
		   unsigned flags)
{
	FakeProcess *p;
	int r = 0;

	pthread_mutex_lock(&b->lock);
	p = find_proc(b, pid);
	if (!p)
		r = -ESRCH;
	else if (addr % FAKE_PAGE_SIZE || location < FAKE_SYSTEM ||
		 (location >= 0 && (size_t) location >= b->n_devices))
		r = -EINVAL;
	if (r < 0)
		goto out;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t a = addr + i * FAKE_PAGE_SIZE;
		FakePage *pg = find_page(p, a), *np;

		if (pg) {
			device_account(b, pg->location, -1);
			pg->location = location;
			pg->flags = flags;
			device_account(b, location, 1);
			continue;
		}
		np = realloc(p->pages, (p->n_pages + 1) * sizeof(*np));
		if (!np) {
			r = -ENOMEM;
			break;
		}
		p->pages = np;
		np[p->n_pages++] = (FakePage) { a, location, flags };
		device_account(b, location, 1);
		/* Appending in order keeps the array sorted; otherwise sort once. */
		if (p->n_pages > 1 && np[p->n_pages - 2].addr > a)
			qsort(p->pages, p->n_pages, sizeof(*np), cmp_page);
	}
out:
	pthread_mutex_unlock(&b->lock);
	return r;
}

int fake_clear_pages(Backend *b, pid_t pid, uint64_t addr, uint64_t n)
{
	FakeProcess *p;
	size_t k = 0;

	pthread_mutex_lock(&b->lock);
	p = find_proc(b, pid);
	if (!p) {
		pthread_mutex_unlock(&b->lock);
		return -ESRCH;
	}
	for (size_t i = 0; i < p->n_pages; i++) {
		if (p->pages[i].addr >= addr && p->pages[i].addr - addr < n * FAKE_PAGE_SIZE) {
			device_account(b, p->pages[i].location, -1);
			continue;
		}
		p->pages[k++] = p->pages[i];
	}
	p->n_pages = k;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

int fake_exit_after(Backend *b, pid_t pid, uint64_t pages)
{
	FakeProcess *p;

	pthread_mutex_lock(&b->lock);
	p = find_proc(b, pid);
	if (p) {
		p->exit_armed = true;
		p->exit_after = pages;
	}
	pthread_mutex_unlock(&b->lock);
	return p ? 0 : -ESRCH;
}

void fake_fail_next(Backend *b, FakeOp op, int error)
{
	pthread_mutex_lock(&b->lock);
	if (op >= 0 && op < _FAKE_OP_MAX)
		b->fail_next[op] = error;
	pthread_mutex_unlock(&b->lock);
}

void fake_set_batch(Backend *b, uint64_t batch_pages, uint64_t delay_usec)
{
	pthread_mutex_lock(&b->lock);
	b->batch_pages = batch_pages ?: 512;
	b->delay_usec = delay_usec;
	pthread_mutex_unlock(&b->lock);
}

int fake_page_location(Backend *b, pid_t pid, uint64_t addr)
{
	FakeProcess *p;
	FakePage *pg;
	int r;

	pthread_mutex_lock(&b->lock);
	p = find_proc(b, pid);
	pg = p ? find_page(p, addr) : NULL;
	r = pg ? pg->location : -ENOENT;
	pthread_mutex_unlock(&b->lock);
	return r;
}

unsigned fake_calls(Backend *b, FakeOp op)
{
	unsigned n;

	pthread_mutex_lock(&b->lock);
	n = op >= 0 && op < _FAKE_OP_MAX ? b->calls[op] : 0;
	pthread_mutex_unlock(&b->lock);
	return n;
}

/* Count the call; returns the scripted error, if any. Called locked. */
static int enter(Backend *b, FakeOp op)
{
	int r = b->fail_next[op];

	b->calls[op]++;
	b->fail_next[op] = 0;
	return r;
}

/* ---- ops ---- */

static int fake_open(Backend **ret, const char *root)
{
	Backend *b = calloc(1, sizeof(*b));
	int r;

	if (!b)
		return -ENOMEM;
	pthread_mutex_init(&b->lock, NULL);
	b->batch_pages = 512;
	b->event_fd = -EBADF;
	if (setup_fn) {
		r = setup_fn(b, setup_userdata);
		if (r < 0) {
			backend_fake_ops.close(b);
			return r;
		}
	}
	*ret = b;
	return 0;
}

static void fake_monitor_close(Backend *b)
{
	b->event_fd = safe_close(b->event_fd);
	b->monitor_fn = NULL;
	free(b->events);
	b->events = NULL;
	b->n_events = 0;
}

static void fake_close(Backend *b)
{
	if (!b)
		return;
	fake_monitor_close(b);
	for (size_t i = 0; i < b->n_procs; i++)
		proc_free(b, &b->procs[i]);
	free(b->procs);
	free(b->devices);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static int fake_list_devices(Backend *b, BackendDevice **ret, size_t *ret_n)
{
	BackendDevice *d;
	int r;

	pthread_mutex_lock(&b->lock);
	r = enter(b, FAKE_OP_LIST_DEVICES);
	if (r < 0)
		goto out;
	d = calloc(b->n_devices ?: 1, sizeof(*d));
	if (!d) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < b->n_devices; i++) {
		(void) snprintf(d[i].name, sizeof(d[i].name), "%s", b->devices[i].name);
		d[i].id = (int64_t) i;
		d[i].node = b->devices[i].node;
		d[i].total_bytes = b->devices[i].total * FAKE_PAGE_SIZE;
		d[i].free_bytes = (b->devices[i].total - b->devices[i].used) * FAKE_PAGE_SIZE;
	}
	*ret = d;
	*ret_n = b->n_devices;
out:
	pthread_mutex_unlock(&b->lock);
	return r;
}

static void sleep_usec(uint64_t usec)
{
	struct timespec ts = { (time_t) (usec / 1000000), (long) (usec % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* One page of an anonymous mapping. Called locked. */
static void move_page(Backend *b, FakeProcess *p, uint64_t addr, const BackendTarget *t,
		      MoveCounts *c)
{
	FakePage *pg = find_page(p, addr);
	int dest = t->system ? FAKE_SYSTEM : (int) t->id;

	if (!pg)
		c->not_present++;
	else if (pg->location == dest)
		c->already++;
	else if (pg->flags & FAKE_PAGE_SHARED)
		c->shared++;
	else if (pg->flags & FAKE_PAGE_PINNED)
		c->pinned++;
	else if (pg->flags & FAKE_PAGE_UNMOVABLE)
		c->unmovable++;
	else if (pg->flags & FAKE_PAGE_FAIL)
		c->failed++;
	else if (dest >= 0 && b->devices[dest].used >= b->devices[dest].total)
		c->no_space++;
	else {
		device_account(b, pg->location, -1);
		pg->location = dest;
		device_account(b, dest, 1);
		c->migrated++;
		if (p->exit_armed && p->exit_after > 0)
			p->exit_after--;
	}
}

static int fake_move(Backend *b, pid_t pid, uint64_t start, uint64_t length,
		     const BackendTarget *target, BackendProgressFn progress, void *userdata,
		     MoveCounts *ret)
{
	MoveCounts c = {};
	uint64_t total = 0, since_report = 0, end;
	FakeProcess *p;
	size_t m = 0;
	uint64_t cursor;
	int r;

	*ret = c;
	pthread_mutex_lock(&b->lock);
	r = enter(b, FAKE_OP_MOVE);
	if (r < 0)
		goto out;
	r = backend_check_range(start, length, FAKE_PAGE_SIZE);
	if (r < 0)
		goto out;
	if (!target->system && (target->id < 0 || (uint64_t) target->id >= b->n_devices)) {
		r = -ENODEV;
		goto out;
	}
	p = find_proc(b, pid);
	if (!p || p->n_maps == 0) {
		r = -ESRCH;
		goto out;
	}
	if (length == 0) {
		start = p->maps[0].start;
		end = p->maps[p->n_maps - 1].end;
	} else
		end = start + length;
	/* Pages of the request: the range, or every mapping. */
	for (size_t i = 0; i < p->n_maps; i++) {
		uint64_t s = MAX(p->maps[i].start, start), e = MIN(p->maps[i].end, end);

		if (s < e)
			total += (e - s) / FAKE_PAGE_SIZE;
	}
	if (total == 0) {
		r = -EFAULT;
		goto out;
	}
	if (length > 0)
		total = length / FAKE_PAGE_SIZE;

	for (cursor = start; cursor < end; cursor += FAKE_PAGE_SIZE) {
		while (m < p->n_maps && p->maps[m].end <= cursor)
			m++;
		if (m >= p->n_maps || cursor < p->maps[m].start) {
			/* A hole: only part of an explicit range. */
			if (length > 0)
				c.not_present++;
			else
				cursor = (m < p->n_maps ? p->maps[m].start : end) - FAKE_PAGE_SIZE;
		} else if (p->maps[m].kind != BACKEND_MAP_ANON)
			(*move_counts_field_for_map_kind(&c, p->maps[m].kind))++;
		else
			move_page(b, p, cursor, target, &c);

		if (p->exit_armed && p->exit_after == 0) {
			(void) remove_locked(b, pid);
			r = move_counts_total(&c) > 0 ? BACKEND_MOVE_EXITED : -ESRCH;
			*ret = r > 0 ? c : (MoveCounts) {};
			goto out;
		}
		if (++since_report >= b->batch_pages || cursor + FAKE_PAGE_SIZE >= end) {
			uint64_t delay = b->delay_usec;

			since_report = 0;
			pthread_mutex_unlock(&b->lock);
			if (delay)
				sleep_usec(delay);
			r = progress ? progress(&c, total, userdata) : 0;
			pthread_mutex_lock(&b->lock);
			if (r < 0) {
				*ret = c;
				goto out;
			}
			/* The process may have been removed meanwhile. */
			p = find_proc(b, pid);
			if (!p) {
				r = move_counts_total(&c) > 0 ? BACKEND_MOVE_EXITED : -ESRCH;
				*ret = r > 0 ? c : (MoveCounts) {};
				goto out;
			}
		}
	}
	*ret = c;
	r = 0;
out:
	pthread_mutex_unlock(&b->lock);
	return r;
}

/* Does a mapping of p intersect [start, end)? */
static bool mapped_in(const FakeProcess *p, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < p->n_maps; i++)
		if (p->maps[i].start < end && start < p->maps[i].end)
			return true;
	return false;
}

static int fake_residency(Backend *b, pid_t pid, uint64_t start, uint64_t length,
			  ResidencyEntry **ret, size_t *ret_n)
{
	_cleanup_free_ uint64_t *per_dev = NULL;
	ResidencyEntry *e = NULL;
	uint64_t system = 0, end;
	FakeProcess *p;
	size_t k = 0;
	int r;

	pthread_mutex_lock(&b->lock);
	r = enter(b, FAKE_OP_RESIDENCY);
	if (r < 0)
		goto out;
	r = backend_check_range(start, length, FAKE_PAGE_SIZE);
	if (r < 0)
		goto out;
	p = find_proc(b, pid);
	if (!p || p->n_maps == 0) {
		r = -ESRCH;
		goto out;
	}
	end = length ? start + length : UINT64_MAX;
	if (!mapped_in(p, start, end)) {
		r = -EFAULT;
		goto out;
	}
	per_dev = calloc(b->n_devices + 1, sizeof(uint64_t));
	e = calloc(b->n_devices + 1, sizeof(*e));
	if (!per_dev || !e) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < p->n_pages; i++) {
		const FakePage *pg = &p->pages[i];

		if (pg->addr < start || pg->addr >= end)
			continue;
		if (pg->location == FAKE_SYSTEM)
			system++;
		else
			per_dev[pg->location]++;
	}
	for (size_t i = 0; i < b->n_devices; i++)
		if (per_dev[i])
			e[k++] = (ResidencyEntry) { .id = (int64_t) i,
						    .bytes = per_dev[i] * FAKE_PAGE_SIZE };
	if (system)
		e[k++] = (ResidencyEntry) { .system = true, .id = -1,
					    .bytes = system * FAKE_PAGE_SIZE };
	*ret = TAKE_PTR(e);
	*ret_n = k;
	r = 0;
out:
	free(e);
	pthread_mutex_unlock(&b->lock);
	return r;
}

/* Young pages of [start, start + pages pages), cleared when asked; bits into bitmap unless NULL. */
static uint64_t sample_pages(FakeProcess *p, uint64_t start, uint64_t pages, bool clear,
			     uint8_t *bitmap)
{
	uint64_t young = 0;

	for (uint64_t i = 0; i < pages; i++) {
		FakePage *pg = find_page(p, start + i * FAKE_PAGE_SIZE);

		if (!pg || !(pg->flags & FAKE_PAGE_YOUNG))
			continue;
		if (bitmap)
			bitmap[i / 8] |= (uint8_t) (1U << (i % 8));
		young++;
		if (clear)
			pg->flags &= ~(unsigned) FAKE_PAGE_YOUNG;
	}
	return young;
}

static int fake_sample(Backend *b, pid_t pid, uint64_t start, uint64_t length, bool clear,
		       uint8_t *bitmap, size_t bitmap_bytes, uint64_t *ret_young)
{
	uint64_t pages = length / FAKE_PAGE_SIZE, young = 0;
	FakeProcess *p;
	int r;

	pthread_mutex_lock(&b->lock);
	r = enter(b, FAKE_OP_SAMPLE);
	if (r < 0)
		goto out;
	r = backend_check_range(start, length, FAKE_PAGE_SIZE);
	if (r == 0 && length == 0)
		r = -EINVAL;
	if (r < 0)
		goto out;
	if (bitmap_bytes < (pages + 7) / 8) {
		r = -ENOBUFS;
		goto out;
	}
	p = find_proc(b, pid);
	if (!p || p->n_maps == 0) {
		r = -ESRCH;
		goto out;
	}
	memset(bitmap, 0, (size_t) ((pages + 7) / 8));
	young = sample_pages(p, start, pages, clear, bitmap);
	if (ret_young)
		*ret_young = young;
out:
	pthread_mutex_unlock(&b->lock);
	return r;
}

static int fake_sample_windows(Backend *b, pid_t pid, BackendSampleWindow *w, size_t n,
			       bool clear)
{
	FakeProcess *p;
	int r;

	pthread_mutex_lock(&b->lock);
	r = enter(b, FAKE_OP_SAMPLE_WINDOWS);
	if (r < 0)
		goto out;
	r = backend_check_sample_windows(w, n, FAKE_PAGE_SIZE);
	if (r < 0)
		goto out;
	p = find_proc(b, pid);
	if (!p || p->n_maps == 0) {
		r = -ESRCH;
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		w[k].unmapped = !mapped_in(p, w[k].start, w[k].start + w[k].length);
		w[k].young = sample_pages(p, w[k].start, w[k].length / FAKE_PAGE_SIZE, clear, NULL);
	}
out:
	pthread_mutex_unlock(&b->lock);
	return r;
}

static int fake_evict(Backend *b, int64_t id, uint64_t n_pages, uint64_t *ret_evicted)
{
	uint64_t done = 0;
	int r;

	pthread_mutex_lock(&b->lock);
	r = enter(b, FAKE_OP_EVICT);
	if (r < 0)
		goto out;
	if (id < 0 || (uint64_t) id >= b->n_devices) {
		r = -ENODEV;
		goto out;
	}
	if (n_pages == 0) {
		r = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < b->n_procs && done < n_pages; i++)
		for (size_t j = 0; j < b->procs[i].n_pages && done < n_pages; j++) {
			FakePage *pg = &b->procs[i].pages[j];

			if (pg->location != id || (pg->flags & (FAKE_PAGE_PINNED | FAKE_PAGE_FAIL)))
				continue;
			device_account(b, pg->location, -1);
			pg->location = FAKE_SYSTEM;
			done++;
		}
	if (ret_evicted)
		*ret_evicted = done;
out:
	pthread_mutex_unlock(&b->lock);
	return r;
}

static int fake_monitor_open(Backend *b, BackendEventFn fn, void *userdata, int *ret_fd)
{
	if (!fn)
		return -EINVAL;
	if (b->event_fd >= 0)
		return -EBUSY;
	b->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->event_fd < 0)
		return -errno;
	b->monitor_fn = fn;
	b->monitor_userdata = userdata;
	*ret_fd = b->event_fd;
	return 0;
}

int fake_emit_event(Backend *b, const BackendEvent *event)
{
	BackendEvent *ne;
	uint64_t one = 1;
	int r = 0;

	pthread_mutex_lock(&b->lock);
	if (b->event_fd < 0)
		r = -EBADF;
	else if (!(ne = realloc(b->events, (b->n_events + 1) * sizeof(*ne))))
		r = -ENOMEM;
	else {
		b->events = ne;
		ne[b->n_events++] = *event;
		if (write(b->event_fd, &one, sizeof(one)) < 0)
			r = -errno;
	}
	pthread_mutex_unlock(&b->lock);
	return r;
}

static int fake_monitor_dispatch(Backend *b)
{
	BackendEventFn fn = b->monitor_fn;
	void *userdata = b->monitor_userdata;
	BackendEvent *events;
	size_t n;
	uint64_t v;

	if (b->event_fd < 0)
		return -EBADF;
	if (read(b->event_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&b->lock);
	events = b->events;
	n = b->n_events;
	b->events = NULL;
	b->n_events = 0;
	pthread_mutex_unlock(&b->lock);
	for (size_t i = 0; i < n; i++)
		fn(b, &events[i], userdata);
	free(events);
	return 0;
}

const BackendOps backend_fake_ops = {
	.name = "fake",
	.open = fake_open,
	.close = fake_close,
	.list_devices = fake_list_devices,
	.move = fake_move,
	.residency = fake_residency,
	.sample = fake_sample,
	.sample_windows = fake_sample_windows,
	.evict = fake_evict,
	.monitor_open = fake_monitor_open,
	.monitor_dispatch = fake_monitor_dispatch,
	.monitor_close = fake_monitor_close,
};
