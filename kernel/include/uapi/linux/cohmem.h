/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * cohmem: coherent device memory pools and cross-process page migration.
 *
 * Generic netlink family "cohmem", version 1. The YNL specification in
 * Documentation/netlink/specs/cohmem.yaml is the authoritative description;
 * this header mirrors it. Every command that changes state or looks into
 * another process needs CAP_NET_ADMIN (GENL_ADMIN_PERM).
 *
 * SAMPLE has two forms. With START and LENGTH it reads one range: the reply
 * has NR_PAGES, NR_YOUNG and BITMAP, and -EFAULT means that no mapping
 * intersects the range. With one or more WINDOW nests instead (each START and
 * LENGTH, page aligned, not empty; at most COHMEM_SAMPLE_MAX_WINDOWS, in
 * ascending address order and not overlapping, COHMEM_SAMPLE_MAX_PAGES pages
 * in all; anything else is -EINVAL with an extended ACK message) every window
 * is read under one lock of the target's address space, and the TLBs are
 * flushed once at the end when CLEAR cleared a bit. The reply has NR_PAGES and
 * NR_YOUNG of all windows, one BITMAP that concatenates the windows' bits in
 * request order (window i starts at the bit that is the sum of the pages of
 * the windows before it; LSB first within each byte), and one WINDOW nest per
 * window, in request order: START, NR_PAGES, NR_YOUNG, and the flag
 * NO_MAPPING when no mapping intersects that window (its bits are zero; this
 * form never fails with -EFAULT). START/LENGTH and WINDOW together: -EINVAL.
 */
#ifndef _UAPI_LINUX_COHMEM_H
#define _UAPI_LINUX_COHMEM_H

#include <linux/types.h>

#define COHMEM_FAMILY_NAME	"cohmem"
#define COHMEM_FAMILY_VERSION	1
#define COHMEM_MCGRP_MONITOR	"monitor"

/* COHMEM_A_DEST value that means "system RAM" instead of a pool id. */
#define COHMEM_DEST_SYSTEM	0xffffffffU

/* Upper bounds enforced by the attribute policy. */
#define COHMEM_SAMPLE_MAX_PAGES	(1U << 18)	/* 1 GiB of 4 KiB pages per SAMPLE */
#define COHMEM_EXTENTS_MAX	4096		/* extents per RESIDENCY reply */
#define COHMEM_SAMPLE_MAX_WINDOWS 64		/* WINDOW nests per SAMPLE */

enum cohmem_cmd {
	COHMEM_CMD_UNSPEC,
	COHMEM_CMD_POOL_GET,	/* do (POOL_ID) or dump: pool attributes */
	COHMEM_CMD_MIGRATE,	/* PID, START, LENGTH, DEST -> counts */
	COHMEM_CMD_RESIDENCY,	/* PID, START, LENGTH -> RESIDENT nests, EXTENT nests */
	COHMEM_CMD_SAMPLE,	/* PID, START, LENGTH, CLEAR -> BITMAP, NR_PAGES, NR_YOUNG;
				 * PID, WINDOW nests, CLEAR -> the same plus WINDOW nests */
	COHMEM_CMD_EVICT,	/* POOL_ID, NR_PAGES -> EVICTED, FAILED */
	COHMEM_CMD_WATERMARK_NTF, /* monitor group: POOL_ID, FREE_PAGES, WMARK */
	COHMEM_CMD_UNLOAD_NTF,	/* monitor group: module is going away */
	__COHMEM_CMD_MAX,
};
#define COHMEM_CMD_MAX (__COHMEM_CMD_MAX - 1)

enum cohmem_wmark {
	COHMEM_WMARK_LOW,	/* free pages fell below the low watermark */
	COHMEM_WMARK_HIGH,	/* free pages rose back above the high watermark */
};

enum cohmem_attr {
	COHMEM_A_UNSPEC,
	COHMEM_A_PAD,

	/* pools */
	COHMEM_A_POOL_ID,		/* u32 */
	COHMEM_A_POOL_NAME,		/* string, at most 31 bytes */
	COHMEM_A_POOL_PHYS_START,	/* u64, bytes */
	COHMEM_A_POOL_PHYS_SIZE,	/* u64, bytes */
	COHMEM_A_POOL_NID,		/* s32, -1 when no node */
	COHMEM_A_POOL_TOTAL_PAGES,	/* u64 */
	COHMEM_A_POOL_FREE_PAGES,	/* u64 */
	COHMEM_A_POOL_MIGRATED_IN,	/* u64, pages since load */
	COHMEM_A_POOL_MIGRATED_OUT,	/* u64, pages since load */
	COHMEM_A_POOL_EVICTED,		/* u64, pages since load */
	COHMEM_A_POOL_FAILURES,		/* u64, pages since load */
	COHMEM_A_POOL_LOW_PAGES,	/* u64, low watermark (free pages) */
	COHMEM_A_POOL_HIGH_PAGES,	/* u64, high watermark (free pages) */

	/* target range */
	COHMEM_A_PID,			/* u32 */
	COHMEM_A_START,			/* u64, page aligned */
	COHMEM_A_LENGTH,		/* u64, page aligned, > 0 */
	COHMEM_A_DEST,			/* u32, pool id or COHMEM_DEST_SYSTEM */

	/* MIGRATE / EVICT results, in pages */
	COHMEM_A_MIGRATED,		/* u64 moved to DEST */
	COHMEM_A_ALREADY,		/* u64 already at DEST */
	COHMEM_A_SKIP_NOT_PRESENT,	/* u64 never faulted in / swapped out */
	COHMEM_A_SKIP_FILE,		/* u64 file-backed (page cache) */
	COHMEM_A_SKIP_SHARED,		/* u64 shared mapping or page mapped by >1 mm */
	COHMEM_A_SKIP_PINNED,		/* u64 extra references (GUP pins, in-flight I/O) */
	COHMEM_A_SKIP_UNMOVABLE,	/* u64 VM_IO/VM_PFNMAP/hugetlb/locked and the like */
	COHMEM_A_SKIP_NO_SPACE,		/* u64 destination pool full */
	COHMEM_A_FAILED,		/* u64 collected but the move failed */

	/* RESIDENCY */
	COHMEM_A_SYSTEM_PAGES,		/* u64 present pages in system RAM */
	COHMEM_A_RESIDENT,		/* nest, multi: POOL_ID, NR_PAGES */
	COHMEM_A_EXTENT,		/* nest, multi: POOL_ID, START, LENGTH */
	COHMEM_A_TRUNCATED,		/* flag: more extents than fitted */

	/* SAMPLE */
	COHMEM_A_CLEAR,			/* flag: clear the young bits after reading */
	COHMEM_A_BITMAP,		/* binary, one bit per page, LSB first */
	COHMEM_A_NR_PAGES,		/* u64 */
	COHMEM_A_NR_YOUNG,		/* u64 */

	/* EVICT */
	COHMEM_A_EVICTED,		/* u64 */

	/* monitor */
	COHMEM_A_WMARK,			/* u32, enum cohmem_wmark */

	/* SAMPLE with several windows */
	COHMEM_A_WINDOW,		/* nest, multi: request START, LENGTH;
					 * reply START, NR_PAGES, NR_YOUNG, NO_MAPPING */
	COHMEM_A_NO_MAPPING,		/* flag: no mapping intersects the window */

	__COHMEM_A_MAX,
};
#define COHMEM_A_MAX (__COHMEM_A_MAX - 1)

#endif /* _UAPI_LINUX_COHMEM_H */
