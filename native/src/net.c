#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "net.h"

int peer_from_sockaddr(const void *sa, size_t len, struct peer *p) {
  memset(p, 0, sizeof *p);
  if (len < sizeof(sa_family_t)) return -1;
  sa_family_t fam = ((const struct sockaddr *)sa)->sa_family;
  if (fam == AF_INET && len >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *s = sa;
    p->family = 4;
    memcpy(p->addr, &s->sin_addr, 4);
    p->port = ntohs(s->sin_port);
    return 0;
  }
  if (fam == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *s = sa;
    p->port = ntohs(s->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
      p->family = 4;
      memcpy(p->addr, s->sin6_addr.s6_addr + 12, 4);
    } else {
      p->family = 6;
      memcpy(p->addr, &s->sin6_addr, 16);
    }
    return 0;
  }
  return -1;
}

int peer_is_local(const struct peer *p) {
  static const uint8_t zero[16], one6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (p->family == 4) return p->addr[0] == 127 || !memcmp(p->addr, zero, 4);
  if (p->family == 6) return !memcmp(p->addr, zero, 16) || !memcmp(p->addr, one6, 16);
  return 1;
}

socklen_t peer_to_sockaddr(const struct peer *p, int domain, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (domain == AF_INET) {
    struct sockaddr_in *s = (struct sockaddr_in *)out;
    s->sin_family = AF_INET;
    s->sin_port = htons(p->port);
    memcpy(&s->sin_addr, p->addr, 4);
    return sizeof *s;
  }
  struct sockaddr_in6 *s = (struct sockaddr_in6 *)out;
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(p->port);
  if (p->family == 4) {
    s->sin6_addr.s6_addr[10] = s->sin6_addr.s6_addr[11] = 0xff;
    memcpy(s->sin6_addr.s6_addr + 12, p->addr, 4);
  } else {
    memcpy(&s->sin6_addr, p->addr, 16);
  }
  return sizeof *s;
}

void peer_format(const struct peer *p, char *buf, size_t cap) {
  if (!inet_ntop(p->family == 4 ? AF_INET : AF_INET6, p->addr, buf, (socklen_t)cap)) snprintf(buf, cap, "?");
}

int peer_parse(const char *ip, int port, struct peer *p) {
  memset(p, 0, sizeof *p);
  p->port = (uint16_t)port;
  if (inet_pton(AF_INET, ip, p->addr) == 1) return p->family = 4, 0;
  struct in6_addr a6;
  if (inet_pton(AF_INET6, ip, &a6) == 1) {
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      p->family = 4;
      memcpy(p->addr, a6.s6_addr + 12, 4);
    } else {
      p->family = 6;
      memcpy(p->addr, &a6, 16);
    }
    return 0;
  }
  return -1;
}

/* A set-associative table keyed by SO_COOKIE (unique per socket for the boot, never reused): a
   socket the debuggee closed leaves a stale entry that nothing will ask for, and the oldest entry
   of a full set makes room. */
#define SETS 4096
#define WAYS 8
static struct {
  struct tracked t;
  uint64_t seq;
} table[SETS][WAYS];
static uint64_t seq;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
volatile int tracked_any, tracked_udp;

void track(const struct tracked *t) {
  pthread_mutex_lock(&lock);
  unsigned set = (unsigned)(t->cookie * 0x9e3779b97f4a7c15ULL >> 52) % SETS;
  int slot = 0;
  for (int w = 0; w < WAYS; w++) {
    if (table[set][w].t.cookie == t->cookie) {
      slot = w;
      break;
    }
    if (table[set][w].seq < table[set][slot].seq) slot = w;
  }
  table[set][slot].t = *t;
  table[set][slot].seq = ++seq;
  tracked_any = 1;
  if (t->kind == TRACK_UDP) tracked_udp = 1;
  pthread_mutex_unlock(&lock);
}

int tracked_lookup(uint64_t cookie, struct tracked *out) {
  if (!cookie) return 0;
  int found = 0;
  pthread_mutex_lock(&lock);
  unsigned set = (unsigned)(cookie * 0x9e3779b97f4a7c15ULL >> 52) % SETS;
  for (int w = 0; w < WAYS; w++) {
    if (table[set][w].t.cookie == cookie) {
      *out = table[set][w].t;
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&lock);
  return found;
}

uint64_t socket_cookie(int fd) {
  uint64_t c = 0;
  socklen_t l = sizeof c;
#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &l) < 0) return 0;
  return c;
}

static struct {
  struct peer p;
  int set;
} via[65536];

void udp_via_set(uint16_t via_port, const struct peer *p) {
  pthread_mutex_lock(&lock);
  via[via_port].p = *p;
  via[via_port].set = 1;
  pthread_mutex_unlock(&lock);
}

int udp_via_get(uint16_t via_port, struct peer *out) {
  pthread_mutex_lock(&lock);
  int ok = via[via_port].set;
  if (ok) *out = via[via_port].p;
  pthread_mutex_unlock(&lock);
  return ok;
}
