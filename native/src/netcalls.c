// Network system calls of the debuggee. A connection to the cluster is made by the engine (through
// the agent in the pod) first; only when it is up is the debuggee's own socket connected to the
// engine's loopback end of it, so refusals and timeouts come back as the real errno. Replies on
// rerouted UDP sockets carry the real peer as their source, and getpeername names the real peer.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "engine.h"
#include "net.h"
#include "netcalls.h"
#include "supervisor.h"

#define ARG(n, i) ((n)->req.data.args[i])
#define PID(n) ((pid_t)(n)->req.pid)

static int errno_of(const char *code) {
  static const struct {
    const char *code;
    int err;
  } map[] = {{"ECONNREFUSED", ECONNREFUSED}, {"ETIMEDOUT", ETIMEDOUT}, {"EHOSTUNREACH", EHOSTUNREACH}, {"ENETUNREACH", ENETUNREACH},
             {"ECONNRESET", ECONNRESET},     {"EACCES", EACCES},       {"EPERM", EPERM},               {"EADDRNOTAVAIL", EADDRNOTAVAIL},
             {"ENOTFOUND", EHOSTUNREACH},    {"EAI_AGAIN", EHOSTUNREACH}};
  for (unsigned i = 0; code && i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(code, map[i].code)) return map[i].err;
  return ECONNREFUSED;
}

static int sockopt_int(int s, int level, int name) {
  int v = -1;
  socklen_t l = sizeof v;
  if (getsockopt(s, level, name, &v, &l) < 0) return -1;
  return v;
}

/* ---- routes ---------------------------------------------------------------------------------- */

struct route {
  int proto;
  struct peer dst;
  int remote;
  struct peer via, peer;
  time_t expires;
};
#define ROUTES 1024
static struct route routes[ROUTES];
static pthread_mutex_t routes_lock = PTHREAD_MUTEX_INITIALIZER;
#define ROUTE_TTL 10

static unsigned route_slot(int proto, const struct peer *p) {
  uint64_t h = (uint64_t)proto * 31 + p->port;
  for (int i = 0; i < 16; i++) h = h * 1099511628211ULL ^ p->addr[i];
  return (unsigned)(h % ROUTES);
}

/** UDP: 1 remote (via, peer filled), 0 local, -1 the engine is gone or could not route it. */
static int udp_route(const struct peer *dst, struct peer *via, struct peer *peer) {
  time_t now = time(NULL);
  unsigned slot = route_slot(17, dst);
  pthread_mutex_lock(&routes_lock);
  struct route r = routes[slot];
  pthread_mutex_unlock(&routes_lock);
  if (r.proto == 17 && r.expires > now && !memcmp(&r.dst, dst, sizeof *dst)) {
    *via = r.via;
    *peer = r.peer;
    return r.remote;
  }
  char host[64], fields[200];
  peer_format(dst, host, sizeof host);
  snprintf(fields, sizeof fields, "\"op\":\"route\",\"proto\":\"udp\",\"host\":\"%s\",\"port\":%d", host, dst->port);
  json *reply = engine_call(fields, 30000);
  if (!reply) return -1;
  json *res = json_get(reply, "result");
  int remote = 0;
  memset(&r, 0, sizeof r);
  if (json_num(reply, "ok", 0) && res) {
    const char *route = json_str(res, "route");
    json *v = json_get(res, "via"), *p = json_get(res, "peer");
    if (route && !strcmp(route, "remote") && v && json_str(v, "host") && peer_parse(json_str(v, "host"), (int)json_num(v, "port", 0), &r.via) == 0) {
      remote = 1;
      if (!p || !json_str(p, "address") || peer_parse(json_str(p, "address"), (int)json_num(p, "port", dst->port), &r.peer) < 0) r.peer = *dst;
    }
  } else {
    json_free(reply);
    return -1; /* the engine could not route it: it must not leave from this machine */
  }
  json_free(reply);
  r.proto = 17;
  r.dst = *dst;
  r.remote = remote;
  r.expires = now + ROUTE_TTL;
  pthread_mutex_lock(&routes_lock);
  routes[slot] = r;
  pthread_mutex_unlock(&routes_lock);
  *via = r.via;
  *peer = r.peer;
  return remote;
}

