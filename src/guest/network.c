/* The container's network in the guest (network.h), through libnl-route-3,
 * linked statically into the agent. */
#include "network.h"
#include "cleanup.h"
#include "error.h"

#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

static void nl_addr_putp(struct nl_addr **a)
{
	if (*a)
		nl_addr_put(*a);
}
#define _cleanup_nl_addr_ _cleanup_(nl_addr_putp)

static void nl_cache_freep(struct nl_cache **c)
{
	if (*c)
		nl_cache_free(*c);
}
#define _cleanup_nl_cache_ _cleanup_(nl_cache_freep)

static void nl_sock_freep(struct nl_sock **s)
{
	if (*s)
		nl_socket_free(*s);
}
#define _cleanup_nl_sock_ _cleanup_(nl_sock_freep)

static bool valid_ifname(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n >= IF_NAMESIZE || strcmp(name, "lo") == 0 || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[i] == '/' || name[i] == ':' || name[i] <= ' ' || name[i] > '~')
			return false;
	return true;
}

static bool valid_mac(const char *mac)
{
	unsigned m[6];
	char extra;
	return mac && sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &m[0], &m[1], &m[2], &m[3], &m[4],
			     &m[5], &extra) == 6;
}

/* Everything the host sent is checked before anything changes. */
static int validate(const Cocoon__NetworkSpec *spec, struct error **err)
{
	if (spec->n_interfaces > NET_MAX_INTERFACES || spec->n_routes > NET_MAX_ROUTES)
		return error_setx(err, E2BIG, "network: at most %d interfaces and %d routes",
				  NET_MAX_INTERFACES, NET_MAX_ROUTES);
	for (size_t i = 0; i < spec->n_interfaces; i++) {
		const Cocoon__NetInterface *f = spec->interfaces[i];
		if (!valid_ifname(f->name))
			return error_setx(err, EINVAL, "network: invalid interface name");
		for (size_t j = 0; j < i; j++)
			if (strcmp(spec->interfaces[j]->name, f->name) == 0)
				return error_setx(err, EINVAL, "network: interface %s named twice",
						  f->name);
		if (!valid_mac(f->mac) ||
		    (f->device_mac && *f->device_mac && !valid_mac(f->device_mac)))
			return error_setx(err, EINVAL, "network: %s: invalid MAC address", f->name);
		if (f->mtu != 0 && (f->mtu < 68 || f->mtu > 65535))
			return error_setx(err, EINVAL, "network: %s: invalid MTU %u", f->name,
					  f->mtu);
		if (f->n_addresses > NET_MAX_ADDRESSES)
			return error_setx(err, E2BIG, "network: %s: at most %d addresses", f->name,
					  NET_MAX_ADDRESSES);
	}
	return 0;
}

/* The engine's MAC on a NIC the VM was booted with before the engine
 * configured its namespace. The device is down; virtio-net tells QEMU
 * (VIRTIO_NET_CTRL_MAC_ADDR_SET), whose receive filter then takes frames
 * for the new address. */
static int set_mac(struct nl_sock *sk, struct rtnl_link *dev, struct nl_addr *mac)
{
	struct rtnl_link *change = rtnl_link_alloc();
	if (!change)
		return -NLE_NOMEM;
	rtnl_link_set_addr(change, mac);
	int r = rtnl_link_change(sk, dev, change, 0);
	rtnl_link_put(change);
	return r;
}

/* The guest names its virtio-net devices eth0, eth1, ... in probe order; the
 * MAC says which is which. Renamed and moved in one step: the kernel applies
 * the name in the target namespace. */
