/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz the /proc/PID/maps parser (daemon/backend.c) that both backends trust to
 * classify a process's pages. Invariants: the parser accepts or says -EBADMSG
 * and hands out nothing; what it accepts is in address order, page aligned,
 * non-empty and non-overlapping, with well-formed permissions, a kind that
 * matches them, and a path without NUL or newline; printed back in the
 * kernel's format it parses to the same mappings. Small accepted inputs are
 * then loaded into the fake backend and moved whole: the counts must add up
 * to the pages of every mapping. The same bytes go through the
 * /proc/PID/numa_maps parser (ordered, aligned, node ids in range and unique).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-fake.h"
#include "backend.h"
#include "fuzz.h"
#include "macro.h"

#define CHECK(x)                                                                       \
	do {                                                                           \
		if (!(x)) {                                                            \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
			abort();                                                       \
		}                                                                      \
	} while (0)

static char *print_maps(const BackendMapping *m, size_t n, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	CHECK(f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%08" PRIx64 "-%08" PRIx64 " %s %08" PRIx64 " 00:00 %" PRIu64 "%s%s\n",
			m[i].start, m[i].end, m[i].perms, m[i].offset, m[i].inode,
			m[i].path ? " " : "", m[i].path ?: "");
	CHECK(fclose(f) == 0);
	*ret_len = len;
	return buf;
}

static void check_fake(const BackendMapping *m, size_t n)
{
	BackendTarget t = { .id = 0 };
	Backend *b = NULL;
	MoveCounts c;
	uint64_t pages = 0;
	int r;

	for (size_t i = 0; i < n; i++)
		pages += (m[i].end - m[i].start) / 4096;
	if (n == 0 || pages > 65536 || m[n - 1].end > BACKEND_USER_ADDR_MAX)
		return;
	CHECK(backend_fake_ops.open(&b, NULL) == 0);
	CHECK(fake_add_device(b, "dev", -1, pages / 2) == 0);
	CHECK(fake_add_process(b, 1) == 0);
	for (size_t i = 0; i < n; i++) {
		CHECK(fake_add_mapping(b, 1, m[i].start, m[i].end, m[i].kind) == 0);
		/* Every other page of an anonymous mapping present. */
		if (m[i].kind == BACKEND_MAP_ANON)
			for (uint64_t a = m[i].start; a < m[i].end; a += 8192)
				CHECK(fake_set_pages(b, 1, a, 1, FAKE_SYSTEM, 0) == 0);
	}
	r = backend_fake_ops.move(b, 1, 0, 0, &t, NULL, NULL, &c);
	CHECK(r == 0);
	CHECK(move_counts_total(&c) == pages);
	CHECK(c.failed == 0 && c.pinned == 0);
	backend_fake_ops.close(b);
}

/* The same bytes as /proc/PID/numa_maps. */
static void fuzz_numa_maps(const uint8_t *data, size_t size)
{
	BackendNumaMapsEntry *e = (BackendNumaMapsEntry *) 0x1;
	size_t n = 12345;
	int r;

	r = backend_numa_maps_parse((const char *) data, size, &e, &n);
	CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM);
	if (r < 0) {
		CHECK(e == (BackendNumaMapsEntry *) 0x1 && n == 12345);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		CHECK(e[i].start % 4096 == 0);
		CHECK(i == 0 || e[i - 1].start < e[i].start);
		for (size_t k = 0; k < e[i].n_nodes; k++) {
			CHECK(e[i].nodes[k].node >= 0 && e[i].nodes[k].node < 1024);
			for (size_t l = 0; l < k; l++)
				CHECK(e[i].nodes[l].node != e[i].nodes[k].node);
		}
	}
	backend_numa_maps_free(e, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	BackendMapping *m = (BackendMapping *) 0x1, *m2 = NULL;
	size_t n = 12345, n2 = 0, len;
	char *text;
	int r;

	if (size > 1 << 20)
		return 0;
	fuzz_numa_maps(data, size);
	r = backend_maps_parse((const char *) data, size, &m, &n);
	CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM);
	if (r < 0) {
		CHECK(m == (BackendMapping *) 0x1 && n == 12345);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		CHECK(m[i].start < m[i].end);
		CHECK(m[i].start % 4096 == 0 && m[i].end % 4096 == 0);
		CHECK(i == 0 || m[i - 1].end <= m[i].start);
		CHECK(strlen(m[i].perms) == 4 && strspn(m[i].perms, "rwxps-") == 4);
		CHECK((m[i].perms[3] == 's') == (m[i].kind == BACKEND_MAP_SHARED));
		CHECK(backend_map_kind_to_string(m[i].kind));
		if (m[i].path) {
			CHECK(m[i].path[0] != '\0');
			CHECK(!strchr(m[i].path, '\n'));
		} else
			CHECK(m[i].kind == BACKEND_MAP_ANON || m[i].kind == BACKEND_MAP_SHARED ||
			      (m[i].kind == BACKEND_MAP_FILE && m[i].inode != 0));
	}

	/* Round trip. Paths that start with spaces lose them, as in the kernel's format. */
	text = print_maps(m, n, &len);
	r = backend_maps_parse(text, len, &m2, &n2);
	CHECK(r == 0 && n2 == n);
	for (size_t i = 0; i < n; i++) {
		CHECK(m2[i].start == m[i].start && m2[i].end == m[i].end);
		CHECK(m2[i].offset == m[i].offset && m2[i].inode == m[i].inode);
		CHECK(streq(m2[i].perms, m[i].perms));
		if (m[i].path && m[i].path[0] != ' ')
			CHECK(m2[i].path && streq(m2[i].path, m[i].path) && m2[i].kind == m[i].kind);
	}
	backend_mappings_free(m2, n2);
	free(text);

	check_fake(m, n);
	backend_mappings_free(m, n);
	return 0;
}
