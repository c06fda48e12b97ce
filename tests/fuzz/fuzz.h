/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libFuzzer entry point. Each tests/fuzz/fuzz-*.c defines it; linked with clang's
 * -fsanitize=fuzzer it is a fuzzer, linked with fuzz-main.c it replays a corpus
 * (what `make check` does, with gcc).
 */

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
