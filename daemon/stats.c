/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "util.h"

void stats_done(Stats *s)
{
	for (size_t i = 0; i < s->n_entries; i++)
		free(s->entries[i].name);
	free(s->entries);
	*s = (Stats) {};
}

const StatsEntry *stats_find(const Stats *s, const char *name)
{
	for (size_t i = 0; i < s->n_entries; i++)
		if (streq(s->entries[i].name, name))
			return &s->entries[i];
	return NULL;
}

StatsEntry *stats_get(Stats *s, const char *name)
{
	StatsEntry *e;
	char *n;

	e = (StatsEntry *) stats_find(s, name);
	if (e)
		return e;
	n = strdup(name);
	if (!n)
		return NULL;
	e = realloc(s->entries, (s->n_entries + 1) * sizeof(*e));
	if (!e) {
		free(n);
		return NULL;
	}
	s->entries = e;
	e = &s->entries[s->n_entries++];
	*e = (StatsEntry) { .name = n };
	return e;
}
