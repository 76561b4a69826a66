/* Reading the engine's network namespace (network-read.h): its links,
 * addresses and routes, into the spec the agent rebuilds inside the VM. */
/* The engine's network namespace, carried into the VM. See network.h and
 * docs/networking.md. Everything netlink goes through libnl-route-3. */
#include "network-read.h"
#include "cleanup.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/nsfs.h>
#include <linux/pkt_cls.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>

#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/addr.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/route.h>

int network_nl_fail(struct error **err, int nlerr, const char *fmt, ...)
{
	char ctx[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	return error_setx(err, EIO, "%s: %s", ctx, nl_geterror(nlerr));
}

void network_spec_free(Cocoon__NetworkSpec *spec)
{
	if (!spec)
		return;
	for (size_t i = 0; i < spec->n_interfaces; i++) {
		Cocoon__NetInterface *ifc = spec->interfaces[i];
		if (!ifc)
			continue;
		free(ifc->name);
		free(ifc->mac);
		/* Set by network_adopt only; "" (protobuf-c's own) otherwise. */
		if (ifc->device_mac != protobuf_c_empty_string)
			free(ifc->device_mac);
		for (size_t j = 0; j < ifc->n_addresses; j++)
			free(ifc->addresses[j]);
		free(ifc->addresses);
		free(ifc);
	}
	free(spec->interfaces);
	for (size_t i = 0; i < spec->n_routes; i++) {
		free(spec->routes[i]->destination);
		free(spec->routes[i]->gateway);
		free(spec->routes[i]->device);
		free(spec->routes[i]);
	}
	free(spec->routes);
	free(spec);
}

static struct net_iface *iface_by_index(struct network *n, int ifindex)
{
	for (int i = 0; i < n->n_ifs; i++)
		if (n->ifs[i].ifindex == ifindex)
			return &n->ifs[i];
	return NULL;
}

/* "10.88.0.5/16": an nl_addr with its prefix length. */
static char *addr_text(struct nl_addr *a, int family)
{
	char ip[INET6_ADDRSTRLEN] = "";
	char *out = NULL;
	unsigned char zero[16] = {0};
	const void *bin = nl_addr_get_len(a) ? nl_addr_get_binary_addr(a) : zero;
	if (!inet_ntop(family, bin, ip, sizeof(ip)))
		return NULL;
	if (asprintf(&out, "%s/%u", ip, nl_addr_get_prefixlen(a)) < 0)
		return NULL;
	return out;
}

int network_read_links(struct network *n, struct nl_cache *links, const char *ns,
		       struct error **err)
{
	for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
		struct rtnl_link *l = (struct rtnl_link *)o;
		/* The reserved NIC's tap is cocoon's (network_adopt). */
		if ((rtnl_link_get_flags(l) & IFF_LOOPBACK) ||
		    (n->has_reserved && rtnl_link_get_ifindex(l) == n->reserved.tap_ifindex))
			continue;
		const char *name = rtnl_link_get_name(l);
		const char *type = rtnl_link_get_type(l);
		/* A veth is what podman, CNI's bridge and ptp plugins and
		 * ctr --cni put there; a macvlan what CNI's macvlan plugin
		 * does. Both are ordinary Ethernet devices to tc: their
		 * ingress is redirected to the tap and the tap's to their
		 * transmit (Kata's tcfilter carries both). ipvlan is not
		 * carried: its L3 modes route without ARP, which the guest's
		 * NIC would need to be told, and this host's kernel has no
		 * ipvlan to test it on (docs/networking.md). */
		if (!type || (strcmp(type, "veth") != 0 && strcmp(type, "macvlan") != 0))
			return error_setx(
				err, EOPNOTSUPP,
				"network namespace %s: interface %s is of type %s; cocoon carries only veth and macvlan interfaces into the VM",
				ns, name, type ? type : "unknown (no link kind)");
		if (n->n_ifs == NET_MAX_INTERFACES)
			return error_setx(err, E2BIG,
					  "network namespace %s: more than %d interfaces", ns,
					  NET_MAX_INTERFACES);
		struct net_iface *f = &n->ifs[n->n_ifs++];
		struct nl_addr *mac = rtnl_link_get_addr(l);
		const unsigned char *m = mac ? nl_addr_get_binary_addr(mac) : NULL;
		if (!m || nl_addr_get_len(mac) != 6)
			return error_setx(err, EINVAL,
					  "network namespace %s: interface %s has no MAC address",
					  ns, name);
		snprintf(f->name, sizeof(f->name), "%s", name);
		snprintf(f->mac, sizeof(f->mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2],
			 m[3], m[4], m[5]);
		f->ifindex = rtnl_link_get_ifindex(l);
		f->mtu = rtnl_link_get_mtu(l);
		f->tap_fd = -1;
	}
	if (n->n_ifs == 0)
		return error_setx(
			err, ENODEV,
			"network namespace %s has no interface besides lo: nothing to connect the VM to",
			ns);
	return 0;
}

static int add_string(char ***arr, size_t *n, char *s)
{
	if (!s)
		return -ENOMEM;
	char **grown = realloc(*arr, (*n + 1) * sizeof(char *));
	if (!grown) {
		free(s);
		return -ENOMEM;
	}
	*arr = grown;
	(*arr)[(*n)++] = s;
	return 0;
}

