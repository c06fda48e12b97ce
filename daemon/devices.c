/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices.h"
#include "util.h"

#define NODE_DIR "/sys/devices/system/node"
#define TIER_DIR "/sys/devices/virtual/memory_tiering"

void devices_free(Device *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(d[i].name);
	free(d);
}

int devices_append(Device **devices, size_t *n, const Device *d)
{
	Device *nd;
	char *name;

	name = strdup(d->name);
	if (!name)
		return -ENOMEM;
	nd = realloc(*devices, (*n + 1) * sizeof(Device));
	if (!nd) {
		free(name);
		return -ENOMEM;
	}
	*devices = nd;
	nd[*n] = *d;
	nd[*n].name = name;
	(*n)++;
	return 0;
}

const Device *devices_find(const Device *devices, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (streq(devices[i].name, name))
			return &devices[i];
	return NULL;
}

int devices_parse_node_meminfo(const char *text, int node, uint64_t *ret_total,
			       uint64_t *ret_free)
{
	bool have_total = false, have_free = false;
	uint64_t total = 0, mfree = 0;
	const char *p = text;

	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t) (eol - p) : strlen(p);
		char line[256], key[64], unit[8], extra;
		unsigned long long kb;
		int id, n;

		if (len >= sizeof(line))
			return -EBADMSG;
		memcpy(line, p, len);
		line[len] = '\0';
		p += len + (eol ? 1 : 0);

		if (strspn(line, " \t") == len)
			continue;

		/* "Node 1 MemTotal:       16384 kB"; HugePages_* lines have no unit. */
		n = sscanf(line, "Node %d %63[^: ]: %llu %7s %c", &id, key, &kb, unit, &extra);
		if (n < 3 || n > 4)
			return -EBADMSG;
		if (id != node)
			return -EBADMSG;
		if (!streq(key, "MemTotal") && !streq(key, "MemFree"))
			continue;
		if (n != 4 || !streq(unit, "kB"))
			return -EBADMSG;
		if (kb > UINT64_MAX / 1024)
			return -ERANGE;
		if (streq(key, "MemTotal")) {
			total = kb * 1024;
			have_total = true;
		} else {
			mfree = kb * 1024;
			have_free = true;
		}
	}
	if (!have_total || !have_free)
		return -EBADMSG;
	if (mfree > total)
		return -EBADMSG;
	*ret_total = total;
	*ret_free = mfree;
	return 0;
}

int devices_parse_zoneinfo_pcp(const char *text, uint64_t *pages, size_t n)
{
	const char *p = text;
	long node = -1;

	while (*p) {
		size_t len = strcspn(p, "\n");
		char line[256], zone[64];
		uint64_t count;
		const char *s;
		int id;

		if (len < sizeof(line)) {
			memcpy(line, p, len);
			line[len] = '\0';
		} else
			line[0] = '\0';   /* no line of interest is that long */
		p += len + (p[len] ? 1 : 0);

		if (sscanf(line, "Node %d, zone %63s", &id, zone) == 2) {
			if (id < 0)
				return -EBADMSG;
			node = id;
			continue;
		}
		s = line + strspn(line, " \t");
		s = startswith(s, "count:");
		if (!s)
			continue;
		if (node < 0)
			return -EBADMSG;
		s += strspn(s, " \t");
		if (*s < '0' || *s > '9' || safe_atou64(s, &count) < 0)
			return -EBADMSG;
		if ((size_t) node >= n)
			continue;
		if (count > UINT64_MAX - pages[node])
			return -ERANGE;
		pages[node] += count;
	}
	return 0;
}

/* Adds each node's per-CPU list pages to its free bytes; nothing when zoneinfo is unusable. */
static void add_pcp_free(const char *root, NodeInfo *nodes, size_t n)
{
	_cleanup_free_ char *text = NULL;
	uint64_t pages[DEVICES_NODES_MAX] = {};
	long ps = sysconf(_SC_PAGESIZE);

	if (ps <= 0 || read_file_root(root, "/proc/zoneinfo", 0, &text, NULL) < 0 ||
	    devices_parse_zoneinfo_pcp(text, pages, ELEMENTSOF(pages)) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		uint64_t add = pages[nodes[i].id] > UINT64_MAX / (uint64_t) ps ?
			       UINT64_MAX : pages[nodes[i].id] * (uint64_t) ps;

		nodes[i].free_bytes = add > nodes[i].total_bytes - nodes[i].free_bytes ?
				      nodes[i].total_bytes : nodes[i].free_bytes + add;
	}
}

