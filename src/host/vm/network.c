/* The engine's network namespace, carried into the VM. See network.h and
 * docs/networking.md. Everything netlink goes through libnl-route-3. */
#include "network.h"
#include "network-read.h"
#include "cleanup.h"
#include "log.h"

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
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/addr.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/route.h>

/* tc priorities on the ingress qdiscs. The hold comes first: it drops what
 * the redirect would otherwise carry. A u32 filter chain is per priority and
 * protocol, so IPv4 and IPv6 holds need a priority each. */
#define PRIO_HOLD_V4 1
#define PRIO_HOLD_V6 2
#define PRIO_HOLD_ALL 3
#define PRIO_REDIRECT 10
#define TAP_PREFIX "cctap"
#define INGRESS_HANDLE TC_HANDLE(0xffff, 0)

/* The tap's ifindex; with up, the veth's MTU and up. */
static int tap_setup(struct network *n, struct net_iface *f, bool up, struct error **err)
{
	struct rtnl_link *tap = NULL, *change = rtnl_link_alloc();
	int r = change ? rtnl_link_get_kernel(n->sk, 0, f->tap_name, &tap) : -NLE_NOMEM;
	if (r >= 0) {
		f->tap_ifindex = rtnl_link_get_ifindex(tap);
		if (up) {
			rtnl_link_set_mtu(change, f->mtu);
			rtnl_link_set_flags(change, IFF_UP);
			r = rtnl_link_change(n->sk, tap, change, 0);
		}
	}
	if (tap)
		rtnl_link_put(tap);
	if (change)
		rtnl_link_put(change);
	return r < 0 ? network_nl_fail(err, r, "tap %s", f->tap_name) : 0;
}

/* A tap for QEMU, with the veth's MTU, up unless reserved (its veth comes
 * later, network_adopt). IFF_VNET_HDR lets QEMU pass checksum and
 * segmentation offloads through instead of doing them here. */
static int make_tap(struct network *n, struct net_iface *f, unsigned char index, bool up,
		    struct error **err)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), TAP_PREFIX "%u", index);
	f->tap_fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (f->tap_fd < 0)
		return error_set(err, errno, "open /dev/net/tun");
	if (ioctl(f->tap_fd, TUNSETIFF, &ifr) < 0)
		return error_set(err, errno, "tap %s for %s", ifr.ifr_name,
				 *f->name ? f->name : "the reserved NIC");
	snprintf(f->tap_name, sizeof(f->tap_name), "%s", ifr.ifr_name);
	return tap_setup(n, f, up, err);
}

