// tether-watch: the agent's helper in the pod's network namespace, in place of tcpdump and perl
// (agent/incoming/watchHelper.ts starts it). Dynamic against libc only: the agent image has the libc
// node needs, and nothing else.
//
//   tether-watch capture IFACE PORT   pcap on stdout (LINKTYPE_RAW, nanosecond times) of the TCP
//                                     packets that ARRIVE for destination port PORT on IFACE ("any":
//                                     every interface): an AF_PACKET socket with the filter in the
//                                     kernel; a packet the host sends is never taken, so loopback
//                                     shows each packet once (tcpdump -Q in)
//   tether-watch nflog GROUP          pcap on stdout (LINKTYPE_NFLOG) of what iptables' NFLOG rules
//                                     log to GROUP, read over netlink (tcpdump -i nflog:GROUP)
//   tether-watch stall PORT MS        the stall watcher of a stolen port: fd 3 is its listening
//                                     socket (shared with the agent), stdin the agent's heartbeat
//                                     bytes; with none for MS it accepts and resets every waiting
//                                     and new connection until the bytes come again; exits when
//                                     stdin ends
//
// Every mode dies with its parent (PR_SET_PDEATHSIG), says "listening on ..." on stderr once ready
// (capture, nflog), and says on stderr what failed, exiting 1.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SNAPLEN 262144
/** Captured packets wait this long (at most) to leave in one write: one wakeup of the agent per batch. */
#define FLUSH_MS 20
#define FLUSH_BYTES (256 * 1024)
/** The kernel's queue for the socket (tcpdump -B 16384). */
#define RCVBUF (16 * 1024 * 1024)

static const char *mode = "";

static void die(const char *what) {
  fprintf(stderr, "tether-watch %s: %s: %s\n", mode, what, strerror(errno));
  exit(1);
}

static void usage(void) {
  fprintf(stderr, "usage: tether-watch capture IFACE PORT | nflog GROUP | stall PORT TIMEOUT_MS\n");
  exit(2);
}

static long number(const char *s, long max) {
  char *end;
  errno = 0;
  long n = strtol(s, &end, 10);
  if (errno || *end || end == s || n < 0 || n > max) {
    fprintf(stderr, "tether-watch %s: not a number from 0 to %ld: %s\n", mode, max, s);
    exit(2);
  }
  return n;
}

// ---- pcap on stdout, written in batches ----

static unsigned char out[FLUSH_BYTES + SNAPLEN + 16];
static size_t outLen;

static void flush(void) {
  size_t at = 0;
  while (at < outLen) {
    ssize_t n = write(1, out + at, outLen - at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) exit(errno == EPIPE ? 0 : 1); // the agent stopped reading
    at += (size_t)n;
  }
  outLen = 0;
}

static void pcapHeader(uint32_t linkType) {
  uint32_t h[6] = {0xa1b23c4d /* nanosecond times */, 2 | (4u << 16), 0, 0, SNAPLEN, linkType};
  memcpy(out, h, sizeof h);
  outLen = sizeof h;
  flush();
}

static void pcapRecord(const struct timespec *at, const void *data, uint32_t captured, uint32_t length) {
  if (outLen + 16 + captured > sizeof out) flush();
  uint32_t h[4] = {(uint32_t)at->tv_sec, (uint32_t)at->tv_nsec, captured, length};
  memcpy(out + outLen, h, sizeof h);
  memcpy(out + outLen + sizeof h, data, captured);
  outLen += sizeof h + captured;
}

static long long nowMs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/**
 * Reads records from `fd` with `drain` (which takes all that is ready, appending to the output) and
 * writes them out at most FLUSH_MS after the first one of a batch.
 */
static void pump(int fd, void (*drain)(int)) {
  long long first = -1;
  for (;;) {
    int wait = first < 0 ? -1 : (int)(first + FLUSH_MS - nowMs());
    if (first >= 0 && wait <= 0) {
      flush();
      first = -1;
      continue;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, wait);
    if (n < 0 && errno != EINTR) die("poll");
    if (n <= 0) continue;
    drain(fd);
    if (outLen >= FLUSH_BYTES) {
      flush();
      first = -1;
    } else if (outLen && first < 0) {
      first = nowMs();
    }
  }
}

// ---- capture: AF_PACKET ----

static unsigned char packet[SNAPLEN];

static void drainPackets(int fd) {
  while (outLen < FLUSH_BYTES) {
    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE(sizeof(struct timespec))];
    } control;
    struct iovec iov = {.iov_base = packet, .iov_len = sizeof packet};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control};
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      die("recvmsg");
    }
    struct timespec at = {0, 0};
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) memcpy(&at, CMSG_DATA(c), sizeof at);
    if (!at.tv_sec) clock_gettime(CLOCK_REALTIME, &at);
    uint32_t length = (uint32_t)n;
    pcapRecord(&at, packet, length < SNAPLEN ? length : SNAPLEN, length);
  }
}

