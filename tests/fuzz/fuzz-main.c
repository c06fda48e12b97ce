/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Standalone driver: replay files through LLVMFuzzerTestOneInput() without libFuzzer.
 *
 *   fuzz-NAME [FILE|DIR...]
 *
 * Without arguments it replays $top_srcdir/tests/fuzz/corpus/NAME/ (FUZZ_CORPUS),
 * as `make check` runs it. An empty or missing corpus is an error, never a pass: a
 * replay of nothing proves nothing. A crash or abort() in the target fails the test.
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_CORPUS
#error "FUZZ_CORPUS must name the corpus directory under tests/fuzz/corpus/"
#endif

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "re");
	uint8_t *buf = NULL;
	size_t n = 0, alloc = 0;

	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -errno;
	}
	for (;;) {
		size_t k;

		if (n == alloc) {
			uint8_t *b;

			alloc = alloc ? alloc * 2 : 65536;
			b = realloc(buf, alloc);
			if (!b) {
				fclose(f);
				free(buf);
				return -ENOMEM;
			}
			buf = b;
		}
		k = fread(buf + n, 1, alloc - n, f);
		n += k;
		if (k == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "%s: read error\n", path);
		fclose(f);
		free(buf);
		return -EIO;
	}
	fclose(f);

	fprintf(stderr, "replay %s (%zu bytes)\n", path, n);
	(void) LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 1;
}

static int filter_regular(const struct dirent *de)
{
	return de->d_name[0] != '.';
}

/* Returns the number of inputs replayed, or negative errno. */
static int replay_path(const char *path)
{
	struct dirent **list;
	struct stat st;
	int n, count = 0, r = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path);

	n = scandir(path, &list, filter_regular, alphasort);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		char *p;

		if (r >= 0 && asprintf(&p, "%s/%s", path, list[i]->d_name) >= 0) {
			r = replay_file(p);
			if (r > 0)
				count++;
			free(p);
		}
		free(list[i]);
	}
	free(list);
	return r < 0 ? r : count;
}

int main(int argc, char **argv)
{
	int total = 0, r;

	if (argc > 1) {
		for (int i = 1; i < argc; i++) {
			r = replay_path(argv[i]);
			if (r < 0)
				return EXIT_FAILURE;
			total += r;
		}
	} else {
		const char *top = getenv("top_srcdir");
		char *dir;

		if (asprintf(&dir, "%s/tests/fuzz/corpus/%s", top ?: ".", FUZZ_CORPUS) < 0)
			return EXIT_FAILURE;
		r = replay_path(dir);
		free(dir);
		if (r < 0)
			return EXIT_FAILURE;
		total = r;
	}

	if (total == 0) {
		fprintf(stderr, "No inputs replayed: the corpus is empty or missing.\n");
		return EXIT_FAILURE;
	}
	printf("%s: replayed %d input%s\n", FUZZ_CORPUS, total, total == 1 ? "" : "s");
	return EXIT_SUCCESS;
}