int devices_parse_tier_name(const char *name, int *ret_tier)
{
	const char *s = startswith(name, "memory_tier");
	int t;

	if (!s || safe_atoi(s, &t) < 0 || t < 0)
		return -EINVAL;
	*ret_tier = t;
	return 0;
}

/* Read a kernel id list file; -ENOENT passes through, junk is -EBADMSG. */
static int read_id_list(const char *root, const char *path, uint64_t *bits)
{
	_cleanup_free_ char *text = NULL;
	int r;

	r = read_file_root(root, path, 0, &text, NULL);
	if (r < 0)
		return r;
	r = parse_id_list(text, bits, DEVICES_NODES_MAX);
	if (r == -EINVAL)
		return -EBADMSG;
	return r;
}

static int cmp_node(const void *a, const void *b)
{
	const NodeInfo *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static int read_tiers(const char *root, NodeInfo *nodes, size_t n_nodes)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int r;

	dir = path_join_root(root, TIER_DIR);
	if (!dir)
		return -ENOMEM;
	d = opendir(dir);
	if (!d)
		/* Kernels before 6.1, or without memory tiering: tiers unknown. */
		return errno == ENOENT ? 0 : -errno;

	while ((errno = 0, de = readdir(d))) {
		uint64_t bits[DEVICES_NODE_WORDS] = {};
		_cleanup_free_ char *path = NULL;
		int tier;

		if (devices_parse_tier_name(de->d_name, &tier) < 0)
			continue;
		if (asprintf(&path, TIER_DIR "/%s/nodelist", de->d_name) < 0)
			return -ENOMEM;
		r = read_id_list(root, path, bits);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n_nodes; i++)
			if (bit_test(bits, (size_t) nodes[i].id))
				nodes[i].tier = tier;
	}
	if (errno != 0)
		return -errno;
	return 0;
}

int devices_read_nodes(const char *root, NodeInfo **ret, size_t *ret_n)
{
	uint64_t has_cpu[DEVICES_NODE_WORDS] = {}, has_memory[DEVICES_NODE_WORDS] = {};
	bool have_has_cpu, have_has_memory;
	_cleanup_free_ NodeInfo *nodes = NULL;
	_cleanup_free_ char *dir = NULL;
	_cleanup_closedir_ DIR *d = NULL;
	size_t n = 0;
	struct dirent *de;
	int r;

	dir = path_join_root(root, NODE_DIR);
	if (!dir)
		return -ENOMEM;
	d = opendir(dir);
	if (!d)
		return -errno;

	r = read_id_list(root, NODE_DIR "/has_cpu", has_cpu);
	if (r < 0 && r != -ENOENT)
		return r;
	have_has_cpu = r >= 0;
	r = read_id_list(root, NODE_DIR "/has_memory", has_memory);
	if (r < 0 && r != -ENOENT)
		return r;
	have_has_memory = r >= 0;

	while ((errno = 0, de = readdir(d))) {
		_cleanup_free_ char *path = NULL, *text = NULL;
		const char *s = startswith(de->d_name, "node");
		NodeInfo *ni, *nn;
		unsigned id;

		if (!s || safe_atou(s, &id) < 0)
			continue;
		if (id >= DEVICES_NODES_MAX)
			return -ERANGE;

		nn = realloc(nodes, (n + 1) * sizeof(NodeInfo));
		if (!nn)
			return -ENOMEM;
		nodes = nn;
		ni = &nodes[n++];
		*ni = (NodeInfo) { .id = (int) id, .tier = -1 };

		if (asprintf(&path, NODE_DIR "/node%u/meminfo", id) < 0)
			return -ENOMEM;
		r = read_file_root(root, path, 0, &text, NULL);
		if (r < 0)
			return r;
		r = devices_parse_node_meminfo(text, (int) id, &ni->total_bytes, &ni->free_bytes);
		if (r < 0)
			return r;

		if (have_has_cpu)
			ni->has_cpu = bit_test(has_cpu, id);
		else {
			uint64_t cpus[DEVICES_NODE_WORDS * 8] = {};

			/* No has_cpu: a node has CPUs when its cpulist is not empty. */
			free(path);
			if (asprintf(&path, NODE_DIR "/node%u/cpulist", id) < 0) {
				path = NULL;
				return -ENOMEM;
			}
			free(text);
			text = NULL;
			r = read_file_root(root, path, 0, &text, NULL);
			if (r < 0)
				return r;
			r = parse_id_list(text, cpus, ELEMENTSOF(cpus) * 64);
			if (r < 0)
				return r == -EINVAL ? -EBADMSG : r;
			ni->has_cpu = false;
			for (size_t w = 0; w < ELEMENTSOF(cpus); w++)
				if (cpus[w])
					ni->has_cpu = true;
		}
		ni->has_memory = have_has_memory ? bit_test(has_memory, id) : ni->total_bytes > 0;
	}
	if (errno != 0)
		return -errno;

	if (n > 0)
		qsort(nodes, n, sizeof(NodeInfo), cmp_node);
	add_pcp_free(root, nodes, n);

	r = read_tiers(root, nodes, n);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(nodes);
	*ret_n = n;
	return 0;
}