/** The engine's loopback end for a socket of `domain`; 0, or -1 when this socket cannot reach it. */
static int via_sockaddr(int s, int domain, const struct peer *via, struct sockaddr_storage *ss, socklen_t *sl) {
  if (domain == AF_INET6 && via->family == 4 && sockopt_int(s, IPPROTO_IPV6, IPV6_V6ONLY) == 1) return -1;
  if (domain == AF_INET && via->family == 6) return -1;
  *sl = peer_to_sockaddr(via, domain, ss);
  return 0;
}

/* ---- black hole ------------------------------------------------------------------------------ */

/*
 * Where a connection a disruption rule drops is sent: a loopback listener with a backlog of 0 whose
 * one queued connection is never accepted, so its accept queue is full and the kernel drops every
 * SYN. The debuggee's connect behaves as with a lost SYN: EINPROGRESS for a non-blocking socket (its
 * own timeout fires), a blocking one waits until the kernel gives up with ETIMEDOUT.
 */
static int blackhole(int family, struct peer *out) {
  static struct peer holes[2];
  static int ready[2];
  static pthread_mutex_t hole_lock = PTHREAD_MUTEX_INITIALIZER;
  int k = family == 6, domain = family == 6 ? AF_INET6 : AF_INET, r = -1;
  pthread_mutex_lock(&hole_lock);
  if (!ready[k]) {
    struct peer lo;
    struct sockaddr_storage ss;
    socklen_t sl;
    int l = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0), f = -1;
    if (l >= 0 && peer_parse(family == 6 ? "::1" : "127.0.0.1", 0, &lo) == 0) {
      sl = peer_to_sockaddr(&lo, domain, &ss);
      if (bind(l, (struct sockaddr *)&ss, sl) == 0 && listen(l, 0) == 0 && getsockname(l, (struct sockaddr *)&ss, &sl) == 0 &&
          (f = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 && connect(f, (struct sockaddr *)&ss, sl) == 0 &&
          peer_from_sockaddr(&ss, sl, &holes[k]) == 0)
        ready[k] = 1; /* both stay open for the supervisor's life */
    }
    if (!ready[k]) {
      if (l >= 0) close(l);
      if (f >= 0) close(f);
    }
  }
  if (ready[k]) *out = holes[k], r = 0;
  pthread_mutex_unlock(&hole_lock);
  return r;
}

/* ---- connect --------------------------------------------------------------------------------- */