static int add_ingress(struct network *n, int ifindex, const char *name, struct error **err)
{
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	if (!q)
		return error_set(err, ENOMEM, "qdisc");
	rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
	rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
	rtnl_tc_set_handle(TC_CAST(q), INGRESS_HANDLE);
	rtnl_tc_set_kind(TC_CAST(q), "ingress");
	/* It may be there already: a hold kept across a checkpoint lives on
	 * the veth's ingress qdisc. */
	int r = rtnl_qdisc_add(n->sk, q, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_qdisc_put(q);
	if (r < 0 && r != -NLE_EXIST)
		return network_nl_fail(err, r, "ingress qdisc on %s", name);
	return 0;
}

/* A u32 filter on ifindex's ingress at prio for protocol; with a key (value
 * at off under mask) or matching everything (mask 0); the action redirects
 * to redirect_to, or drops when that is 0. */
static struct rtnl_cls *new_filter(int ifindex, int prio, int protocol)
{
	struct rtnl_cls *cls = rtnl_cls_alloc();
	if (!cls)
		return NULL;
	rtnl_tc_set_ifindex(TC_CAST(cls), ifindex);
	rtnl_tc_set_parent(TC_CAST(cls), INGRESS_HANDLE);
	rtnl_tc_set_kind(TC_CAST(cls), "u32");
	rtnl_cls_set_prio(cls, (uint16_t)prio);
	rtnl_cls_set_protocol(cls, (uint16_t)protocol);
	return cls;
}

/* The action of every filter here is mirred, the one tc action this host's
 * kernel has (no gact, so no plain "drop"): a redirect to the other side,
 * or for a hold a mirror whose verdict is "drop". A mirror to a device that
 * is down, or gone, sends nothing; the packet is dropped either way. */
static int add_filter(struct network *n, struct rtnl_cls *cls, int target, bool hold,
		      const char *what, struct error **err)
{
	struct rtnl_act *act = rtnl_act_alloc();
	int r = act ? 0 : -NLE_NOMEM;
	if (r == 0) {
		rtnl_tc_set_kind(TC_CAST(act), "mirred");
		rtnl_mirred_set_action(act, hold ? TCA_EGRESS_MIRROR : TCA_EGRESS_REDIR);
		rtnl_mirred_set_policy(act, hold ? TC_ACT_SHOT : TC_ACT_STOLEN);
		rtnl_mirred_set_ifindex(act, (uint32_t)target);
	}
	/* Without the terminal flag u32 matches but runs no action. */
	if (r == 0 && (r = rtnl_u32_add_action(cls, act)) == 0 &&
	    (r = rtnl_u32_set_cls_terminal(cls)) == 0)
		r = rtnl_cls_add(n->sk, cls, NLM_F_CREATE);
	if (act)
		rtnl_act_put(act);
	rtnl_cls_put(cls);
	return r < 0 ? network_nl_fail(err, r, "tc filter (%s)", what) : 0;
}

static int add_redirect(struct network *n, int from, int to, const char *what, struct error **err)
{
	struct rtnl_cls *cls = new_filter(from, PRIO_REDIRECT, ETH_P_ALL);
	if (!cls || rtnl_u32_add_key_uint32(cls, 0, 0, 0, 0) < 0) {
		if (cls)
			rtnl_cls_put(cls);
		return error_set(err, ENOMEM, "tc filter");
	}
	return add_filter(n, cls, to, false, what, err);
}

static void del_filters(struct network *n, int ifindex, int prio, int protocol)
{
	struct rtnl_cls *cls = new_filter(ifindex, prio, protocol);
	if (cls) {
		rtnl_cls_delete(n->sk, cls, 0);
		rtnl_cls_put(cls);
	}
}

static int hold_one(struct network *n, struct net_iface *f, const Cocoon__NetInterface *ifc,
		    bool guest_side, struct error **err);

/* Each side's ingress redirects to the other's egress: frames pass
 * untouched both ways. With hold, the container's addresses are held first
 * (network_open). */
static int connect_one(struct network *n, int i, bool hold, struct error **err)
{
	struct net_iface *f = &n->ifs[i];
	char what[64];
	int r;
	if ((r = add_ingress(n, f->ifindex, f->name, err)) < 0 ||
	    (r = add_ingress(n, f->tap_ifindex, f->tap_name, err)) < 0)
		return r;
	if (hold && (r = hold_one(n, f, n->spec->interfaces[i], true, err)) < 0)
		return r;
	/* A redirect left by an earlier shim (one killed outright) points at
	 * a tap that is gone; this one replaces it. */
	del_filters(n, f->ifindex, PRIO_REDIRECT, ETH_P_ALL);
	snprintf(what, sizeof(what), "%s to %s", f->name, f->tap_name);
	if ((r = add_redirect(n, f->ifindex, f->tap_ifindex, what, err)) < 0)
		return r;
	snprintf(what, sizeof(what), "%s to %s", f->tap_name, f->name);
	return add_redirect(n, f->tap_ifindex, f->ifindex, what, err);
}

/* Each interface gets a tap, connected (connect_one). */
static int connect_taps(struct network *n, bool hold, struct error **err)
{
	for (int i = 0; i < n->n_ifs; i++) {
		int r = make_tap(n, &n->ifs[i], (unsigned char)i, true, err);
		if (r < 0 || (r = connect_one(n, i, hold, err)) < 0)
			return r;
	}
	return 0;
}

static int enter_netns(const char *path, int *back, struct error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set(err, errno, "network namespace %s", path);
	int type = ioctl(fd, NS_GET_NSTYPE);
	if (type != CLONE_NEWNET)
		return error_setx(err, EINVAL, "%s is not a network namespace", path);
	*back = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*back < 0)
		return error_set(err, errno, "/proc/self/ns/net");
	if (setns(fd, CLONE_NEWNET) < 0) {
		int e = errno;
		close(*back);
		*back = -1;
		return error_set(err, e, "enter network namespace %s", path);
	}
	return 0;
}

static int open_inside(struct network *n, const char *path, bool hold, struct error **err)
{
	_cleanup_nl_cache_ struct nl_cache *links = NULL;
	n->sk = nl_socket_alloc();
	if (!n->sk)
		return error_set(err, ENOMEM, "netlink socket");
	int r = nl_connect(n->sk, NETLINK_ROUTE);
	if (r < 0)
		return network_nl_fail(err, r, "netlink socket in %s", path);
	if ((r = rtnl_link_alloc_cache(n->sk, AF_UNSPEC, &links)) < 0)
		return network_nl_fail(err, r, "network namespace %s: read links", path);
	if ((r = network_read_links(n, links, path, err)) < 0 ||
	    (r = network_read_spec(n, path, err)) < 0)
		return r;
	return connect_taps(n, hold, err);
}