static int move_links(struct nl_sock *sk, const Cocoon__NetworkSpec *spec, int netns_fd,
		      struct error **err)
{
	_cleanup_nl_cache_ struct nl_cache *links = NULL;
	int r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
	if (r < 0)
		return error_setx(err, EIO, "network: list links: %s", nl_geterror(r));
	for (size_t i = 0; i < spec->n_interfaces; i++) {
		const Cocoon__NetInterface *f = spec->interfaces[i];
		/* A NIC reserved at boot has a placeholder MAC until now. */
		bool reserved = f->device_mac && *f->device_mac;
		const char *find = reserved ? f->device_mac : f->mac;
		_cleanup_nl_addr_ struct nl_addr *mac = NULL, *want = NULL;
		if (nl_addr_parse(find, AF_LLC, &mac) < 0 ||
		    (reserved && nl_addr_parse(f->mac, AF_LLC, &want) < 0))
			return error_setx(err, EINVAL, "network: %s: invalid MAC address", f->name);
		struct rtnl_link *found = NULL;
		for (struct nl_object *o = nl_cache_get_first(links); o && !found;
		     o = nl_cache_get_next(o)) {
			struct rtnl_link *l = (struct rtnl_link *)o;
			struct nl_addr *a = rtnl_link_get_addr(l);
			if (a && nl_addr_get_len(a) == 6 &&
			    memcmp(nl_addr_get_binary_addr(a), nl_addr_get_binary_addr(mac), 6) ==
				    0)
				found = l;
		}
		if (!found)
			return error_setx(err, ENODEV,
					  "network: %s: the VM has no network device with MAC %s",
					  f->name, find);
		if (reserved && (r = set_mac(sk, found, want)) < 0)
			return error_setx(err, EIO, "network: %s: MAC %s for the reserved %s: %s",
					  f->name, f->mac, rtnl_link_get_name(found),
					  nl_geterror(r));
		struct rtnl_link *change = rtnl_link_alloc();
		if (!change)
			return error_setx(err, ENOMEM, "network: out of memory");
		rtnl_link_set_name(change, f->name);
		rtnl_link_set_ns_fd(change, netns_fd);
		r = rtnl_link_change(sk, found, change, 0);
		rtnl_link_put(change);
		if (r < 0)
			return error_setx(err, EIO, "network: move %s into the container as %s: %s",
					  rtnl_link_get_name(found), f->name, nl_geterror(r));
	}
	return 0;
}

static int link_up(struct nl_sock *sk, const Cocoon__NetInterface *f, int *ifindex,
		   struct error **err)
{
	struct rtnl_link *l = NULL, *change = rtnl_link_alloc();
	int r = change ? rtnl_link_get_kernel(sk, 0, f->name, &l) : -NLE_NOMEM;
	if (r >= 0) {
		*ifindex = rtnl_link_get_ifindex(l);
		if (f->mtu)
			rtnl_link_set_mtu(change, f->mtu);
		rtnl_link_set_flags(change, IFF_UP);
		r = rtnl_link_change(sk, l, change, 0);
	}
	if (l)
		rtnl_link_put(l);
	if (change)
		rtnl_link_put(change);
	return r < 0 ? error_setx(err, EIO, "network: %s up (MTU %u): %s", f->name, f->mtu,
				  nl_geterror(r))
		     : 0;
}

static int add_address(struct nl_sock *sk, const char *ifname, int ifindex, const char *text,
		       struct error **err)
{
	_cleanup_nl_addr_ struct nl_addr *local = NULL;
	if (!text || (strchr(text, ':') == NULL && strchr(text, '.') == NULL) ||
	    nl_addr_parse(text, AF_UNSPEC, &local) < 0 ||
	    (nl_addr_get_family(local) != AF_INET && nl_addr_get_family(local) != AF_INET6))
		return error_setx(err, EINVAL, "network: %s: invalid address", ifname);
	struct rtnl_addr *a = rtnl_addr_alloc();
	if (!a)
		return error_setx(err, ENOMEM, "network: out of memory");
	rtnl_addr_set_ifindex(a, ifindex);
	int r = rtnl_addr_set_local(a, local);
	/* Usable at once: a restored TCP socket binds to it straight away,
	 * and nobody else on the link has it (the veth never answers). */
	if (nl_addr_get_family(local) == AF_INET6)
		rtnl_addr_set_flags(a, IFA_F_NODAD);
	if (r >= 0)
		r = rtnl_addr_add(sk, a, 0);
	rtnl_addr_put(a);
	if (r < 0 && r != -NLE_EXIST)
		return error_setx(err, EIO, "network: %s: add address %s: %s", ifname, text,
				  nl_geterror(r));
	return 0;
}

