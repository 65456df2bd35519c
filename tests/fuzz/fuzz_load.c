/*
 * The runbook loader and validation, as `runbook validate FILE` runs
 * them (commands.c, load_checked()): load from bytes, validate what
 * loaded, print the diagnostics. Checks that the loader returns -1
 * exactly when it reported a problem (load.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "diag.h"
#include "fuzz.h"
#include "load.h"
#include "runbook.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *null;
	static char extra_name[] = "extra";
	char *extra[] = { extra_name };
	struct runbook *rb = NULL;
	struct diag d;
	int rc;

	if (!null && !(null = fopen("/dev/null", "we")))
		fuzz_fail("cannot open /dev/null");
	diag_init(&d, "fuzz.yml");
	rc = runbook_load_mem("fuzz.yml", (const char *)data, size, &rb, &d);
	if ((rc < 0) != (diag_count(&d) > 0))
		fuzz_fail("runbook_load_mem() returned %d with %zu problems",
			  rc, diag_count(&d));
	if (rb)
		runbook_validate(rb, extra, 1, &d);
	diag_print(&d, null);
	diag_release(&d);
	runbook_free(rb);
	return 0;
}
