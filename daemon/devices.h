/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Device discovery from sysfs, read relative to a root directory:
 *
 *   /sys/devices/system/node/has_cpu, has_memory    node state lists
 *   /sys/devices/system/node/nodeN/cpulist          fallback for has_cpu
 *   /sys/devices/system/node/nodeN/meminfo          MemTotal, MemFree
 *   /sys/devices/virtual/memory_tiering/memory_tierT/nodelist
 *
 * A NUMA node with memory and no CPUs is a device; so is every node the
 * configuration names in a [Device] section. The parsers take text so unit
 * tests and fuzzers feed them bytes.
 */

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"

/* Node ids are below the kernel's MAX_NUMNODES, at most 1 << 10. */
#define DEVICES_NODES_MAX 1024
#define DEVICES_NODE_WORDS (DEVICES_NODES_MAX / 64)

typedef struct Device {
	char *name;
	DeviceKind kind;
	int64_t id;               /* the backend's id: numa node, or cohmem pool id */
	int node;                 /* -1 when the device has no node */
	int tier;                 /* -1 when unknown */
	uint64_t total_bytes;
	uint64_t free_bytes;
	bool has_low_watermark, has_high_watermark;
	uint64_t low_watermark_bytes, high_watermark_bytes;
	bool configured;
} Device;

typedef struct NodeInfo {
	int id;
	bool has_cpu;
	bool has_memory;
	int tier;                 /* -1 when unknown */
	uint64_t total_bytes, free_bytes;
} NodeInfo;

/*
 * Parse a node's meminfo ("Node 1 MemTotal:  16384 kB" lines). The node
 * number in each line must be `node`. -EBADMSG when MemTotal or MemFree is
 * missing or a line is malformed, -ERANGE on overflow.
 */
int devices_parse_node_meminfo(const char *text, int node, uint64_t *ret_total,
			       uint64_t *ret_free);

/*
 * Free pages of each node held in the per-CPU page lists, from /proc/zoneinfo
 * ("Node 1, zone   Normal" starts a zone; each "count: N" line of its
 * pagesets adds N). Such pages are free, but not in the node's MemFree: the
 * pages a migration just took off a node mostly sit there for a while (tens
 * of MiB on a 1 GiB node with 2 CPUs). pages[] has n entries indexed by node
 * id and is added to; zones of nodes >= n are skipped. -EBADMSG when a count
 * line is malformed or comes before any zone, -ERANGE on overflow.
 */
int devices_parse_zoneinfo_pcp(const char *text, uint64_t *pages, size_t n);

/* "memory_tier4" → 4; -EINVAL for anything else. */
int devices_parse_tier_name(const char *name, int *ret_tier);

/*
 * Read every node under root. Nodes are returned in ascending id order.
 * free_bytes is MemFree plus the node's per-CPU list pages (when
 * /proc/zoneinfo is there and parses).
 * -ENOENT when root has no /sys/devices/system/node (no NUMA sysfs at all).
 */
int devices_read_nodes(const char *root, NodeInfo **ret, size_t *ret_n);

/*
 * Build the device list from nodes and configuration (conf may be NULL):
 * configured devices bound to existing nodes, in configuration order, then
 * CPU-less memory nodes that no configured device names, as "nodeN".
 * Configured devices whose node does not exist are left out and their names
 * returned in *ret_missing (may be NULL).
 */
int devices_build(const NodeInfo *nodes, size_t n_nodes, const Conf *conf,
		  Device **ret, size_t *ret_n, char ***ret_missing);

/* devices_read_nodes() + devices_build(). */
int devices_discover(const char *root, const Conf *conf, Device **ret, size_t *ret_n,
		     char ***ret_missing);

void devices_free(Device *d, size_t n);

/* Append a copy of d (name duplicated). */
int devices_append(Device **devices, size_t *n, const Device *d);
/* The device called name, or NULL. */
const Device *devices_find(const Device *devices, size_t n, const char *name);