static void tcp_connect(struct notif *n, int s, int domain, const struct peer *dst) {
  struct tcp_info ti;
  socklen_t tl = sizeof ti;
  /* a socket already connecting or connected gets the kernel's own answer (EALREADY, EISCONN) */
  if (getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 && ti.tcpi_state != TCP_CLOSE) return answer_continue(n);
  int family = domain == AF_INET || sockopt_int(s, IPPROTO_IPV6, IPV6_V6ONLY) != 1 ? 4 : 6;
  char host[64], fields[220];
  peer_format(dst, host, sizeof host);
  snprintf(fields, sizeof fields, "\"op\":\"tcp.open\",\"host\":\"%s\",\"port\":%d,\"family\":%d", host, dst->port, family);
  json *reply = engine_call(fields, 120000);
  /* no answer: the connection must not leave from this machine instead of the pod */
  if (!reply) return answer_errno(n, engine_alive() ? ETIMEDOUT : ENETUNREACH);
  json *res = json_get(reply, "result");
  if (!json_num(reply, "ok", 0)) {
    int err = errno_of(json_str(reply, "code"));
    debug_log("tcp %s:%d refused by the pod: %s", host, dst->port, json_str(reply, "message") ? json_str(reply, "message") : "?");
    json_free(reply);
    return answer_errno(n, err);
  }
  const char *route = json_str(res, "route");
  json *v = json_get(res, "via"), *rem = json_get(res, "remote");
  struct peer via, peer = *dst;
  if (route && !strcmp(route, "dropped")) {
    json_free(reply);
    struct peer hole;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (blackhole(family, &hole) < 0 || via_sockaddr(s, domain, &hole, &ss, &sl) < 0) return answer_errno(n, ETIMEDOUT);
    debug_log("tcp %s:%d dropped (disruption)", host, dst->port);
    /* a blocking socket waits here as it would for lost SYNs; a non-blocking one is told EINPROGRESS */
    int r = connect(s, (struct sockaddr *)&ss, sl);
    return answer_errno(n, r == 0 ? ETIMEDOUT : errno);
  }
  if (!route || strcmp(route, "remote") || !v || !json_str(v, "host") || peer_parse(json_str(v, "host"), (int)json_num(v, "port", 0), &via) < 0) {
    json_free(reply);
    return answer_continue(n);
  }
  if (rem && json_str(rem, "address")) peer_parse(json_str(rem, "address"), (int)json_num(rem, "port", dst->port), &peer);
  json_free(reply);
  struct sockaddr_storage ss;
  socklen_t sl;
  if (via_sockaddr(s, domain, &via, &ss, &sl) < 0) return answer_errno(n, ENETUNREACH);
  int r = connect(s, (struct sockaddr *)&ss, sl), err = errno;
  if (r < 0 && err == EINPROGRESS) {
    /* a non-blocking socket: the loopback handshake completes at once */
    struct pollfd pfd = {s, POLLOUT, 0};
    poll(&pfd, 1, 10000);
    err = sockopt_int(s, SOL_SOCKET, SO_ERROR);
    r = err == 0 ? 0 : -1;
  }
  if (r < 0) return answer_errno(n, err > 0 ? err : ECONNREFUSED);
  struct tracked t = {.cookie = socket_cookie(s), .kind = TRACK_TCP, .connected = 1, .peer = peer};
  track(&t);
  debug_log("tcp %s:%d -> cluster", host, dst->port);
  answer_value(n, 0);
}

static void udp_connect(struct notif *n, int s, int domain, const struct peer *dst) {
  struct peer via, peer;
  int r = udp_route(dst, &via, &peer);
  if (r < 0) return answer_errno(n, ENETUNREACH); /* no answer: not from this machine either */
  if (r == 0) return answer_continue(n);
  struct sockaddr_storage ss;
  socklen_t sl;
  if (via_sockaddr(s, domain, &via, &ss, &sl) < 0) {
    warn_once("udp-v6only", "an IPv6-only UDP socket cannot be routed to the cluster; it stays local");
    return answer_continue(n);
  }
  if (connect(s, (struct sockaddr *)&ss, sl) < 0) return answer_errno(n, errno);
  udp_via_set(via.port, &peer);
  struct tracked t = {.cookie = socket_cookie(s), .kind = TRACK_UDP, .connected = 1, .peer = peer};
  track(&t);
  answer_value(n, 0);
}

static void do_connect(struct notif *n) {
  struct sockaddr_storage ss;
  size_t len = ARG(n, 2) < sizeof ss ? ARG(n, 2) : sizeof ss;
  struct peer dst;
  if (mem_read(PID(n), &ss, ARG(n, 1), len) != (ssize_t)len || peer_from_sockaddr(&ss, len, &dst) < 0) return answer_continue(n);
  int s = take_fd(PID(n), (int)ARG(n, 0));
  if (s < 0) {
    /* the supervisor checked it could when the filter was installed: refuse rather than let it out locally */
    warn_once("take-fd", "cannot take a socket from pid %d (%s): its connections fail", PID(n), strerror(-s));
    return answer_errno(n, ENETUNREACH);
  }
  int type = sockopt_int(s, SOL_SOCKET, SO_TYPE), proto = sockopt_int(s, SOL_SOCKET, SO_PROTOCOL), domain = sockopt_int(s, SOL_SOCKET, SO_DOMAIN);
  if (!notif_valid(n)) {
    close(s);
    return;
  }
  if (type == SOCK_STREAM && proto == IPPROTO_TCP && (domain == AF_INET || domain == AF_INET6)) tcp_connect(n, s, domain, &dst);
  else if (type == SOCK_DGRAM && proto == IPPROTO_UDP && (domain == AF_INET || domain == AF_INET6)) udp_connect(n, s, domain, &dst);
  else answer_continue(n);
  close(s);
}