static int add_route(struct nl_sock *sk, const Cocoon__NetRoute *rt, int ifindex,
		     struct error **err)
{
	_cleanup_nl_addr_ struct nl_addr *dst = NULL, *gw = NULL;
	const char *d = rt->destination ? rt->destination : "";
	if ((!strchr(d, '.') && !strchr(d, ':')) || nl_addr_parse(d, AF_UNSPEC, &dst) < 0 ||
	    (nl_addr_get_family(dst) != AF_INET && nl_addr_get_family(dst) != AF_INET6))
		return error_setx(err, EINVAL, "network: invalid route destination");
	int family = nl_addr_get_family(dst);
	if (rt->gateway && *rt->gateway &&
	    (nl_addr_parse(rt->gateway, family, &gw) < 0 || nl_addr_get_family(gw) != family))
		return error_setx(err, EINVAL, "network: route to %s: invalid gateway", d);
	struct rtnl_route *route = rtnl_route_alloc();
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	if (!route || !nh) {
		if (route)
			rtnl_route_put(route);
		if (nh)
			rtnl_route_nh_free(nh);
		return error_setx(err, ENOMEM, "network: out of memory");
	}
	rtnl_route_set_family(route, (uint8_t)family);
	rtnl_route_set_dst(route, dst);
	rtnl_route_set_table(route, RT_TABLE_MAIN);
	rtnl_route_set_protocol(route, RTPROT_STATIC);
	rtnl_route_set_scope(route, gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
	rtnl_route_set_priority(route, rt->metric);
	rtnl_route_nh_set_ifindex(nh, ifindex);
	if (gw)
		rtnl_route_nh_set_gateway(nh, gw);
	rtnl_route_add_nexthop(route, nh);
	int r = rtnl_route_add(sk, route, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_route_put(route);
	if (r < 0 && r != -NLE_EXIST)
		return error_setx(err, EIO, "network: route to %s%s%s: %s", d, gw ? " via " : "",
				  gw ? rt->gateway : "", nl_geterror(r));
	return 0;
}

/* Inside the container's namespace: links up, addresses, then routes, the
 * on-link ones before those whose gateway they make reachable. */
static int configure_inside(const Cocoon__NetworkSpec *spec, struct error **err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = nl_socket_alloc();
	int ifindex[NET_MAX_INTERFACES] = {0};
	int r = sk ? nl_connect(sk, NETLINK_ROUTE) : -NLE_NOMEM;
	if (r < 0)
		return error_setx(err, EIO, "network: netlink: %s", nl_geterror(r));
	for (size_t i = 0; i < spec->n_interfaces; i++) {
		const Cocoon__NetInterface *f = spec->interfaces[i];
		if ((r = link_up(sk, f, &ifindex[i], err)) < 0)
			return r;
		for (size_t j = 0; j < f->n_addresses; j++)
			if ((r = add_address(sk, f->name, ifindex[i], f->addresses[j], err)) < 0)
				return r;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < spec->n_routes; i++) {
			const Cocoon__NetRoute *rt = spec->routes[i];
			bool via = rt->gateway && *rt->gateway;
			if (via != (pass == 1))
				continue;
			int idx = -1;
			for (size_t j = 0; j < spec->n_interfaces; j++)
				if (rt->device &&
				    strcmp(rt->device, spec->interfaces[j]->name) == 0)
					idx = ifindex[j];
			if (idx < 0)
				return error_setx(err, EINVAL,
						  "network: a route names an unknown interface");
			if ((r = add_route(sk, rt, idx, err)) < 0)
				return r;
		}
	}
	return 0;
}

int net_configure(const Cocoon__NetworkSpec *spec, int netns_fd, struct error **err)
{
	if (!spec || spec->n_interfaces == 0)
		return 0;
	int r = validate(spec, err);
	if (r < 0)
		return r;
	_cleanup_nl_sock_ struct nl_sock *sk = nl_socket_alloc();
	r = sk ? nl_connect(sk, NETLINK_ROUTE) : -NLE_NOMEM;
	if (r < 0)
		return error_setx(err, EIO, "network: netlink: %s", nl_geterror(r));
	if ((r = move_links(sk, spec, netns_fd, err)) < 0)
		return r;
	_cleanup_close_ int mine = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (mine < 0 || setns(netns_fd, CLONE_NEWNET) < 0)
		return error_setx(err, errno, "network: enter the container's namespace: %s",
				  strerror(errno));
	r = configure_inside(spec, err);
	if (setns(mine, CLONE_NEWNET) < 0 && r == 0)
		r = error_setx(err, errno, "network: return to the agent's namespace: %s",
			       strerror(errno));
	return r;
}