static int read_addresses(struct network *n, struct nl_cache *addrs, const char *ns,
			  struct error **err)
{
	Cocoon__NetworkSpec *spec = n->spec;
	for (struct nl_object *o = nl_cache_get_first(addrs); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;
		int family = rtnl_addr_get_family(a);
		struct net_iface *f = iface_by_index(n, rtnl_addr_get_ifindex(a));
		/* Link-local addresses belong to each link: the guest's kernel
		 * makes its own from the same MAC. */
		if (!f || (family != AF_INET && family != AF_INET6) ||
		    rtnl_addr_get_scope(a) == RT_SCOPE_LINK || !rtnl_addr_get_local(a))
			continue;
		Cocoon__NetInterface *ifc = spec->interfaces[f - n->ifs];
		if (ifc->n_addresses == NET_MAX_ADDRESSES)
			return error_setx(err, E2BIG,
					  "network namespace %s: %s has more than %d addresses", ns,
					  f->name, NET_MAX_ADDRESSES);
		if (add_string(&ifc->addresses, &ifc->n_addresses,
			       addr_text(rtnl_addr_get_local(a), family)) < 0)
			return error_set(err, ENOMEM, "network namespace %s", ns);
	}
	return 0;
}

static int read_routes(struct network *n, struct nl_cache *routes, const char *ns,
		       struct error **err)
{
	Cocoon__NetworkSpec *spec = n->spec;
	for (struct nl_object *o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
		struct rtnl_route *r = (struct rtnl_route *)o;
		int family = rtnl_route_get_family(r);
		/* The kernel's own routes (the prefixes of the addresses,
		 * fe80::/64) the guest's kernel makes again. */
		if (rtnl_route_get_table(r) != RT_TABLE_MAIN ||
		    rtnl_route_get_type(r) != RTN_UNICAST ||
		    rtnl_route_get_protocol(r) == RTPROT_KERNEL ||
		    (family != AF_INET && family != AF_INET6))
			continue;
		if (rtnl_route_get_nnexthops(r) != 1)
			return error_setx(
				err, EOPNOTSUPP,
				"network namespace %s: a multipath route is not supported", ns);
		struct rtnl_nexthop *nh = rtnl_route_nexthop_n(r, 0);
		struct net_iface *f = iface_by_index(n, rtnl_route_nh_get_ifindex(nh));
		if (!f)
			continue;
		if (spec->n_routes == NET_MAX_ROUTES)
			return error_setx(err, E2BIG, "network namespace %s: more than %d routes",
					  ns, NET_MAX_ROUTES);
		Cocoon__NetRoute *rt = calloc(1, sizeof(*rt));
		Cocoon__NetRoute **grown =
			rt ? realloc(spec->routes, (spec->n_routes + 1) * sizeof(*grown)) : NULL;
		if (!grown) {
			free(rt);
			return error_set(err, ENOMEM, "network namespace %s", ns);
		}
		spec->routes = grown;
		cocoon__net_route__init(rt);
		spec->routes[spec->n_routes++] = rt;
		struct nl_addr *gw = rtnl_route_nh_get_gateway(nh);
		char ip[INET6_ADDRSTRLEN] = "";
		if (gw &&
		    !inet_ntop(nl_addr_get_family(gw), nl_addr_get_binary_addr(gw), ip, sizeof(ip)))
			ip[0] = 0;
		rt->destination = addr_text(rtnl_route_get_dst(r), family);
		rt->gateway = strdup(ip);
		rt->device = strdup(f->name);
		rt->metric = rtnl_route_get_priority(r);
		if (!rt->destination || !rt->gateway || !rt->device)
			return error_set(err, ENOMEM, "network namespace %s", ns);
	}
	return 0;
}

int network_read_spec(struct network *n, const char *ns, struct error **err)
{
	n->spec = calloc(1, sizeof(*n->spec));
	if (!n->spec)
		return error_set(err, ENOMEM, "network");
	cocoon__network_spec__init(n->spec);
	n->spec->interfaces = calloc((size_t)n->n_ifs, sizeof(*n->spec->interfaces));
	if (!n->spec->interfaces)
		return error_set(err, ENOMEM, "network");
	for (int i = 0; i < n->n_ifs; i++) {
		Cocoon__NetInterface *ifc = calloc(1, sizeof(*ifc));
		if (!ifc)
			return error_set(err, ENOMEM, "network");
		cocoon__net_interface__init(ifc);
		n->spec->interfaces[n->spec->n_interfaces++] = ifc;
		ifc->name = strdup(n->ifs[i].name);
		ifc->mac = strdup(n->ifs[i].mac);
		ifc->mtu = n->ifs[i].mtu;
		if (!ifc->name || !ifc->mac)
			return error_set(err, ENOMEM, "network");
	}
	_cleanup_nl_cache_ struct nl_cache *addrs = NULL, *routes = NULL;
	int r = rtnl_addr_alloc_cache(n->sk, &addrs);
	if (r < 0)
		return network_nl_fail(err, r, "network namespace %s: read addresses", ns);
	if ((r = read_addresses(n, addrs, ns, err)) < 0)
		return r;
	if ((r = rtnl_route_alloc_cache(n->sk, AF_UNSPEC, 0, &routes)) < 0)
		return network_nl_fail(err, r, "network namespace %s: read routes", ns);
	return read_routes(n, routes, ns, err);
}