/** Whether a trapped connect goes to another machine (its address is readable and not loopback). */
static int connects_elsewhere(struct notif *n) {
  struct sockaddr_storage ss;
  size_t len = ARG(n, 2) < sizeof ss ? ARG(n, 2) : sizeof ss;
  struct peer dst;
  if (len < sizeof(sa_family_t) || mem_read(PID(n), &ss, ARG(n, 1), len) != (ssize_t)len) return 0;
  return peer_from_sockaddr(&ss, len, &dst) == 0 && !peer_is_local(&dst);
}

/** The engine is gone (or the session is ending): a connect to anything but this machine fails. */
void on_connect_without_engine(struct notif *n) {
  if (connects_elsewhere(n)) answer_errno(n, ENETUNREACH);
  else answer_continue(n);
}

void on_connect(struct notif *n) {
  if (connects_elsewhere(n)) offload(n, do_connect);
  else answer_continue(n);
}

/* ---- UDP with an address --------------------------------------------------------------------- */

/** For sendto/sendmsg to dst on the debuggee's socket s: 1 rerouted (*via set), 0 leave it alone. */
static int udp_reroute(int s, const struct peer *dst, struct sockaddr_storage *via_ss, socklen_t *via_len) {
  int type = sockopt_int(s, SOL_SOCKET, SO_TYPE), proto = sockopt_int(s, SOL_SOCKET, SO_PROTOCOL), domain = sockopt_int(s, SOL_SOCKET, SO_DOMAIN);
  if (type != SOCK_DGRAM || proto != IPPROTO_UDP || (domain != AF_INET && domain != AF_INET6)) return 0;
  struct peer via, peer;
  if (udp_route(dst, &via, &peer) <= 0) return 0;
  if (via_sockaddr(s, domain, &via, via_ss, via_len) < 0) return 0;
  udp_via_set(via.port, &peer);
  struct tracked old, t = {.cookie = socket_cookie(s), .kind = TRACK_UDP, .connected = 0, .peer = peer};
  if (tracked_lookup(t.cookie, &old)) t.connected = old.connected, t.peer = old.connected ? old.peer : peer;
  track(&t);
  return 1;
}

static void do_sendto(struct notif *n) {
  struct sockaddr_storage ss, via;
  socklen_t vl;
  size_t alen = ARG(n, 5) < sizeof ss ? ARG(n, 5) : sizeof ss;
  struct peer dst;
  size_t len = ARG(n, 2);
  if (mem_read(PID(n), &ss, ARG(n, 4), alen) != (ssize_t)alen || peer_from_sockaddr(&ss, alen, &dst) < 0 || len > 65536) return answer_continue(n);
  int s = take_fd(PID(n), (int)ARG(n, 0));
  if (s < 0) return answer_continue(n);
  if (!notif_valid(n) || !udp_reroute(s, &dst, &via, &vl)) {
    close(s);
    return answer_continue(n);
  }
  char *buf = malloc(len ? len : 1);
  if (!buf || (len && mem_read(PID(n), buf, ARG(n, 1), len) != (ssize_t)len)) {
    free(buf);
    close(s);
    return answer_errno(n, EFAULT);
  }
  ssize_t r = sendto(s, buf, len, (int)ARG(n, 3) | MSG_NOSIGNAL, (struct sockaddr *)&via, vl);
  int err = errno;
  free(buf);
  close(s);
  if (r < 0) answer_errno(n, err);
  else answer_value(n, r);
}

void on_sendto(struct notif *n) {
  struct sockaddr_storage ss;
  size_t alen = ARG(n, 5) < sizeof ss ? ARG(n, 5) : sizeof ss;
  struct peer dst;
  if (alen < sizeof(sa_family_t) || mem_read(PID(n), &ss, ARG(n, 4), alen) != (ssize_t)alen) return answer_continue(n);
  if (peer_from_sockaddr(&ss, alen, &dst) < 0 || peer_is_local(&dst)) return answer_continue(n);
  offload(n, do_sendto);
}

