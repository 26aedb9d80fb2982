/* modvm SDK: network backends (descriptor kind MODVM_KIND_NET), the other
 * end of a network adapter's cable: user-mode networking, a socket to
 * another VM, a tap, a null sink.
 *
 * A front end (a NIC such as virtio-net) names its backend with a
 * MODVM_PROP_BACKEND property of kind MODVM_KIND_NET and opens it with
 * host->net_open(); the core creates the backend from the same config
 * group, so its properties sit beside the NIC's (backend = "user";
 * hostfwd = "tcp:127.0.0.1:8080-:80";). Frames are whole Ethernet frames
 * without the FCS, each with a struct modvm_net_hdr that says which
 * offloads it carries. Everything is per queue pair so that a multiqueue
 * NIC needs no new ABI: queue pair 0 is the only one until a backend says
 * it has more (queue_pairs). See docs/devices/virtio-net.md.
 *
 * Flow control, both ways:
 *  - NIC to backend: host->net_send() returns MODVM_NET_BUSY when the
 *    backend cannot take the frame now (a full socket); the NIC keeps it
 *    and waits for its frontend->tx_ready callback.
 *  - backend to NIC: before delivering, the backend asks
 *    host->net_can_receive(); when it says no, the backend holds (or
 *    drops) its input and waits for its ops->rx_ready, which the NIC
 *    triggers with host->net_rx_ready() once the guest gave it buffers.
 */
#ifndef MODVM_NET_H
#define MODVM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <modvm/host.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct modvm_net modvm_net;

/* Largest frame a backend must accept or may deliver: a 64 KiB GSO
 * packet plus its Ethernet and VLAN headers. Without offloads frames are
 * at most 1514 bytes (1518 with a VLAN tag). */
#define MODVM_NET_FRAME_MAX (65536 + 14 + 4)

/* The offload description carried with each frame: the fields of the
 * virtio-net header (Virtual I/O Device (VIRTIO) Version 1.1, 5.1.6) in
 * host byte order. A frame with flags = 0 and gso_type = NONE is a plain,
 * fully checksummed frame; a backend that announced no offload only ever
 * gets those, and delivers only those. */
struct modvm_net_hdr {
	uint8_t flags;        /* MODVM_NET_HDR_F_* */
	uint8_t gso_type;     /* MODVM_NET_GSO_* */
	uint16_t hdr_len;     /* GSO: length of the headers to repeat */
	uint16_t gso_size;    /* GSO: payload bytes per segment */
	uint16_t csum_start;  /* NEEDS_CSUM: where checksumming starts */
	uint16_t csum_offset; /* NEEDS_CSUM: where the sum goes, from start */
	uint16_t reserved;    /* 0 */
};

#define MODVM_NET_HDR_F_NEEDS_CSUM 1 /* checksum [csum_start, end) not done */
#define MODVM_NET_HDR_F_DATA_VALID 2 /* rx: the checksum was checked */

#define MODVM_NET_GSO_NONE  0
#define MODVM_NET_GSO_TCPV4 1
#define MODVM_NET_GSO_UDP   3
#define MODVM_NET_GSO_TCPV6 4
#define MODVM_NET_GSO_ECN   0x80

/* What a backend can carry beyond plain frames (ops->offloads). A NIC
 * offers the guest only the offloads its backend has. */
enum modvm_net_offload {
	MODVM_NET_OFFLOAD_CSUM = 1u << 0, /* frames with NEEDS_CSUM both ways */
	MODVM_NET_OFFLOAD_TSO4 = 1u << 1, /* GSO_TCPV4 (needs CSUM) */
	MODVM_NET_OFFLOAD_TSO6 = 1u << 2, /* GSO_TCPV6 (needs CSUM) */
	MODVM_NET_OFFLOAD_ECN = 1u << 3,  /* GSO_ECN with TSO */
	MODVM_NET_OFFLOAD_UFO = 1u << 4,  /* GSO_UDP (needs CSUM) */
	/* The backend can also deliver frames with the offloads above to
	 * the NIC, and stops when told (ops->set_rx_offloads, which it must
	 * have): a NIC may then offer them to its guest for receiving
	 * (virtio-net's GUEST_CSUM/GUEST_TSO*). Without it, frames from the
	 * backend are plain. (ABI 2.3) */
	MODVM_NET_OFFLOAD_RX = 1u << 5,
};

