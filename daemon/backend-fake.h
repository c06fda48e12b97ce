/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The scripted fake backend (backend_fake_ops) for unit tests of everything
 * above the backends: the test declares devices, processes with their
 * mappings and pages (where each page is and what is special about it), and
 * errors to return; move/residency/sample/evict operate on that table with
 * the semantics of the real backends (backend.h): the same range checks and
 * errors, the same classification by mapping, counts that add up.
 *
 * All functions are thread-safe: the table is behind a mutex, and the
 * optional per-batch delay is slept outside it, so a mover test can run
 * moves in worker threads while the event loop keeps answering.
 *
 * A Backend comes from backend_fake_ops.open(); the setup hook, when set, is
 * called from every open() so that code that opens its own backends (the
 * manager) gets a scripted one. A hook that returns < 0 makes open() fail
 * with that error (e.g. -ENODEV: "module not loaded").
 */

#include <stdint.h>
#include <sys/types.h>

#include "backend.h"

#define FAKE_PAGE_SIZE UINT64_C(4096)
/* Page locations besides device indexes. */
#define FAKE_SYSTEM (-1)

typedef enum FakePageFlag {
	FAKE_PAGE_PINNED = 1 << 0,      /* refuses to move: pinned */
	FAKE_PAGE_SHARED = 1 << 1,      /* mapped by another process: shared */
	FAKE_PAGE_UNMOVABLE = 1 << 2,   /* unmovable */
	FAKE_PAGE_FAIL = 1 << 3,        /* the move is tried and fails: failed */
	FAKE_PAGE_YOUNG = 1 << 4,       /* accessed bit, for sample() */
} FakePageFlag;

typedef enum FakeOp {
	FAKE_OP_LIST_DEVICES,
	FAKE_OP_MOVE,
	FAKE_OP_RESIDENCY,
	FAKE_OP_SAMPLE,
	FAKE_OP_SAMPLE_WINDOWS,
	FAKE_OP_EVICT,
	_FAKE_OP_MAX,
} FakeOp;

typedef int (*FakeSetupFn)(Backend *b, void *userdata);
void backend_fake_set_setup(FakeSetupFn fn, void *userdata);

/* A device of total_pages pages; returns its id (0, 1, ...) or -ENOMEM. */
int fake_add_device(Backend *b, const char *name, int node, uint64_t total_pages);
/* A process; without mappings it has no address space (kernel thread, zombie). */
int fake_add_process(Backend *b, pid_t pid);
/* A mapping [start, end) of kind (page aligned, not overlapping others). */
int fake_add_mapping(Backend *b, pid_t pid, uint64_t start, uint64_t end, BackendMapKind kind);
/* n present pages from addr on, at location (FAKE_SYSTEM or a device id), with flags. */
int fake_set_pages(Backend *b, pid_t pid, uint64_t addr, uint64_t n, int location,
		   unsigned flags);
/* Forget the pages (not present again). */
int fake_clear_pages(Backend *b, pid_t pid, uint64_t addr, uint64_t n);
/* The process exits once this many more pages were moved by move(). */
int fake_exit_after(Backend *b, pid_t pid, uint64_t pages);
/* The process is gone now. */
int fake_remove_process(Backend *b, pid_t pid);

/* The next call (only) of op fails with error (negative errno). */
void fake_fail_next(Backend *b, FakeOp op, int error);
/* move() reports progress every batch_pages pages (default 512), sleeping delay_usec first. */
void fake_set_batch(Backend *b, uint64_t batch_pages, uint64_t delay_usec);

/* Where a page is: FAKE_SYSTEM, a device id, or -ENOENT when not present. */
int fake_page_location(Backend *b, pid_t pid, uint64_t addr);
/* How many calls op had (successful or not). */
unsigned fake_calls(Backend *b, FakeOp op);
/* Queue a monitor event and make the monitor fd readable. */
int fake_emit_event(Backend *b, const BackendEvent *event);
