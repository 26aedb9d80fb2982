/* net-storm: a misbehaving guest for linux/net-storm
 * (tests/integration/linux/net.sh storm). Runs inside the Linux test
 * guest, built static by tests/guests/linux/mkinitramfs.sh. For a number
 * of seconds it writes raw Ethernet frames to an interface through a
 * packet socket as fast as the adapter takes them, cycling through kinds
 * a correct guest never sends together:
 *   full-size frames to random unicast and broadcast MACs, runts (an
 *   Ethernet header and nothing), IPv4 headers with a bad length or
 *   version, UDP to the router and to random Internet addresses, TCP SYNs
 *   to random addresses and ports (each one a new connection for a NAT),
 *   ARP requests for random addresses, frames with unknown ethertypes.
 * Prints "net-storm: sent N frames (K kinds), E refused, in S s".
 *
 * usage: net-storm IFNAME SECONDS UDP_PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KINDS 9

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static uint16_t csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* An IPv4 header at p (20 bytes), protocol proto, total length len. */
static void ipv4(uint8_t *p, uint8_t proto, size_t len, uint32_t src, uint32_t dst)
{
	memset(p, 0, 20);
	p[0] = 0x45;
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	p[4] = (uint8_t)rnd();
	p[8] = 64;
	p[9] = proto;
	memcpy(p + 12, &src, 4);
	memcpy(p + 16, &dst, 4);
	uint16_t c = csum(p, 20);
	p[10] = (uint8_t)(c >> 8);
	p[11] = (uint8_t)c;
}

/* Frame kind k into f (with our MAC at 6..11): its length. */
static size_t build(uint8_t *f, unsigned k, uint32_t me, uint32_t router,
		    uint16_t port)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint32_t r = rnd();
	size_t len = 0;

	/* the router's MAC is unknown to us: broadcast or random unicast */
	if (k % 2)
		memcpy(f, bcast, 6);
	else
		for (int i = 0; i < 6; i++)
			f[i] = (uint8_t)(i ? rnd() : (rnd() & 0xfe));
	f[12] = 0x08;
	f[13] = 0x00;
	switch (k) {
	case 0: /* full size, random bytes */
	case 1:
		len = 1514;
		for (size_t i = 14; i < len; i++)
			f[i] = (uint8_t)rnd();
		break;
	case 2: /* a runt: the Ethernet header only */
		len = 14;
		break;
	case 3: /* IPv4 that lies about its length and version */
		len = 60;
		ipv4(f + 14, 17, 60000, me, router);
		f[14] = (uint8_t)(0x40 | (r & 0xf0) | (r & 3));
		break;
	case 4: /* UDP to the router's port */
	case 5: /* UDP to a random Internet address */
		len = 14 + 20 + 8 + 512;
		ipv4(f + 14, 17, len - 14, me, k == 4 ? router : htonl(r | 0x01000000u));
		f[34] = (uint8_t)(r >> 8);
		f[35] = (uint8_t)r;
		f[36] = (uint8_t)(port >> 8);
		f[37] = (uint8_t)port;
		f[38] = (uint8_t)((len - 34) >> 8);
		f[39] = (uint8_t)(len - 34);
		f[40] = f[41] = 0; /* no UDP checksum (allowed in IPv4) */
		for (size_t i = 42; i < len; i++)
			f[i] = (uint8_t)rnd();
		break;
	case 6: /* TCP SYN to a random address and port */
		len = 14 + 20 + 20;
		ipv4(f + 14, 6, len - 14, me, htonl(r | 0x01000000u));
		memset(f + 34, 0, 20);
		f[34] = (uint8_t)(rnd() >> 8);
		f[35] = (uint8_t)rnd();
		f[36] = (uint8_t)(r >> 3);
		f[37] = (uint8_t)(r >> 11);
		f[46] = 0x50;
		f[47] = 0x02; /* SYN */
		f[48] = 0xff;
		f[49] = 0xff;
		break;
	case 7: /* ARP request for a random address */
		len = 42;
		memcpy(f, bcast, 6);
		f[12] = 0x08;
		f[13] = 0x06;
		memcpy(f + 14, "\x00\x01\x08\x00\x06\x04\x00\x01", 8);
		memcpy(f + 22, f + 6, 6);
		memcpy(f + 28, &me, 4);
		memset(f + 32, 0, 6);
		memcpy(f + 38, &r, 4);
		break;
	default: /* an unknown ethertype */
		len = 100;
		f[12] = (uint8_t)(r >> 24);
		f[13] = (uint8_t)(r >> 16);
		for (size_t i = 14; i < len; i++)
			f[i] = (uint8_t)rnd();
		break;
	}
	return len;
}

int main(int argc, char **argv)
{
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	struct ifreq ifr = { 0 };
	uint8_t f[1514];
	unsigned long sent = 0, refused = 0;
	double t0, secs;
	uint32_t me = inet_addr("10.0.2.15"), router = inet_addr("10.0.2.2");
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: net-storm IFNAME SECONDS UDP_PORT\n");
		return 2;
	}
	secs = atof(argv[2]);
	fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	if (fd < 0 || strlen(argv[1]) >= IFNAMSIZ) {
		perror("net-storm: packet socket");
		return 1;
	}
	strcpy(ifr.ifr_name, argv[1]);
	if (ioctl(fd, SIOCGIFINDEX, &ifr)) {
		perror("net-storm: SIOCGIFINDEX");
		return 1;
	}
	a.sll_ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr)) { /* the same union: after the index */
		perror("net-storm: SIOCGIFHWADDR");
		return 1;
	}
	memcpy(f + 6, ifr.ifr_hwaddr.sa_data, 6);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("net-storm: bind");
		return 1;
	}
	t0 = now();
	while (now() - t0 < secs) {
		for (int i = 0; i < 64; i++) {
			unsigned k = rnd() % KINDS;
			size_t len = build(f, k, me, router, (uint16_t)atoi(argv[3]));

			if (send(fd, f, len, 0) < 0)
				refused++;
			else
				sent++;
		}
	}
	printf("net-storm: sent %lu frames (%d kinds), %lu refused, in %.1f s\n",
	       sent, KINDS, refused, now() - t0);
	return sent ? 0 : 1;
}
