/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Counters per device since the daemon started, kept by name so they survive
 * a device disappearing and coming back (a pool of a reloaded cohmem.ko).
 * "system" is the entry for system RAM. Touched only by the event loop.
 *
 *   bytes_in      bytes coherentd migrated onto the device
 *   bytes_out     bytes coherentd migrated off it (to system RAM or another
 *                 device), from its residency before and after a request
 *   migrations    Migrate requests that moved pages onto or off the device
 *                 (dry runs do not count)
 *   failures      Migrate requests to the device that ended in an error, or
 *                 in which pages failed to move (failed or no_space)
 *   failed_pages  pages that failed to move to it (failed + no_space)
 *
 * The placement loop's moves count in the fields above like Migrate requests,
 * and by why they were made:
 *   promoted_bytes  bytes placed on the device by hot: and bind: policies
 *   demoted_bytes   bytes a hot: policy sent back to system RAM (cold, over
 *                   quota, or making room for hotter ones)
 *   evicted_bytes   bytes moved off the device because its free memory fell
 *                   below the low watermark, or because a system policy
 *                   keeps the target off devices
 */

#include <stdint.h>
#include <stddef.h>

typedef struct StatsEntry {
	char *name;
	uint64_t bytes_in, bytes_out;
	uint64_t migrations, failures;
	uint64_t failed_pages;
	uint64_t promoted_bytes, demoted_bytes, evicted_bytes;
} StatsEntry;

typedef struct Stats {
	StatsEntry *entries;   /* in order of first use */
	size_t n_entries;
} Stats;

void stats_done(Stats *s);
/* The entry for name, created with zero counters when new; NULL on -ENOMEM. */
StatsEntry *stats_get(Stats *s, const char *name);
/* Existing entry or NULL. */
const StatsEntry *stats_find(const Stats *s, const char *name);