/* net_send's and ops->send's results. */
#define MODVM_NET_SENT 0     /* taken (delivered, or dropped and counted) */
#define MODVM_NET_BUSY 1     /* not taken: keep it, wait for tx_ready */

/* Backend flags (ops->flags). */
enum modvm_net_flags {
	/* The backend makes Internet sockets (socket, connect, bind) after
	 * set-up, on the event loop and on the thread that sends: user-mode
	 * networking does for every connection the guest opens. The sandbox
	 * then allows those calls for AF_INET and AF_INET6 only
	 * (docs/sandbox.md, "Network backends"). */
	MODVM_NET_F_INET_SOCKETS = 1u << 0,
};

/* The NIC's side, called by the core with the machine lock held. Size-
 * prefixed: set size = sizeof(struct modvm_net_frontend). */
struct modvm_net_frontend {
	uint32_t size;
	/* Can the NIC take a frame of len bytes on queue pair `queue` now?
	 * false: the backend keeps its input until its rx_ready. */
	bool (*can_receive)(void *opaque, unsigned queue, size_t len);
	/* One frame from the backend. Return true if it was taken (or
	 * dropped by the NIC, e.g. filtered by its receive mode); false if
	 * the NIC had no room after all: the backend keeps it as after
	 * can_receive = false. */
	bool (*receive)(void *opaque, unsigned queue,
			const struct modvm_net_hdr *hdr,
			const struct iovec *iov, int iovcnt);
	/* The backend can take frames again after a MODVM_NET_BUSY. May be
	 * NULL if the NIC drops instead of waiting. */
	void (*tx_ready)(void *opaque, unsigned queue);
	/* The cable was plugged in or pulled out (a socket peer came or
	 * left). May be NULL. */
	void (*link_changed)(void *opaque, bool up);
};

/* A backend plugin's ops (descriptor kind MODVM_KIND_NET). */
struct modvm_net_ops {
	uint32_t size;   /* sizeof(struct modvm_net_ops) at build time */
	uint32_t flags;  /* enum modvm_net_flags */
	/* Open the backend for net; props come from inst (the NIC's config
	 * group). Called from the NIC's init, before the sandbox: open,
	 * bind and connect here. Return NULL after host->set_error(). */
	void *(*open)(const struct modvm_host *host, modvm_inst *inst,
		      modvm_net *net);
	void (*close)(void *be);
	/* Send one frame of queue pair `queue` without blocking; iov is
	 * only valid during the call. hdr carries only the offloads that
	 * offloads() announced. MODVM_NET_SENT or MODVM_NET_BUSY (then call
	 * host->net_tx_ready(net, queue) when there is room). */
	int (*send)(void *be, unsigned queue, const struct modvm_net_hdr *hdr,
		    const struct iovec *iov, int iovcnt);
	/* The NIC has receive room again on `queue`. May be NULL. */
	void (*rx_ready)(void *be, unsigned queue);
	/* enum modvm_net_offload bits. May be NULL: none. */
	uint32_t (*offloads)(void *be);
	/* Queue pairs the backend serves (1 or more). May be NULL: 1. */
	unsigned (*queue_pairs)(void *be);
	/* Whether the cable is plugged in now. May be NULL: always. */
	bool (*link_up)(void *be);
	/* (ABI 2.3, read only when size covers it) The offloads the NIC's
	 * guest takes on frames it receives (MODVM_NET_OFFLOAD_* bits, a
	 * subset of offloads()): deliver frames with those and no others
	 * from now on. Until the first call: none, plain frames only. The
	 * NIC calls it (host->net_set_rx_offloads) when its driver's
	 * features change, on reset and after a snapshot is loaded; on a
	 * vCPU thread under the sandbox's device list (docs/sandbox.md).
	 * Needed for MODVM_NET_OFFLOAD_RX. */
	void (*set_rx_offloads)(void *be, uint32_t offloads);
};

/* Backend: offer one frame in a flat buffer to the NIC on queue pair
 * `queue`: true if it was taken (or filtered), false if the NIC has no
 * room (keep the frame, wait for ops->rx_ready). Inline: no ABI. */
static inline bool modvm_net_deliver(const struct modvm_host *host,
				     modvm_net *net, unsigned queue,
				     const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };

	return host->net_can_receive(net, queue, len) &&
	       host->net_receive(net, queue, NULL, &iov, 1);
}

#ifdef __cplusplus
}
#endif

#endif
