/*
 * The ssh_config reader. The first line of the input is the alias to
 * look up, the rest is ~/.ssh/config; an input without a newline has
 * no config file. $HOME is the fuzzer's temp dir, so ~, relative
 * Includes and the ownership checks of the default file are all
 * exercised; an Include may name the config itself.
 *
 * Checks (sshconfig.h): a failed lookup leaves the result untouched
 * and says RB_ERR_INVALID; a port is 1-65535; at most 100 identities.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fuzz.h"
#include "sshconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *config;
	struct ssh_host_config hc = SSH_HOST_CONFIG_INIT;
	struct rb_error err = RB_ERROR_INIT;
	const uint8_t *nl = memchr(data, '\n', size);
	size_t alias_len = nl ? (size_t)(nl - data) : size;
	char *alias = fuzz_str(data, alias_len);

	if (!config) {
		char *dir = fuzz_path(".ssh");

		setenv("HOME", fuzz_tmpdir(), 1);
		setenv("FUZZ_VAR", "from-env", 1);
		mkdir(dir, 0700);
		free(dir);
		config = fuzz_path(".ssh/config");
	}
	/* an input without a newline: no config file at all */
	if (nl)
		fuzz_write(config, nl + 1, size - alias_len - 1);
	else
		unlink(config);
	hc.port = 12345;
	if (sshconfig_lookup(NULL, alias, &hc, &err) < 0) {
		if (hc.hostname || hc.user || hc.port != 12345 ||
		    hc.identity_files.n)
			fuzz_fail("a failed lookup changed the result");
		if (err.cls != RB_ERR_INVALID)
			fuzz_fail("a failed lookup says class %d: %s", err.cls,
				  err.msg);
	} else {
		if (hc.port > 65535)
			fuzz_fail("port %u", hc.port);
		if (hc.identity_files.n > 100)
			fuzz_fail("%zu identity files", hc.identity_files.n);
		sshconfig_release(&hc);
	}
	free(alias);
	return 0;
}
