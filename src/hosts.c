/*
 * Host resolution; see hosts.h. Nothing here runs a command.
 */
#include "hosts.h"

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "exec.h"
#include "exec_ssh.h"
#include "runbook.h"
#include "sshconfig.h"
#include "sys.h"

/* The local user name, for SSH hosts that name none: passwd first, as OpenSSH. */
static char *local_user(void)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	const char *u = getenv("USER");

	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
		return xstrdup(res->pw_name);
	return xstrdup(u && *u ? u : "root");
}

int hosts_open(const struct host *h, const struct host_access *a, bool lazy,
	       struct exec **ex, struct exec **local_ex, struct rb_error *err)
{
	static const char *const defaults[] = { ".ssh/id_ed25519",
						".ssh/id_ecdsa", ".ssh/id_rsa" };
	struct ssh_host_config cfg;
	struct strvec ids = STRVEC_INIT, defs = STRVEC_INIT;
	struct ssh_params p;
	char *user = NULL;
	int ret = -1;

	*ex = *local_ex = NULL;
	if (h->local) {
		*ex = exec_local_new();
		return 0;
	}
	memset(&cfg, 0, sizeof(cfg));
	memset(&p, 0, sizeof(p));
	if (sshconfig_lookup(NULL, h->address, &cfg, err) < 0)
		goto out;
	user = h->user ? xstrdup(h->user) :
	       cfg.user ? xstrdup(cfg.user) : local_user();
	if (h->identity || a->identity)
		strvec_push(&ids, h->identity ? h->identity : a->identity);
	for (size_t i = 0; i < cfg.identity_files.n; i++)
		strvec_push(&ids, cfg.identity_files.v[i]);
	for (size_t i = 0; i < 3; i++)
		strvec_push_owned(&defs, sys_home_file(defaults[i]));
	p.name = h->spec;
	p.address = cfg.hostname ? cfg.hostname : h->address;
	p.port = h->port ? h->port : cfg.port ? cfg.port : 22;
	p.user = user;
	p.identities = ids.v;
	p.default_identities = defs.v;
	p.identities_only = cfg.identities_only;
	/* ServerAliveInterval 0 (ssh: off) keeps the default: never off */
	p.alive_interval_s = cfg.server_alive_interval > 0 ?
			     (unsigned)cfg.server_alive_interval : 0;
	p.alive_count_max = cfg.server_alive_count_max;
	p.known_hosts = a->known_hosts;
	p.accept_new = a->accept_new;
	if (lazy)
		*ex = exec_ssh_lazy(&p);
	else if (exec_ssh_new(&p, ex, err) < 0)
		goto out;
	*local_ex = exec_local_new();
	ret = 0;
out:
	sshconfig_release(&cfg);
	strvec_release(&ids);
	strvec_release(&defs);
	free(user);
	return ret;
}

static char *identity_path(const char *id, const char *rb_file)
{
	struct buf b = BUF_INIT;

	if (id[0] == '/')
		return xstrdup(id);
	if (id[0] == '~' && id[1] == '/') {
		char *home = sys_home_file("");

		/* sys_home_file("") ends in '/': drop it, id + 1 starts with one */
		home[strlen(home) - 1] = '\0';
		buf_addf(&b, "%s%s", home, id + 1);
		free(home);
	} else {
		const char *slash = strrchr(rb_file, '/');
		char *dir = slash ? xstrndup(rb_file, (size_t)(slash - rb_file)) :
				    xstrdup(".");
		char *abs = realpath(dir, NULL);

		buf_addf(&b, "%s/%s", abs ? abs : dir, id);
		free(abs);
		free(dir);
	}
	return buf_detach(&b);
}

static void resolve(char **path, const char *rb_file)
{
	char *p;

	if (!*path)
		return;
	p = identity_path(*path, rb_file);
	free(*path);
	*path = p;
}

void hosts_resolve_identities(struct runbook *rb)
{
	for (size_t t = 0; t < rb->n_targets; t++) {
		struct target *tg = &rb->targets[t];

		resolve(&tg->identity.s, rb->file);
		for (size_t h = 0; h < tg->n_hosts; h++)
			resolve(&tg->hosts[h].identity, rb->file);
	}
}