int network_open(struct network *n, const char *netns_path, bool hold, struct error **err)
{
	int back = -1;
	memset(n, 0, sizeof(*n));
	int r = enter_netns(netns_path, &back, err);
	if (r < 0)
		return r;
	/* The netlink socket and the taps belong to the namespace they were
	 * made in; the shim itself goes back to its own. */
	r = open_inside(n, netns_path, hold, err);
	if (setns(back, CLONE_NEWNET) < 0 && r >= 0)
		r = error_set(err, errno, "return to the shim's network namespace");
	close(back);
	if (r < 0) {
		network_close(n);
		return r;
	}
	return 0;
}

int network_unshare(const char *id, struct error **err)
{
	if (unshare(CLONE_NEWNET) < 0)
		return error_set(
			err, errno,
			"container %s: a network namespace of its own for the shim, whose pid the engine gets (the spec asks for a new one without a path)",
			id);
	return 0;
}

/* The engine's interface as it was: no ingress qdisc, unless a hold is
 * still on it. */
static void clean_ingress(struct network *n, struct net_iface *f)
{
	_cleanup_nl_cache_ struct nl_cache *filters = NULL;
	del_filters(n, f->ifindex, PRIO_REDIRECT, ETH_P_ALL);
	if (rtnl_cls_alloc_cache(n->sk, f->ifindex, INGRESS_HANDLE, &filters) < 0 ||
	    nl_cache_nitems(filters) > 0)
		return;
	struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	if (!q)
		return;
	rtnl_tc_set_ifindex(TC_CAST(q), f->ifindex);
	rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
	rtnl_tc_set_handle(TC_CAST(q), INGRESS_HANDLE);
	rtnl_tc_set_kind(TC_CAST(q), "ingress");
	rtnl_qdisc_delete(n->sk, q);
	rtnl_qdisc_put(q);
}

static void network_close_ifs(struct network *n)
{
	for (int i = 0; i < n->n_ifs; i++) {
		struct net_iface *f = &n->ifs[i];
		if (n->sk && f->tap_ifindex)
			clean_ingress(n, f);
		/* The tap goes with its last fd, QEMU's or this one. */
		if (f->tap_fd >= 0)
			close(f->tap_fd);
		f->tap_fd = -1;
	}
}

void network_close(struct network *n)
{
	network_close_ifs(n);
	if (n->has_reserved && n->reserved.tap_fd >= 0)
		close(n->reserved.tap_fd);
	if (n->sk)
		nl_socket_free(n->sk);
	network_spec_free(n->spec);
	memset(n, 0, sizeof(*n));
}

static int set_tap_up(struct network *n, struct net_iface *f, bool up)
{
	struct rtnl_link *tap = NULL, *change = rtnl_link_alloc();
	int r = change ? rtnl_link_get_kernel(n->sk, f->tap_ifindex, NULL, &tap) : -NLE_NOMEM;
	if (r >= 0) {
		if (up)
			rtnl_link_set_flags(change, IFF_UP);
		else
			rtnl_link_unset_flags(change, IFF_UP);
		r = rtnl_link_change(n->sk, tap, change, 0);
	}
	if (tap)
		rtnl_link_put(tap);
	if (change)
		rtnl_link_put(change);
	return r;
}

/* What arrives on the engine's interface for one of the container's
 * addresses is dropped by a mirror to the tap (down now, gone once the VM
 * is): that outlives the shim and the tap, until a restore releases it. */
static int add_hold(struct network *n, struct net_iface *f, const char *addr, struct error **err)
{
	char ip[INET6_ADDRSTRLEN + 4];
	snprintf(ip, sizeof(ip), "%s", addr);
	ip[strcspn(ip, "/")] = 0;
	struct in_addr a4;
	struct in6_addr a6;
	struct rtnl_cls *cls = NULL;
	int r = -1;
	/* u32 offsets count from the network header: the IPv4 destination is
	 * at 16, the IPv6 one at 24. */
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		cls = new_filter(f->ifindex, PRIO_HOLD_V4, ETH_P_IP);
		r = cls ? rtnl_u32_add_key_in_addr(cls, &a4, 32, 16, 0) : -1;
	} else if (inet_pton(AF_INET6, ip, &a6) == 1) {
		cls = new_filter(f->ifindex, PRIO_HOLD_V6, ETH_P_IPV6);
		r = cls ? rtnl_u32_add_key_in6_addr(cls, &a6, 128, 24, 0) : -1;
	}
	if (r < 0) {
		if (cls)
			rtnl_cls_put(cls);
		return error_setx(err, EINVAL, "hold: cannot match address %s", addr);
	}
	char what[96];
	snprintf(what, sizeof(what), "hold for %s", ip);
	return add_filter(n, cls, f->tap_ifindex, true, what, err);
}

