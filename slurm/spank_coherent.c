/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * coherent.so: a SPANK plugin that gives srun, sbatch and salloc the option
 * --coherent=POLICY and hands the policy to coherentd for the job.
 *
 *   local/allocator (srun, sbatch, salloc, as the user): the option callback checks
 *       POLICY with policy_spec_parse(), the parser cohctl and coherentd use, so a
 *       bad policy fails the submission with the parser's message. init_post_opt
 *       exports it to the job control environment (SPANK_COHERENT in Prolog/Epilog).
 *   job_script (slurmd's prolog, as root): `cohctl policy set --job ID POLICY`.
 *   remote (slurmstepd, as root, each step): the same for a step that was given
 *       --coherent (a step inside an allocation may set its own; setting the same
 *       policy again is harmless), and SLURM_COHERENT in the step's environment.
 *   job_script (slurmd's epilog, as root): `cohctl policy clear --job ID`, always,
 *       since a step may have set a policy the job itself was not given.
 *
 * plugstack.conf arguments: cohctl=PATH socket=PATH timeout=SECONDS strict.
 * Without strict, a policy that cannot be applied (daemon down, device absent on
 * the node) is logged and the job runs without it; with strict the step fails.
 * The prolog and epilog hooks never fail: a failing required prolog drains the node.
 * See coherent-spank(8).
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <slurm/spank.h>

#include "macro.h"
#include "policy.h"
#include "util.h"

SPANK_PLUGIN(coherent, 1);

#define COHERENT_COHCTL_DEFAULT BINDIR "/cohctl"
#define COHERENT_TIMEOUT_DEFAULT 10U
#define COHERENT_TIMEOUT_MAX 3600U
#define COHERENT_POLICY_MAX 128     /* policy_spec_format()'s buffer size */
#define COHERENT_OUTPUT_MAX 1024    /* cohctl's message kept for the log */
/* How slurmd hands the job's --coherent to the prolog and epilog. */
#define COHERENT_OPTION_ENV "SPANK__SLURM_SPANK_OPTION_coherent_coherent"

/* cohctl(8) exit codes the plugin tells apart. */
#define COHCTL_EXIT_NO_TARGET 3      /* NoSuchTarget: nothing to clear */
#define COHCTL_EXIT_UNAVAILABLE 69   /* coherentd not running */

typedef struct CoherentConf {
	char cohctl[PATH_MAX];
	char socket[PATH_MAX];  /* "": cohctl's default */
	unsigned timeout_sec;
	bool strict;
} CoherentConf;

/* The canonical form of --coherent's argument, "" when not given. */
static char opt_policy[COHERENT_POLICY_MAX];

static int coherent_opt_cb(int val, const char *optarg, int remote);

struct spank_option spank_options[] = {
	{
		(char *) "coherent", (char *) "POLICY",
		(char *) "Memory placement by coherentd for the job: system, bind:DEV or "
		"hot:DEV, optionally followed by ,quota=SIZE and ,priority=N",
		1, 0, coherent_opt_cb,
	},
	SPANK_OPTIONS_TABLE_END
};

/* Parse s into its canonical form; on error say why in the user's terms. */
static int coherent_policy_canonical(const char *s, char *buf, size_t size)
{
	PolicySpec spec;
	const char *why = NULL;
	int r;

	r = policy_spec_parse(s, &spec, &why);
	if (r < 0) {
		slurm_error("coherent: invalid --coherent=%s: %s", s, why ?: strerror(-r));
		return r;
	}
	policy_spec_format(&spec, buf, size);
	return 0;
}

static int coherent_opt_cb(int val, const char *optarg, int remote)
{
	if (isempty(optarg)) {
		slurm_error("coherent: --coherent needs a policy (system, bind:DEV or hot:DEV)");
		return -1;
	}
	if (coherent_policy_canonical(optarg, opt_policy, sizeof(opt_policy)) < 0) {
		opt_policy[0] = '\0';
		return -1;
	}
	return 0;
}

static int coherent_conf_parse(int ac, char **av, CoherentConf *ret)
{
	CoherentConf c = {
		.timeout_sec = COHERENT_TIMEOUT_DEFAULT,
	};
	const char *v;

	snprintf(c.cohctl, sizeof(c.cohctl), "%s", COHERENT_COHCTL_DEFAULT);
	for (int i = 0; i < ac; i++) {
		if ((v = startswith(av[i], "cohctl="))) {
			if (v[0] != '/' || strlen(v) >= sizeof(c.cohctl)) {
				slurm_error("coherent: plugstack.conf: cohctl= needs an absolute path, "
					    "got '%s'", v);
				return -EINVAL;
			}
			snprintf(c.cohctl, sizeof(c.cohctl), "%s", v);
		} else if ((v = startswith(av[i], "socket="))) {
			if (v[0] != '/' || strlen(v) >= sizeof(c.socket)) {
				slurm_error("coherent: plugstack.conf: socket= needs an absolute path, "
					    "got '%s'", v);
				return -EINVAL;
			}
			snprintf(c.socket, sizeof(c.socket), "%s", v);
		} else if ((v = startswith(av[i], "timeout="))) {
			if (safe_atou(v, &c.timeout_sec) < 0 || c.timeout_sec == 0 ||
			    c.timeout_sec > COHERENT_TIMEOUT_MAX) {
				slurm_error("coherent: plugstack.conf: timeout= needs seconds in "
					    "1..%u, got '%s'", COHERENT_TIMEOUT_MAX, v);
				return -EINVAL;
			}
		} else if (streq(av[i], "strict"))
			c.strict = true;
		else {
			slurm_error("coherent: plugstack.conf: unknown argument '%s' (known: "
				    "cohctl=PATH socket=PATH timeout=SECONDS strict)", av[i]);
			return -EINVAL;
		}
	}
	*ret = c;
	return 0;
}

/*
 * Run cohctl with argv (without the program and --socket/--timeout, which come
 * from c), stdout discarded, stderr kept in out. Returns its exit status, or a
 * negative errno when it could not be run or was killed.
 */
static int coherent_run_cohctl(const CoherentConf *c, const char *const *args,
			       char *out, size_t out_size)
{
	char timeout[32];
	const char *argv[16];
	char *const envp[] = { (char *) "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
			       (char *) "LC_ALL=C", NULL };
	int pipefd[2], status, r;
	size_t n = 0, len = 0;
	char *stripped;
	pid_t pid;

	snprintf(timeout, sizeof(timeout), "--timeout=%us", c->timeout_sec);
	argv[n++] = c->cohctl;
	if (c->socket[0]) {
		argv[n++] = "--socket";
		argv[n++] = c->socket;
	}
	argv[n++] = timeout;
	for (size_t i = 0; args[i]; i++) {
		if (n + 1 >= ELEMENTSOF(argv))
			return -E2BIG;
		argv[n++] = args[i];
	}
	argv[n] = NULL;

	out[0] = '\0';
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		safe_close(pipefd[0]);
		safe_close(pipefd[1]);
		return r;
	}
	if (pid == 0) {
		sigset_t ss;
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

		/* slurmstepd blocks and handles signals of its own: start clean. */
		sigemptyset(&ss);
		sigprocmask(SIG_SETMASK, &ss, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 ||
		    dup2(devnull, STDOUT_FILENO) < 0 || dup2(pipefd[1], STDERR_FILENO) < 0)
			_exit(127);
		/* Nothing of slurmstepd's (sockets to srun, munge, ...) for cohctl. */
		(void) close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
		execve(argv[0], (char *const *) argv, envp);
		dprintf(STDERR_FILENO, "cannot run %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	safe_close(pipefd[1]);
	/* cohctl gives up after --timeout itself; read until it closes stderr. */
	for (;;) {
		ssize_t k;

		if (len + 1 < out_size)
			k = read(pipefd[0], out + len, out_size - 1 - len);
		else {
			char discard[256];

			k = read(pipefd[0], discard, sizeof(discard));
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (len + 1 < out_size)
			len += (size_t) k;
	}
	out[len] = '\0';
	safe_close(pipefd[0]);
	stripped = strstrip(out);
	memmove(out, stripped, strlen(stripped) + 1);

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return -EINTR;
}

static int coherent_job_id(spank_t sp, uint32_t *ret)
{
	const char *e;
	unsigned v;

	if (spank_get_item(sp, S_JOB_ID, ret) == ESPANK_SUCCESS && *ret != 0)
		return 0;
	/* The prolog and epilog have it in their environment in any case. */
	e = getenv("SLURM_JOB_ID");
	if (e && safe_atou(e, &v) >= 0 && v != 0) {
		*ret = v;
		return 0;
	}
	slurm_error("coherent: cannot tell the job id");
	return -ESRCH;
}

static int coherent_apply(const CoherentConf *c, uint32_t job, const char *policy)
{
	char out[COHERENT_OUTPUT_MAX], id[16];
	int r;

	snprintf(id, sizeof(id), "%" PRIu32, job);
	r = coherent_run_cohctl(c, (const char *const[]) { "policy", "set", "--job", id, policy,
							    NULL },
				out, sizeof(out));
	if (r == 0) {
		slurm_info("coherent: job %" PRIu32 ": policy %s", job, policy);
		return 0;
	}
	if (r < 0)
		slurm_error("coherent: job %" PRIu32 ": cannot run %s: %s", job, c->cohctl,
			    strerror(-r));
	else
		slurm_error("coherent: job %" PRIu32 ": policy %s not applied (cohctl exit %d): %s",
			    job, policy, r, out);
	return -EIO;
}

static int coherent_clear(const CoherentConf *c, uint32_t job, bool given)
{
	char out[COHERENT_OUTPUT_MAX], id[16];
	int r;

	snprintf(id, sizeof(id), "%" PRIu32, job);
	r = coherent_run_cohctl(c, (const char *const[]) { "policy", "clear", "--job", id, NULL },
				out, sizeof(out));
	if (r == 0) {
		slurm_info("coherent: job %" PRIu32 ": policy cleared", job);
		return 0;
	}
	if (r == COHCTL_EXIT_NO_TARGET)
		return 0;   /* the job had no policy here */
	if (r == COHCTL_EXIT_UNAVAILABLE && !given) {
		/* No daemon and nothing asked of it: nothing to clear. */
		slurm_debug("coherent: job %" PRIu32 ": %s", job, out);
		return 0;
	}
	if (r < 0)
		slurm_error("coherent: job %" PRIu32 ": cannot run %s: %s", job, c->cohctl,
			    strerror(-r));
	else
		slurm_error("coherent: job %" PRIu32 ": policy not cleared (cohctl exit %d): %s",
			    job, r, out);
	return -EIO;
}

/* The policy given to this job or step, canonical, or NULL. */
static const char *coherent_given(spank_t sp)
{
	char *arg = NULL;

	if (opt_policy[0])
		return opt_policy;
	/*
	 * In job_script context the option callback is not called. spank(7) says
	 * spank_option_getopt() sees the option there, but 22.05 answers ESPANK_ERROR
	 * in the prolog; slurmd passes the options to it in the environment, under
	 * this name, so read that.
	 */
	if (spank_option_getopt(sp, &spank_options[0], &arg) != ESPANK_SUCCESS || isempty(arg))
		arg = getenv(COHERENT_OPTION_ENV);
	if (isempty(arg))
		return NULL;
	if (coherent_policy_canonical(arg, opt_policy, sizeof(opt_policy)) < 0) {
		opt_policy[0] = '\0';
		return NULL;
	}
	return opt_policy;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	CoherentConf c;

	/* A broken plugstack.conf line shows up at once, in every context. */
	if (coherent_conf_parse(ac, av, &c) < 0)
		return -1;
	/* Slurm reads the static spank_options table everywhere but in sbatch and salloc. */
	if (spank_context() == S_CTX_ALLOCATOR &&
	    spank_option_register(sp, &spank_options[0]) != ESPANK_SUCCESS) {
		slurm_error("coherent: cannot register --coherent");
		return -1;
	}
	return 0;
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	CoherentConf c;
	const char *policy;
	uint32_t job;

	if (coherent_conf_parse(ac, av, &c) < 0)
		return -1;

	switch (spank_context()) {
	case S_CTX_LOCAL:
	case S_CTX_ALLOCATOR:
		if (!opt_policy[0])
			return 0;
		/* For Prolog/Epilog scripts (as SPANK_COHERENT) and the job itself. */
		if (spank_job_control_setenv(sp, "COHERENT", opt_policy, 1) != ESPANK_SUCCESS)
			slurm_error("coherent: cannot pass the policy to the prolog");
		if (setenv("SLURM_COHERENT", opt_policy, 1) < 0)
			slurm_error("coherent: cannot set SLURM_COHERENT: %m");
		return 0;

	case S_CTX_REMOTE:
		policy = coherent_given(sp);
		if (!policy)
			return 0;
		if (spank_setenv(sp, "SLURM_COHERENT", policy, 1) != ESPANK_SUCCESS)
			slurm_error("coherent: cannot set SLURM_COHERENT in the job's environment");
		if (coherent_job_id(sp, &job) < 0)
			return c.strict ? -1 : 0;
		if (coherent_apply(&c, job, policy) < 0)
			return c.strict ? -1 : 0;
		return 0;

	default:
		return 0;
	}
}

int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
	CoherentConf c;
	const char *policy;
	uint32_t job;

	if (coherent_conf_parse(ac, av, &c) < 0)
		return 0;
	policy = coherent_given(sp);
	if (!policy || coherent_job_id(sp, &job) < 0)
		return 0;
	(void) coherent_apply(&c, job, policy);
	return 0;
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	CoherentConf c;
	uint32_t job;

	if (coherent_conf_parse(ac, av, &c) < 0)
		return 0;
	if (coherent_job_id(sp, &job) < 0)
		return 0;
	(void) coherent_clear(&c, job, coherent_given(sp) != NULL);
	return 0;
}