/** Jumps by target instruction (the filter below is written with absolute positions). */
#define JEQ(k, t, f, pc) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, (t) - (pc) - 1, (f) - (pc) - 1)
#define JSET(k, t, f, pc) BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, k, (t) - (pc) - 1, (f) - (pc) - 1)

static int capture(const char *iface, unsigned port) {
  enum { ACCEPT = 16, DROP = 17 };
  // a SOCK_DGRAM packet socket hands over each packet from its IP header on
  struct sock_filter code[] = {
      /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_PKTTYPE),
      /* 1 */ JEQ(PACKET_OUTGOING, DROP, 2, 1),
      /* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_PROTOCOL),
      /* 3 */ JEQ(ETH_P_IP, 4, 11, 3),
      /* 4 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9), // IPv4 protocol
      /* 5 */ JEQ(IPPROTO_TCP, 6, DROP, 5),
      /* 6 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 6), // a fragment after the first: no TCP header
      /* 7 */ JSET(0x1fff, DROP, 8, 7),
      /* 8 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0), // X = IPv4 header length
      /* 9 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, 2), // TCP destination port
      /* 10 */ JEQ(port, ACCEPT, DROP, 10),
      /* 11 */ JEQ(ETH_P_IPV6, 12, DROP, 11),
      /* 12 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 6), // IPv6 next header
      /* 13 */ JEQ(IPPROTO_TCP, 14, DROP, 13),
      /* 14 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 40 + 2),
      /* 15 */ JEQ(port, ACCEPT, DROP, 15),
      /* 16 */ BPF_STMT(BPF_RET | BPF_K, SNAPLEN),
      /* 17 */ BPF_STMT(BPF_RET | BPF_K, 0),
  };
  struct sock_fprog filter = {.len = sizeof code / sizeof code[0], .filter = code};
  int ifindex = 0;
  if (strcmp(iface, "any") != 0 && !(ifindex = (int)if_nametoindex(iface))) die(iface);
  // protocol 0 until the filter is on: no packet is taken before it
  int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die(errno == EPERM ? "packet socket (the agent needs NET_RAW)" : "packet socket");
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &filter, sizeof filter) < 0) die("filter");
  int one = 1, size = RCVBUF;
  if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0) die("timestamps");
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  struct sockaddr_ll at = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = ifindex};
  if (bind(fd, (struct sockaddr *)&at, sizeof at) < 0) die(iface);
  pcapHeader(101 /* LINKTYPE_RAW */);
  fprintf(stderr, "listening on %s, tcp dst port %u, arriving packets\n", iface, port);
  pump(fd, drainPackets);
  return 0;
}

// ---- nflog: netlink ----

static unsigned char nlbuf[1 << 20];

/** Sends one NFULNL_MSG_CONFIG request with one attribute and returns the kernel's answer (0 or -errno). */
static int configure(int fd, uint8_t family, uint16_t group, uint16_t type, const void *value, uint16_t size) {
  struct {
    struct nlmsghdr h;
    struct nfgenmsg g;
    struct nlattr a;
    unsigned char v[8];
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.g + NLA_ALIGN(NLA_HDRLEN + size));
  req.h.nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.h.nlmsg_seq = type;
  req.g.nfgen_family = family;
  req.g.version = NFNETLINK_V0;
  req.g.res_id = htons(group);
  req.a.nla_len = NLA_HDRLEN + size;
  req.a.nla_type = type;
  memcpy(req.v, value, size);
  if (send(fd, &req, req.h.nlmsg_len, 0) < 0) return -errno;
  for (;;) {
    ssize_t n = recv(fd, nlbuf, sizeof nlbuf, 0);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (struct nlmsghdr *h = (struct nlmsghdr *)nlbuf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n))
      if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == type) return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
  }
}

static void drainLog(int fd) {
  while (outLen < FLUSH_BYTES) {
    ssize_t n = recv(fd, nlbuf, sizeof nlbuf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      if (errno == ENOBUFS) continue; // the kernel dropped records: the reader gives up those connections
      die("recv");
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)nlbuf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) continue;
      // the record is the message without its netlink header: nfgenmsg, then the attributes
      unsigned char *record = NLMSG_DATA(h);
      uint32_t length = h->nlmsg_len - NLMSG_HDRLEN;
      if (length > SNAPLEN) continue;
      struct timespec at = {0, 0};
      for (uint32_t a = sizeof(struct nfgenmsg); a + NLA_HDRLEN <= length;) {
        struct nlattr *attr = (struct nlattr *)(record + a);
        if (attr->nla_len < NLA_HDRLEN || a + attr->nla_len > length) break;
        if ((attr->nla_type & NLA_TYPE_MASK) == NFULA_TIMESTAMP && attr->nla_len >= NLA_HDRLEN + sizeof(struct nfulnl_msg_packet_timestamp)) {
          struct nfulnl_msg_packet_timestamp t;
          memcpy(&t, record + a + NLA_HDRLEN, sizeof t);
          at.tv_sec = (time_t)be64toh(t.sec);
          at.tv_nsec = (long)be64toh(t.usec) * 1000;
        }
        a += NLA_ALIGN(attr->nla_len);
      }
      if (!at.tv_sec) clock_gettime(CLOCK_REALTIME, &at);
      pcapRecord(&at, record, length, length);
    }
  }
}

