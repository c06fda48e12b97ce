/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The offline verbs (cli/cohctl-simulate.c): argv[0] is the verb. */
int verb_simulate(int argc, char **argv);
int verb_trace_generate(int argc, char **argv);