static int hold_one(struct network *n, struct net_iface *f, const Cocoon__NetInterface *ifc,
		    bool guest_side, struct error **err)
{
	for (size_t j = 0; j < ifc->n_addresses; j++) {
		int r = add_hold(n, f, ifc->addresses[j], err);
		if (r < 0)
			return r;
	}
	if (guest_side) {
		/* What the frozen guest would answer, and the reset when its
		 * tasks are killed after the dump, never leaves the tap. */
		struct rtnl_cls *cls = new_filter(f->tap_ifindex, PRIO_HOLD_ALL, ETH_P_ALL);
		if (!cls || rtnl_u32_add_key_uint32(cls, 0, 0, 0, 0) < 0) {
			if (cls)
				rtnl_cls_put(cls);
			return error_set(err, ENOMEM, "tc filter");
		}
		int r = add_filter(n, cls, f->tap_ifindex, true, "hold from the guest", err);
		if (r < 0)
			return r;
	}
	int r = set_tap_up(n, f, false);
	return r < 0 ? network_nl_fail(err, r, "hold: %s down", f->tap_name) : 0;
}

int network_hold(struct network *n, bool guest_side, struct error **err)
{
	for (int i = 0; i < n->n_ifs; i++) {
		int r = hold_one(n, &n->ifs[i], n->spec->interfaces[i], guest_side, err);
		if (r < 0) {
			(void)network_release(n, NULL); /* the error is hold_one's */
			return r;
		}
	}
	return 0;
}

int network_release(struct network *n, struct error **err)
{
	int r = 0;
	for (int i = 0; i < n->n_ifs; i++) {
		struct net_iface *f = &n->ifs[i];
		del_filters(n, f->ifindex, PRIO_HOLD_V4, ETH_P_IP);
		del_filters(n, f->ifindex, PRIO_HOLD_V6, ETH_P_IPV6);
		if (!f->tap_ifindex)
			continue;
		del_filters(n, f->tap_ifindex, PRIO_HOLD_ALL, ETH_P_ALL);
		int e = set_tap_up(n, f, true);
		if (e < 0 && r == 0)
			r = network_nl_fail(err, e, "release: %s up", f->tap_name);
	}
	return r;
}

int network_reserve(struct network *n, const char *id, struct error **err)
{
	memset(n, 0, sizeof(*n));
	n->reserved.tap_fd = -1;
	n->has_reserved = true;
	n->sk = nl_socket_alloc();
	int r = n->sk ? nl_connect(n->sk, NETLINK_ROUTE) : -NLE_NOMEM;
	if (r < 0)
		r = network_nl_fail(err, r, "netlink socket");
	else
		r = make_tap(n, &n->reserved, 0, false, err);
	if (r < 0) {
		error_wrap(err,
			   "container %s: a NIC for the network the engine configures after create",
			   id);
		network_close(n);
	}
	return r;
}

/* Back to the reserved NIC alone: a failed adopt leaves nothing behind. */
static void forget_adopted(struct network *n)
{
	network_close_ifs(n);
	network_spec_free(n->spec);
	n->spec = NULL;
	memset(n->ifs, 0, sizeof(n->ifs));
	n->n_ifs = 0;
}

int network_adopt(struct network *n, const char *id, Cocoon__NetworkSpec **spec, struct error **err)
{
	*spec = NULL;
	/* Once per container: start comes once. */
	if (!n->has_reserved || !n->sk || n->n_ifs > 0)
		return 0;
	char ns[64];
	snprintf(ns, sizeof(ns), "/proc/%d/ns/net", (int)getpid());
	_cleanup_nl_cache_ struct nl_cache *links = NULL;
	int r = rtnl_link_alloc_cache(n->sk, AF_UNSPEC, &links);
	if (r < 0)
		return network_nl_fail(err, r, "container %s: network namespace %s: read links", id,
				       ns);
	int others = 0;
	for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
		struct rtnl_link *l = (struct rtnl_link *)o;
		others += !(rtnl_link_get_flags(l) & IFF_LOOPBACK) &&
			  rtnl_link_get_ifindex(l) != n->reserved.tap_ifindex;
	}
	if (others == 0)
		return 0; /* nothing configured: the reserved NIC stays down */
	if (others > 1)
		return error_setx(
			err, EOPNOTSUPP,
			"container %s: the engine configured %d interfaces in its network namespace %s after create; the VM has one NIC for that (docs/networking.md)",
			id, others, ns);
	if ((r = network_read_links(n, links, ns, err)) < 0 ||
	    (r = network_read_spec(n, ns, err)) < 0)
		goto fail;
	struct net_iface *f = &n->ifs[0];
	snprintf(f->tap_name, sizeof(f->tap_name), "%s", n->reserved.tap_name);
	f->tap_fd = -1;
	Cocoon__NetInterface *ifc = n->spec->interfaces[0];
	if (!(ifc->device_mac = strdup(NET_RESERVED_MAC))) {
		r = error_set(err, ENOMEM, "network");
		goto fail;
	}
	if ((r = tap_setup(n, f, true, err)) < 0 || (r = connect_one(n, 0, false, err)) < 0)
		goto fail;
	*spec = n->spec;
	return 0;