static int nflog(unsigned group) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) die("netlink socket");
  struct sockaddr_nl self = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&self, sizeof self) < 0) die("netlink bind");
  int one = 1, size = RCVBUF;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  // timestamps on received packets, so that the kernel puts each packet's time in its record
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMP, &one, sizeof one);
  // kernels before 3.17 log a family only once a listener binds it; later ones ignore this
  uint8_t cmd = NFULNL_CFG_CMD_PF_BIND;
  configure(fd, AF_INET, 0, NFULA_CFG_CMD, &cmd, 1);
  configure(fd, AF_INET6, 0, NFULA_CFG_CMD, &cmd, 1);
  cmd = NFULNL_CFG_CMD_BIND;
  int r = configure(fd, AF_UNSPEC, (uint16_t)group, NFULA_CFG_CMD, &cmd, 1);
  if (r < 0) {
    errno = -r;
    char what[96];
    // the kernel says EPERM both without NET_ADMIN and when another socket holds the group
    snprintf(what, sizeof what, errno == EPERM ? "nflog group %u (another process reads it, or the agent lacks NET_ADMIN)" : "nflog group %u", group);
    die(what);
  }
  struct nfulnl_msg_config_mode copy = {.copy_range = htonl(0xffff), .copy_mode = NFULNL_COPY_PACKET};
  if ((r = configure(fd, AF_UNSPEC, (uint16_t)group, NFULA_CFG_MODE, &copy, sizeof copy)) < 0) {
    errno = -r;
    die("nflog copy mode");
  }
  // the kernel holds records until 100 are queued or its flush timer (1 s) fires, unless the rule
  // sets a threshold: iptables-legacy's NFLOG target does (1, each packet at once), iptables-nft's
  // native log expression does not. Leaks are attributed by who was stealing when they are read, so
  // they must not wait a second: 20 ms (in 1/100 s), as this reader batches its own output
  uint32_t timeout = htonl(FLUSH_MS / 10);
  if ((r = configure(fd, AF_UNSPEC, (uint16_t)group, NFULA_CFG_TIMEOUT, &timeout, sizeof timeout)) < 0) {
    errno = -r;
    die("nflog flush timeout");
  }
  pcapHeader(239 /* LINKTYPE_NFLOG */);
  fprintf(stderr, "listening on nflog:%u\n", group);
  pump(fd, drainLog);
  return 0;
}

// ---- stall: the stolen port's watcher ----

static int stall(const char *port, long timeoutMs) {
  int stalled = 0;
  static char beats[4096];
  for (;;) {
    struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = 3, .events = POLLIN}};
    int n = poll(p, stalled ? 2 : 1, stalled ? -1 : (int)timeoutMs);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (n == 0) {
      stalled = 1;
      fprintf(stderr, "{\"level\":\"warn\",\"message\":\"agent stalled: connections to port %s are refused until it runs again\",\"port\":%s}\n", port, port);
      continue;
    }
    if (p[0].revents) {
      ssize_t got = read(0, beats, sizeof beats);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return 0; // the port is released, or the agent is gone
      if (stalled) fprintf(stderr, "{\"level\":\"info\",\"message\":\"agent runs again: port %s is served\",\"port\":%s}\n", port, port);
      stalled = 0;
    } else if (p[1].revents) {
      // the listener is non-blocking (one open file with the agent's): the agent may have taken it first
      int c = accept4(3, NULL, NULL, SOCK_CLOEXEC);
      if (c < 0) continue;
      struct linger reset = {.l_onoff = 1, .l_linger = 0};
      setsockopt(c, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      close(c);
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  mode = argv[1];
  // with the agent: a SIGKILLed agent takes its helpers along (the helper never changes credentials,
  // which would clear this)
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_DFL);
  if (strcmp(mode, "capture") == 0 && argc == 4) return capture(argv[2], (unsigned)number(argv[3], 65535));
  if (strcmp(mode, "nflog") == 0 && argc == 3) return nflog((unsigned)number(argv[2], 65535));
  if (strcmp(mode, "stall") == 0 && argc == 4) {
    number(argv[2], 65535);
    return stall(argv[2], number(argv[3], 3600000));
  }
  usage();
}
