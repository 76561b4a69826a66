/* The engine's network, carried into the VM (Kata's "tcfilter" model).
 *
 * The engine (podman, CNI, ctr --cni) made a network namespace and put a veth
 * with the container's address in it. The shim works inside that namespace:
 * for each interface it makes a tap for QEMU and joins the two with tc, an
 * ingress qdisc on each side and a u32 match-all filter whose action is
 * "mirred egress redirect" to the other side. The veth keeps its address, so
 * the engine's view (inspect, port publishing) is unchanged. The addresses,
 * routes and MTU are read here and sent to the agent, which gives the
 * container's network namespace in the guest the same ones.
 *
 * Between a checkpoint with --tcp-established and the restore, a "hold"
 * drops what arrives for the container's addresses on the veth, so that no
 * kernel answers the peers of its connections with a reset while the
 * container is in no VM (docs/networking.md). */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "proto.h"

struct nl_sock;

struct net_iface {
	char name[IF_NAMESIZE]; /* the engine's interface (a veth or macvlan) */
	int ifindex;
	char tap_name[IF_NAMESIZE];
	int tap_ifindex;
	int tap_fd;   /* for QEMU; -1 once handed over */
	char mac[18]; /* the veth's, given to the guest's device */
	unsigned mtu;
};

/* The placeholder MAC of a NIC the VM is booted with before the engine has
 * configured the namespace (network_reserve): locally administered,
 * unicast. The agent gives the device the engine's MAC at start. It is
 * network_placeholder_mac(0) too. */
#define NET_RESERVED_MAC "02:63:63:00:00:01"

/* The MAC the VM's NIC i (0 <= i < NET_MAX_INTERFACES, else NULL) has until
 * the agent gives it the engine's: 02:63:63:00:00:0<i+1>, locally
 * administered and unicast. A reserved NIC has the first (NET_RESERVED_MAC);
 * every NIC of a VM template has its own (template.c): virtio-net carries
 * its MAC in the migrated device state, so a VM started from the template
 * comes up with these whatever its command line says, and the agent sets
 * the engine's MAC on each (NetInterface.device_mac, network_placeholders)
 * before it configures the network (docs/performance.md, "VM templates"). */
const char *network_placeholder_mac(int i);

struct network {
	struct nl_sock *sk; /* a netlink socket opened inside the namespace */
	struct net_iface ifs[NET_MAX_INTERFACES];
	int n_ifs;
	Cocoon__NetworkSpec *spec; /* what the agent gets; owned here */
	/* network_reserve's tap (tap_* only; tap_fd goes to QEMU), taken by
	 * ifs[0] once network_adopt has connected it. */
	struct net_iface reserved;
	bool has_reserved;
};

/* Enters the network namespace at netns_path, reads its interfaces,
 * addresses and routes, and makes and connects a tap for each interface.
 * With hold (a restore that carries established TCP connections), the
 * container's addresses are held before anything is connected, until
 * network_release: the engine may have made the namespace anew (podman
 * does), and neither its stack nor the new guest may answer the
 * connections' peers with a reset before CRIU has restored the sockets.
 * The caller stays in its own namespace. On failure nothing is left behind
 * but such a hold, as after a checkpoint. */
int network_open(struct network *n, const char *netns_path, bool hold, struct error **err);

/* Removes the taps' redirects from the engine's interfaces and closes what
 * is left. A hold stays in place for the restore to take over. */
void network_close(struct network *n);

/* Drops what arrives for the container's addresses on the engine's side
 * (and, with guest_side, whatever the guest sends), until network_release. */
int network_hold(struct network *n, bool guest_side, struct error **err);
int network_release(struct network *n, struct error **err);

/* For a spec that asks for a new network namespace without a path
 * (spec_wants_new_netns): moves the calling process, the shim, into a new,
 * empty network namespace of its own, before it forks the keeper, QEMU and
 * virtiofsd, which inherit it. The engine gets the shim's pid (--pid-file)
 * where runc reports the container's init, and may configure the namespace
 * it asked the runtime for through /proc/<pid>/ns/net (podman 4.3 with
 * --uidmap or --userns=auto runs netavark on it): that must be this
 * namespace, never the host's. Kata does the same: with no path its runtime
 * makes a namespace and runs its shim and hypervisor in it
 * (katautils/network.go SetupNetworkNamespace). Nothing here needs the
 * host's network: QEMU's tap fds are made in the engine's namespace, and the
 * agent channel, QMP and virtiofsd sockets are Unix sockets bound by path.
 * id names the container in the error (EPERM without CAP_SYS_ADMIN); the
 * caller refuses the container then rather than leave the pid it reports in
 * the host's namespace. */
int network_unshare(const char *id, struct error **err);

/* What the engine configures in that namespace after `create` (podman 4.3
 * with --uidmap: netavark's veth, address and routes; spec_wants_late_network)
 * reaches the container at `start`. microvm's virtio-mmio has no hotplug, so
 * the VM must have the NIC from boot: network_reserve makes a tap, down,
 * in the calling process's namespace (the shim's own) for QEMU, whose
 * virtio-net device gets NET_RESERVED_MAC (n->reserved.tap_fd; the caller
 * closes it once QEMU has it). Kata hot-plugs a late interface instead
 * (its AddInterface), which needs PCI. 0 or a negative errno with *err set
 * naming container id; on failure nothing is left behind. */
int network_reserve(struct network *n, const char *id, struct error **err);

/* At `start`: reads the calling process's namespace (the shim's own) as
 * network_open reads the engine's, leaving out the reserved tap. With no
 * interface besides lo, nothing changes: *spec is NULL and the reserved NIC
 * stays down. Otherwise the reserved tap takes the veth's MTU, comes up
 * and is joined to it with the same tc redirects, and *spec (owned by n)
 * is what the agent configures before the container's process runs, its
 * interface's device_mac NET_RESERVED_MAC. One interface at most: the VM
 * has one reserved NIC; more are refused naming their count and container
 * id. On failure the redirects are removed again. 0 or a negative errno. */
int network_adopt(struct network *n, const char *id, Cocoon__NetworkSpec **spec,
		  struct error **err);

/* For a VM template's build (template.c): count taps (at most
 * NET_MAX_INTERFACES) for the template VM's NICs, made as every VM's are
 * (make_tap: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR; QEMU refuses to load a
 * virtio-net state saved with a vnet header over a tap without one), down,
 * in a new, empty network namespace that only they hold: nothing the
 * template VM could send reaches any network, and nothing is named on the
 * host. The caller stays in its own namespace. fds[0..count) are the
 * caller's to close (O_CLOEXEC); the namespace goes with the last one. 0, or
 * a negative errno with *err set (EPERM without CAP_SYS_ADMIN) and nothing
 * left open. count 0 makes no namespace (no CAP_SYS_ADMIN needed).
 * Only the calling thread changes namespace, and it always returns to the
 * one it was in (/proc/thread-self/ns/net): if that setns fails the
 * process logs it (log_errorf) and _exits with NETWORK_SCRATCH_STUCK_EXIT
 * rather than go on in an empty network (a cold boot after the template
 * failed, a late network's reserved tap made there) with no error. */
#define NETWORK_SCRATCH_STUCK_EXIT 1
int network_scratch_taps(int count, int *fds, struct error **err);

/* The VM of n started from a VM template (sandbox.from_template): its NIC i
 * has network_placeholder_mac(i), so each interface of n->spec gets that as
 * its device_mac, by which the agent finds the device and gives it the
 * engine's MAC. 0, or -ENOMEM with *err set. */
int network_placeholders(struct network *n, struct error **err);
