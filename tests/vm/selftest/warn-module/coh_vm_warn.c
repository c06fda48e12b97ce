// SPDX-License-Identifier: GPL-2.0
/*
 * coh_vm_warn - a module whose only job is to WARN when it is loaded.
 *
 * tests/vm/selftest/check-harness.sh loads it in the test VM to prove that
 * tests/vm/run fails a run whose kernel log shows a warning even though every
 * TAP point passed.  Never load it anywhere else.
 */
#include <linux/bug.h>
#include <linux/module.h>

static int __init coh_vm_warn_init(void)
{
	WARN(1, "coh_vm_warn: deliberate warning for the VM harness self-test\n");
	return 0;
}

static void __exit coh_vm_warn_exit(void)
{
}

module_init(coh_vm_warn_init);
module_exit(coh_vm_warn_exit);

MODULE_DESCRIPTION("Deliberate WARN for the coherentd VM test harness");
MODULE_LICENSE("GPL");
