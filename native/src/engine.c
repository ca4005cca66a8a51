#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "engine.h"

struct waiter {
  long id;
  char *line;
  int done;
  pthread_cond_t cond;
  struct waiter *next;
};

static int sock = -1;
static volatile int alive;
static long next_id = 1;
static struct waiter *waiters;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
int engine_gone_fd = -1;

int engine_alive(void) { return alive; }

static int write_all(const char *s, size_t n) {
  pthread_mutex_lock(&write_lock);
  while (n) {
    ssize_t r = send(sock, s, n, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      pthread_mutex_unlock(&write_lock);
      return -1;
    }
    s += r;
    n -= (size_t)r;
  }
  pthread_mutex_unlock(&write_lock);
  return 0;
}

static void gone(void) {
  pthread_mutex_lock(&lock);
  alive = 0;
  for (struct waiter *w = waiters; w; w = w->next) {
    w->done = 1;
    pthread_cond_signal(&w->cond);
  }
  pthread_mutex_unlock(&lock);
  uint64_t one = 1;
  if (engine_gone_fd >= 0 && write(engine_gone_fd, &one, sizeof one) < 0) { /* the main loop polls alive too */ }
}

static void deliver(char *line) {
  /* replies start with {"id":N — find N without parsing the whole (possibly large) line first */
  char *p = strstr(line, "\"id\":");
  if (!p) {
    free(line);
    return;
  }
  long id = strtol(p + 5, NULL, 10);
  pthread_mutex_lock(&lock);
  for (struct waiter *w = waiters; w; w = w->next) {
    if (w->id == id && !w->done) {
      w->line = line;
      w->done = 1;
      pthread_cond_signal(&w->cond);
      pthread_mutex_unlock(&lock);
      return;
    }
  }
  pthread_mutex_unlock(&lock);
  free(line); /* a notification's reply, or a call that timed out */
}

static void *reader(void *arg) {
  (void)arg;
  size_t cap = 65536, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (len + 4096 > cap) {
      cap *= 2;
      char *g = realloc(buf, cap);
      if (!g) break;
      buf = g;
    }
    ssize_t r = recv(sock, buf + len, cap - len - 1, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', (size_t)(buf + len - start)))) {
      *nl = 0;
      deliver(strndup(start, (size_t)(nl - start)));
      start = nl + 1;
    }
    len = (size_t)(buf + len - start);
    memmove(buf, start, len);
  }
  free(buf);
  gone();
  return NULL;
}

int engine_connect(const char *addr, const char *token) {
  char host[64];
  const char *colon = strrchr(addr, ':');
  if (!colon || (size_t)(colon - addr) >= sizeof host) return -1;
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = 0;
  int port = atoi(colon + 1);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  char *h = host;
  if (*h == '[') h++, h[strlen(h) - 1] = 0;
  if (inet_pton(AF_INET, h, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
    ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
    ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    sl = sizeof(struct sockaddr_in);
  } else if (inet_pton(AF_INET6, h, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
    ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
    ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    sl = sizeof(struct sockaddr_in6);
  } else {
    return -1;
  }
  sock = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return -1;
  int one = 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(sock, (struct sockaddr *)&ss, sl) < 0) return -1;
  char line[512];
  long n = json_escape(line, sizeof line, strlen(strcpy(line, "{\"token\":")), token);
  if (n < 0 || (size_t)n + 3 > sizeof line) return -1;
  strcpy(line + n, "}\n");
  alive = 1;
  if (write_all(line, strlen(line)) < 0) return -1;
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  return pthread_create(&t, &attr, reader, NULL) == 0 ? 0 : -1;
}

static long send_request(const char *fields, struct waiter *w) {
  size_t n = strlen(fields) + 48;
  char *line = malloc(n);
  if (!line) return -1;
  pthread_mutex_lock(&lock);
  long id = next_id++;
  if (w) {
    w->id = id;
    w->next = waiters;
    waiters = w;
  }
  pthread_mutex_unlock(&lock);
  snprintf(line, n, "{\"id\":%ld,%s}\n", id, fields);
  int r = alive ? write_all(line, strlen(line)) : -1;
  free(line);
  return r < 0 ? -1 : id;
}

static void unlink_waiter(struct waiter *w) {
  for (struct waiter **pp = &waiters; *pp; pp = &(*pp)->next) {
    if (*pp == w) {
      *pp = w->next;
      break;
    }
  }
}

json *engine_call(const char *fields, int timeout_ms) {
  if (!alive) return NULL;
  struct waiter w;
  memset(&w, 0, sizeof w);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w.cond, &ca);
  json *reply = NULL;
  if (send_request(fields, &w) >= 0) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&lock);
    while (!w.done && alive) {
      if (pthread_cond_timedwait(&w.cond, &lock, &until) == ETIMEDOUT) break;
    }
    unlink_waiter(&w);
    pthread_mutex_unlock(&lock);
    if (w.line) {
      reply = json_parse(w.line);
      free(w.line);
    }
  } else {
    pthread_mutex_lock(&lock);
    unlink_waiter(&w);
    pthread_mutex_unlock(&lock);
  }
  pthread_cond_destroy(&w.cond);
  return reply;
}

void engine_notify(const char *fields) {
  if (alive) send_request(fields, NULL);
}