fail:
	error_wrap(err, "container %s: the network its engine configured after create", id);
	forget_adopted(n);
	/* The reserved tap down again, as it was. */
	(void)set_tap_up(n, &n->reserved, false);
	return r;
}

const char *network_placeholder_mac(int i)
{
	static const char *const macs[] = {NET_RESERVED_MAC, "02:63:63:00:00:02",
					   "02:63:63:00:00:03", "02:63:63:00:00:04"};
	_Static_assert(sizeof(macs) / sizeof(macs[0]) == NET_MAX_INTERFACES,
		       "a placeholder MAC per interface");
	return i >= 0 && i < NET_MAX_INTERFACES ? macs[i] : NULL;
}

/* network_scratch_taps' taps, made in the namespace the caller is in now. */
static int scratch_taps_inside(int count, int *fds, struct error **err)
{
	struct network n = {0};
	n.sk = nl_socket_alloc();
	int r = n.sk ? nl_connect(n.sk, NETLINK_ROUTE) : -NLE_NOMEM;
	if (r < 0)
		r = network_nl_fail(err, r, "netlink socket");
	for (int i = 0; r == 0 && i < count; i++) {
		struct net_iface f = {.name = "a template NIC", .tap_fd = -1};
		r = make_tap(&n, &f, (unsigned char)i, false, err);
		fds[i] = f.tap_fd; /* open even when the tap failed: closed below */
	}
	if (n.sk)
		nl_socket_free(n.sk);
	return r;
}

int network_scratch_taps(int count, int *fds, struct error **err)
{
	if (count < 0 || count > NET_MAX_INTERFACES)
		return error_setx(err, E2BIG, "%d network devices (at most %d)", count,
				  NET_MAX_INTERFACES);
	for (int i = 0; i < count; i++)
		fds[i] = -1;
	/* No NIC, no namespace: a template without one (the common case)
	 * needs no CAP_SYS_ADMIN and is not refused where unshare is. */
	if (count == 0)
		return 0;
	/* The calling thread's namespace, which unshare and setns change;
	 * /proc/self is the thread-group leader's. */
	_cleanup_close_ int back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (back < 0)
		return error_set(err, errno, "/proc/thread-self/ns/net");
	/* The taps keep the namespace they were made in: the tun device's
	 * socket holds a reference to it. */
	if (unshare(CLONE_NEWNET) < 0)
		return error_set(err, errno, "a network namespace for the template's taps");
	int r = scratch_taps_inside(count, fds, err);
	/* Stuck in the scratch namespace, this process would go on (a cold
	 * boot, a late network's reserved tap) in an empty network instead of
	 * the engine's, with no error: it cannot be allowed to go on at all. */
	if (setns(back, CLONE_NEWNET) < 0) {
		log_errorf("a VM template's taps: cannot return to the caller's network "
			   "namespace: %s",
			   strerror(errno));
		_exit(NETWORK_SCRATCH_STUCK_EXIT);
	}
	if (r < 0)
		for (int i = 0; i < count; i++) {
			if (fds[i] >= 0)
				close(fds[i]);
			fds[i] = -1;
		}
	return r;
}

int network_placeholders(struct network *n, struct error **err)
{
	for (size_t i = 0; n->spec && i < n->spec->n_interfaces; i++) {
		Cocoon__NetInterface *ifc = n->spec->interfaces[i];
		const char *placeholder = network_placeholder_mac((int)i);
		char *mac = placeholder ? strdup(placeholder) : NULL;
		if (!mac)
			return error_set(err, placeholder ? ENOMEM : E2BIG,
					 "network: interface %zu", i);
		/* "" is protobuf-c's own (network_spec_free). */
		if (ifc->device_mac != protobuf_c_empty_string)
			free(ifc->device_mac);
		ifc->device_mac = mac;
	}
	return 0;
}