/** Gathers a msghdr's iovecs into one buffer; returns its length or -1. */
static ssize_t gather(pid_t pid, const struct msghdr *m, char **out) {
  if (m->msg_iovlen > 1024) return -1;
  struct iovec iov[1024];
  size_t total = 0;
  if (m->msg_iovlen && mem_read(pid, iov, (uint64_t)(uintptr_t)m->msg_iov, m->msg_iovlen * sizeof(struct iovec)) != (ssize_t)(m->msg_iovlen * sizeof(struct iovec))) return -1;
  for (size_t i = 0; i < m->msg_iovlen; i++) total += iov[i].iov_len;
  if (total > 65536) return -1;
  char *buf = malloc(total ? total : 1);
  size_t at = 0;
  for (size_t i = 0; i < m->msg_iovlen; i++) {
    if (iov[i].iov_len && mem_read(pid, buf + at, (uint64_t)(uintptr_t)iov[i].iov_base, iov[i].iov_len) != (ssize_t)iov[i].iov_len) {
      free(buf);
      return -1;
    }
    at += iov[i].iov_len;
  }
  *out = buf;
  return (ssize_t)total;
}

/** Sends one of the debuggee's messages on s, rerouted when its destination is in the cluster. */
static ssize_t send_one(struct notif *n, int s, struct msghdr *m, int flags) {
  struct sockaddr_storage name, via;
  socklen_t vl = 0;
  int rerouted = 0;
  if (m->msg_name && m->msg_namelen) {
    size_t nl = m->msg_namelen < sizeof name ? m->msg_namelen : sizeof name;
    struct peer dst;
    if (mem_read(PID(n), &name, (uint64_t)(uintptr_t)m->msg_name, nl) != (ssize_t)nl) return -EFAULT;
    if (peer_from_sockaddr(&name, nl, &dst) == 0 && !peer_is_local(&dst)) rerouted = udp_reroute(s, &dst, &via, &vl);
    m->msg_name = rerouted ? (void *)&via : (void *)&name;
    m->msg_namelen = rerouted ? vl : (socklen_t)nl;
  }
  char *data = NULL, *control = NULL;
  ssize_t len = gather(PID(n), m, &data);
  if (len < 0) return -EMSGSIZE;
  if (m->msg_controllen) {
    if (m->msg_controllen > 4096) return free(data), -EINVAL;
    control = malloc(m->msg_controllen);
    if (mem_read(PID(n), control, (uint64_t)(uintptr_t)m->msg_control, m->msg_controllen) != (ssize_t)m->msg_controllen) return free(data), free(control), -EFAULT;
  }
  struct iovec one = {data, (size_t)len};
  m->msg_iov = &one;
  m->msg_iovlen = 1;
  m->msg_control = control;
  ssize_t r = sendmsg(s, m, flags | MSG_NOSIGNAL);
  int err = errno;
  free(data);
  free(control);
  return r < 0 ? -err : r;
}

static void do_sendmsg(struct notif *n) {
  struct msghdr m;
  if (mem_read(PID(n), &m, ARG(n, 1), sizeof m) != sizeof m) return answer_continue(n);
  int s = take_fd(PID(n), (int)ARG(n, 0));
  if (s < 0 || !notif_valid(n)) {
    if (s >= 0) close(s);
    return answer_continue(n);
  }
  if (sockopt_int(s, SOL_SOCKET, SO_TYPE) != SOCK_DGRAM) {
    close(s);
    return answer_continue(n);
  }
  ssize_t r = send_one(n, s, &m, (int)ARG(n, 2));
  close(s);
  if (r < 0) answer_errno(n, (int)-r);
  else answer_value(n, r);
}