static const NodeInfo *find_node(const NodeInfo *nodes, size_t n, int id)
{
	for (size_t i = 0; i < n; i++)
		if (nodes[i].id == id)
			return &nodes[i];
	return NULL;
}

static int device_append(Device **devices, size_t *n, const char *name, const NodeInfo *ni,
			 const ConfDevice *cd)
{
	Device *nd, *d;

	nd = realloc(*devices, (*n + 1) * sizeof(Device));
	if (!nd)
		return -ENOMEM;
	*devices = nd;
	d = &nd[*n];
	*d = (Device) {
		.name = strdup(name),
		.kind = DEVICE_KIND_NUMA,
		.id = ni->id,
		.node = ni->id,
		.tier = ni->tier,
		.total_bytes = ni->total_bytes,
		.free_bytes = ni->free_bytes,
		.configured = !!cd,
	};
	if (!d->name)
		return -ENOMEM;
	if (cd) {
		d->kind = cd->kind;
		d->has_low_watermark = cd->low.set;
		d->low_watermark_bytes = watermark_bytes(&cd->low, ni->total_bytes);
		d->has_high_watermark = cd->high.set;
		d->high_watermark_bytes = watermark_bytes(&cd->high, ni->total_bytes);
	}
	(*n)++;
	return 0;
}

int devices_build(const NodeInfo *nodes, size_t n_nodes, const Conf *conf,
		  Device **ret, size_t *ret_n, char ***ret_missing)
{
	_cleanup_strv_free_ char **missing = NULL;
	Device *devices = NULL;
	size_t n = 0;
	int r;

	for (size_t i = 0; conf && i < conf->n_devices; i++) {
		const ConfDevice *cd = &conf->devices[i];
		const NodeInfo *ni = find_node(nodes, n_nodes, cd->node);

		if (!ni) {
			r = strv_extend(&missing, cd->name);
			if (r < 0)
				goto fail;
			continue;
		}
		r = device_append(&devices, &n, cd->name, ni, cd);
		if (r < 0)
			goto fail;
	}

	for (size_t i = 0; i < n_nodes; i++) {
		const NodeInfo *ni = &nodes[i];
		char name[32];

		if (ni->has_cpu || !ni->has_memory)
			continue;
		if (conf && conf_find_device_by_node(conf, ni->id))
			continue;
		snprintf(name, sizeof(name), "node%d", ni->id);
		/* A configured device may already be called "nodeN" for another node. */
		if (conf && conf_find_device(conf, name))
			snprintf(name, sizeof(name), "node%d-auto", ni->id);
		r = device_append(&devices, &n, name, ni, NULL);
		if (r < 0)
			goto fail;
	}

	*ret = devices;
	*ret_n = n;
	if (ret_missing)
		*ret_missing = TAKE_PTR(missing);
	return 0;

fail:
	devices_free(devices, n);
	return r;
}

int devices_discover(const char *root, const Conf *conf, Device **ret, size_t *ret_n,
		     char ***ret_missing)
{
	_cleanup_free_ NodeInfo *nodes = NULL;
	size_t n_nodes = 0;
	int r;

	r = devices_read_nodes(root, &nodes, &n_nodes);
	if (r < 0)
		return r;
	return devices_build(nodes, n_nodes, conf, ret, ret_n, ret_missing);
}
