// Addresses and the supervisor's memory of the sockets it rerouted.
#ifndef TETHER_NET_H
#define TETHER_NET_H
#include <stdint.h>
#include <sys/socket.h>

struct peer {
  int family; /* 4 or 6; 0: not an Internet address */
  uint8_t addr[16];
  uint16_t port;
};

/** Parses a sockaddr of the debuggee; an IPv4-mapped IPv6 address becomes family 4. */
int peer_from_sockaddr(const void *sa, size_t len, struct peer *p);
/** Loopback or unspecified (0.0.0.0, ::): never routed. */
int peer_is_local(const struct peer *p);
/** The sockaddr for a socket of `domain` (AF_INET6 sockets get IPv4-mapped addresses). */
socklen_t peer_to_sockaddr(const struct peer *p, int domain, struct sockaddr_storage *out);
void peer_format(const struct peer *p, char *buf, size_t cap);
int peer_parse(const char *ip, int port, struct peer *p);

enum { TRACK_TCP = 1, TRACK_UDP = 2 };
struct tracked {
  uint64_t cookie;
  int kind;
  int connected;     /* connect() was rerouted: getpeername answers peer */
  struct peer peer;  /* the real remote end */
};
void track(const struct tracked *t);
int tracked_lookup(uint64_t cookie, struct tracked *out);
extern volatile int tracked_any, tracked_udp;
uint64_t socket_cookie(int fd);

/** UDP: replies from the engine's forwarder port come from this peer. */
void udp_via_set(uint16_t via_port, const struct peer *p);
int udp_via_get(uint16_t via_port, struct peer *out);
#endif