static int remote_name(pid_t pid, const struct msghdr *m) {
  struct sockaddr_storage ss;
  struct peer dst;
  if (!m->msg_name || !m->msg_namelen) return 0;
  size_t nl = m->msg_namelen < sizeof ss ? m->msg_namelen : sizeof ss;
  if (mem_read(pid, &ss, (uint64_t)(uintptr_t)m->msg_name, nl) != (ssize_t)nl) return 0;
  return peer_from_sockaddr(&ss, nl, &dst) == 0 && !peer_is_local(&dst);
}

void on_sendmsg(struct notif *n) {
  struct msghdr m;
  if (mem_read(PID(n), &m, ARG(n, 1), sizeof m) != sizeof m || !remote_name(PID(n), &m)) return answer_continue(n);
  offload(n, do_sendmsg);
}

static void do_sendmmsg(struct notif *n) {
  unsigned vlen = (unsigned)ARG(n, 2) > 1024 ? 1024 : (unsigned)ARG(n, 2);
  int s = take_fd(PID(n), (int)ARG(n, 0));
  if (s < 0 || !notif_valid(n) || sockopt_int(s, SOL_SOCKET, SO_TYPE) != SOCK_DGRAM) {
    if (s >= 0) close(s);
    return answer_continue(n);
  }
  unsigned sent = 0;
  int err = 0;
  for (; sent < vlen; sent++) {
    struct mmsghdr mm;
    uint64_t at = ARG(n, 1) + sent * sizeof mm;
    if (mem_read(PID(n), &mm, at, sizeof mm) != sizeof mm) {
      err = EFAULT;
      break;
    }
    ssize_t r = send_one(n, s, &mm.msg_hdr, (int)ARG(n, 3));
    if (r < 0) {
      err = (int)-r;
      break;
    }
    unsigned len = (unsigned)r;
    mem_write(PID(n), at + offsetof(struct mmsghdr, msg_len), &len, sizeof len);
  }
  close(s);
  if (sent) answer_value(n, sent);
  else answer_errno(n, err ? err : EINVAL);
}

void on_sendmmsg(struct notif *n) {
  unsigned vlen = (unsigned)ARG(n, 2) > 1024 ? 1024 : (unsigned)ARG(n, 2);
  for (unsigned i = 0; i < vlen; i++) {
    struct mmsghdr mm;
    if (mem_read(PID(n), &mm, ARG(n, 1) + i * sizeof mm, sizeof mm) != sizeof mm) break;
    if (remote_name(PID(n), &mm.msg_hdr)) return offload(n, do_sendmmsg);
  }
  answer_continue(n);
}

/* ---- receiving on a rerouted UDP socket ------------------------------------------------------ */

/** A tracked UDP socket of the debuggee, or -1 (then the call goes on unchanged). */
static int tracked_udp_socket(struct notif *n, struct tracked *t) {
  if (!tracked_udp) return -1;
  int s = take_fd(PID(n), (int)ARG(n, 0));
  if (s < 0) return -1;
  if (!tracked_lookup(socket_cookie(s), t) || t->kind != TRACK_UDP) {
    close(s);
    return -1;
  }
  return s;
}

/** Waits until s is readable as the debuggee's call would: 0 ready, -EAGAIN, or -1 caller gone. */
static int wait_readable(struct notif *n, int s, int flags) {
  if ((flags & MSG_DONTWAIT) || (fcntl(s, F_GETFL) & O_NONBLOCK)) return 0;
  struct timeval tv = {0, 0};
  socklen_t tl = sizeof tv;
  getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl);
  long limit = tv.tv_sec * 1000 + tv.tv_usec / 1000, waited = 0;
  for (;;) {
    struct pollfd pfd = {s, POLLIN, 0};
    if (poll(&pfd, 1, 200) > 0) return 0;
    if (!notif_valid(n)) return -1;
    waited += 200;
    if (limit > 0 && waited >= limit) return -EAGAIN;
  }
}

/** The source of a datagram, as the debuggee must see it: the forwarder's port becomes the peer. */
static socklen_t real_source(int s, struct sockaddr_storage *from, socklen_t fl) {
  struct peer src, peer;
  if (peer_from_sockaddr(from, fl, &src) == 0 && src.family == 4 && src.addr[0] == 127 && udp_via_get(src.port, &peer)) {
    return peer_to_sockaddr(&peer, sockopt_int(s, SOL_SOCKET, SO_DOMAIN), from);
  }
  return fl;
}

