/* Reading the engine's network namespace (network-read.c), and the libnl
 * helpers network.c shares. */
#pragma once

#include "network.h"

#include <netlink/cache.h>

static inline void network_nl_cache_freep(struct nl_cache **c)
{
	if (*c)
		nl_cache_free(*c);
}
#define _cleanup_nl_cache_ _cleanup_(network_nl_cache_freep)

/* "<context>: <libnl's reason>", context formatted as printf. Returns
 * -EIO with *ERR set. */
int network_nl_fail(struct error **err, int nlerr, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Frees a spec network_read_spec() built (NULL is fine). */
void network_spec_free(Cocoon__NetworkSpec *spec);
/* The interfaces of LINKS (namespace NS, named in errors) into n->ifs:
 * veth and macvlan only, besides lo and a reserved NIC's tap; anything else, none, or more than
 * NET_MAX_INTERFACES is refused by name. 0 or a negative errno. */
int network_read_links(struct network *n, struct nl_cache *links, const char *ns,
		       struct error **err);
/* N's spec (n->spec) from the namespace: links, addresses, routes. */
int network_read_spec(struct network *n, const char *ns, struct error **err);