/** Writes a sockaddr to the debuggee's (addr, *addrlen), truncated as the kernel does. */
static int put_sockaddr(pid_t pid, uint64_t addr, uint64_t lenp, const struct sockaddr_storage *sa, socklen_t len) {
  socklen_t cap;
  if (!addr || !lenp) return 0;
  if (mem_read(pid, &cap, lenp, sizeof cap) != sizeof cap) return -EFAULT;
  if (mem_write(pid, addr, sa, cap < len ? cap : len) < 0) return -EFAULT;
  if (mem_write(pid, lenp, &len, sizeof len) < 0) return -EFAULT;
  return 0;
}

static void do_recvfrom(struct notif *n) {
  struct tracked t;
  int s = tracked_udp_socket(n, &t);
  if (s < 0) return answer_continue(n);
  size_t len = ARG(n, 2) > (1 << 20) ? (1 << 20) : ARG(n, 2);
  int flags = (int)ARG(n, 3);
  char *buf = malloc(len ? len : 1);
  for (;;) {
    int w = wait_readable(n, s, flags);
    if (w == -1) break;
    if (w < 0) {
      answer_errno(n, EAGAIN);
      break;
    }
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t r = recvfrom(s, buf, len, flags | MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    if (r < 0 && errno == EAGAIN && !(flags & MSG_DONTWAIT) && !(fcntl(s, F_GETFL) & O_NONBLOCK)) continue;
    if (r < 0) {
      answer_errno(n, errno);
      break;
    }
    fl = real_source(s, &from, fl);
    size_t copy = (size_t)r < len ? (size_t)r : len;
    if ((copy && mem_write(PID(n), ARG(n, 1), buf, copy) < 0) || put_sockaddr(PID(n), ARG(n, 4), ARG(n, 5), &from, fl) < 0) answer_errno(n, EFAULT);
    else answer_value(n, r);
    break;
  }
  free(buf);
  close(s);
}

void on_recvfrom(struct notif *n) {
  if (!tracked_udp) return answer_continue(n);
  offload(n, do_recvfrom);
}

static void do_recvmsg(struct notif *n) {
  struct tracked t;
  struct msghdr m;
  if (mem_read(PID(n), &m, ARG(n, 1), sizeof m) != sizeof m || m.msg_iovlen > 1024) return answer_continue(n);
  int s = tracked_udp_socket(n, &t);
  if (s < 0) return answer_continue(n);
  struct iovec iov[1024];
  size_t total = 0;
  if (m.msg_iovlen && mem_read(PID(n), iov, (uint64_t)(uintptr_t)m.msg_iov, m.msg_iovlen * sizeof(struct iovec)) != (ssize_t)(m.msg_iovlen * sizeof(struct iovec))) {
    close(s);
    return answer_errno(n, EFAULT);
  }
  for (size_t i = 0; i < m.msg_iovlen; i++) total += iov[i].iov_len;
  if (total > (1 << 20)) total = 1 << 20;
  int flags = (int)ARG(n, 2);
  char *buf = malloc(total ? total : 1);
  size_t clen = m.msg_controllen > 4096 ? 4096 : m.msg_controllen;
  char control[4096];
  for (;;) {
    int w = wait_readable(n, s, flags);
    if (w == -1) break;
    if (w < 0) {
      answer_errno(n, EAGAIN);
      break;
    }
    struct sockaddr_storage from;
    struct iovec one = {buf, total};
    struct msghdr lm = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &one, .msg_iovlen = 1, .msg_control = clen ? control : NULL, .msg_controllen = clen};
    ssize_t r = recvmsg(s, &lm, flags | MSG_DONTWAIT);
    if (r < 0 && errno == EAGAIN && !(flags & MSG_DONTWAIT) && !(fcntl(s, F_GETFL) & O_NONBLOCK)) continue;
    if (r < 0) {
      answer_errno(n, errno);
      break;
    }
    socklen_t fl = real_source(s, &from, lm.msg_namelen);
    /* scatter the datagram over the debuggee's buffers */
    size_t left = (size_t)r < total ? (size_t)r : total, at = 0;
    int bad = 0;
    for (size_t i = 0; i < m.msg_iovlen && left; i++) {
      size_t c = iov[i].iov_len < left ? iov[i].iov_len : left;
      if (c && mem_write(PID(n), (uint64_t)(uintptr_t)iov[i].iov_base, buf + at, c) < 0) bad = 1;
      at += c;
      left -= c;
    }
    if (m.msg_name && m.msg_namelen) {
      if (mem_write(PID(n), (uint64_t)(uintptr_t)m.msg_name, &from, m.msg_namelen < fl ? m.msg_namelen : fl) < 0) bad = 1;
    }
    struct msghdr out = m;
    out.msg_namelen = m.msg_name ? fl : 0;
    out.msg_controllen = lm.msg_controllen;
    out.msg_flags = lm.msg_flags;
    if (lm.msg_controllen && mem_write(PID(n), (uint64_t)(uintptr_t)m.msg_control, control, lm.msg_controllen) < 0) bad = 1;
    if (mem_write(PID(n), ARG(n, 1), &out, sizeof out) < 0) bad = 1;
    if (bad) answer_errno(n, EFAULT);
    else answer_value(n, r);
    break;
  }
  free(buf);
  close(s);
}

void on_recvmsg(struct notif *n) {
  if (!tracked_udp) return answer_continue(n);
  offload(n, do_recvmsg);
}

/* ---- getpeername, listen --------------------------------------------------------------------- */

void on_getpeername(struct notif *n) {
  if (!tracked_any) return answer_continue(n);
  int s = take_fd(PID(n), (int)ARG(n, 0));
  if (s < 0) return answer_continue(n);
  struct tracked t;
  if (!tracked_lookup(socket_cookie(s), &t) || !t.connected) {
    close(s);
    return answer_continue(n);
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getpeername(s, (struct sockaddr *)&ss, &sl) < 0) { /* not connected (any more): the kernel's answer */
    int err = errno;
    close(s);
    return answer_errno(n, err);
  }
  sl = peer_to_sockaddr(&t.peer, sockopt_int(s, SOL_SOCKET, SO_DOMAIN), &ss);
  close(s);
  if (!notif_valid(n)) return;
  if (put_sockaddr(PID(n), ARG(n, 1), ARG(n, 2), &ss, sl) < 0) answer_errno(n, EFAULT);
  else answer_value(n, 0);
}

void on_listen(struct notif *n) {
  int s = take_fd(PID(n), (int)ARG(n, 0));
  if (s < 0) return answer_continue(n);
  int domain = sockopt_int(s, SOL_SOCKET, SO_DOMAIN), type = sockopt_int(s, SOL_SOCKET, SO_TYPE);
  if ((domain != AF_INET && domain != AF_INET6) || type != SOCK_STREAM || !notif_valid(n)) {
    close(s);
    return answer_continue(n);
  }
  /* listen on the debuggee's own socket, then tell the engine which port it is */
  if (listen(s, (int)ARG(n, 1)) < 0) {
    int err = errno;
    close(s);
    return answer_errno(n, err);
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  struct peer local;
  if (getsockname(s, (struct sockaddr *)&ss, &sl) == 0 && peer_from_sockaddr(&ss, sl, &local) == 0) {
    char host[64], fields[160];
    peer_format(&local, host, sizeof host);
    if (domain == AF_INET6 && local.family == 6 && !memcmp(local.addr, (uint8_t[16]){0}, 16)) strcpy(host, "::");
    snprintf(fields, sizeof fields, "\"op\":\"listen\",\"port\":%d,\"address\":\"%s\"", local.port, host);
    engine_notify(fields);
    debug_log("pid %d listens on %s port %d", PID(n), host, local.port);
  }
  close(s);
  answer_value(n, 0);
}
