// tether-supervisor: one per session, started by the engine. It takes the seccomp listener of every
// process tree the injector (libtether.so, tether-shim) set up, and answers their trapped system
// calls: most go on unchanged (CONTINUE), the ones that concern the cluster are carried out here
// on the debuggee's own socket (pidfd_getfd) after asking the engine over the runtime wire.
//
//   tether-supervisor --check     exit 0 and print "ok" if this kernel and sandbox allow the layer
//   tether-supervisor             (TETHER_RUNTIME in the env) prints "ready <pid> <socket>" and serves
//
// When the engine goes away or sends SIGTERM, the supervisor stops routing (every call goes on
// unchanged) but stays until the last intercepted process has exited: without it their trapped
// calls would fail with ENOSYS. It then removes its socket and directory.
#define _GNU_SOURCE
#include <asm/unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "engine.h"
#include "json.h"
#include "netcalls.h"
#include "supervisor.h"
#include "tether.h"

struct config cfg;
static pthread_mutex_t listeners_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- answers --------------------------------------------------------------------------------- */

static void respond(struct notif *n, long val, int error, unsigned flags) {
  struct seccomp_notif_resp r;
  memset(&r, 0, sizeof r);
  r.id = n->req.id;
  r.val = val;
  r.error = error;
  r.flags = flags;
  ioctl(n->l->fd, SECCOMP_IOCTL_NOTIF_SEND, &r); /* ENOENT: the caller is gone (killed); nothing to do */
}
void answer_continue(struct notif *n) { respond(n, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE); }
void answer_value(struct notif *n, long value) { respond(n, value, 0, 0); }
void answer_errno(struct notif *n, int err) { respond(n, 0, -err, 0); }

void answer_fd(struct notif *n, int fd, int cloexec) {
  struct seccomp_notif_addfd a;
  memset(&a, 0, sizeof a);
  a.id = n->req.id;
  a.flags = SECCOMP_ADDFD_FLAG_SEND;
  a.srcfd = (uint32_t)fd;
  a.newfd_flags = cloexec ? O_CLOEXEC : 0;
  if (ioctl(n->l->fd, SECCOMP_IOCTL_NOTIF_ADDFD, &a) >= 0) return;
  if (errno != EINVAL) return; /* the caller is gone */
  /* Linux 5.9-5.13: no ADDFD_FLAG_SEND; install, then answer with the number */
  a.flags = 0;
  int got = ioctl(n->l->fd, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
  if (got >= 0) answer_value(n, got);
  else answer_errno(n, EMFILE);
}

int notif_valid(struct notif *n) { return ioctl(n->l->fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &n->req.id) == 0; }

/* ---- the debuggee's memory and descriptors --------------------------------------------------- */

ssize_t mem_read(pid_t pid, void *dst, uint64_t addr, size_t len) {
  struct iovec l = {dst, len}, r = {(void *)(uintptr_t)addr, len};
  return process_vm_readv(pid, &l, 1, &r, 1, 0);
}

ssize_t mem_write(pid_t pid, uint64_t addr, const void *src, size_t len) {
  struct iovec l = {(void *)src, len}, r = {(void *)(uintptr_t)addr, len};
  return process_vm_writev(pid, &l, 1, &r, 1, 0);
}

long mem_read_str(pid_t pid, uint64_t addr, char *buf, size_t cap) {
  size_t n = 0;
  if (!addr) return -EFAULT;
  while (n + 1 < cap) {
    /* never read across a page boundary at once: the next page may be unmapped */
    size_t chunk = 4096 - ((addr + n) & 4095);
    if (chunk > cap - 1 - n) chunk = cap - 1 - n;
    ssize_t r = mem_read(pid, buf + n, addr + n, chunk);
    if (r <= 0) return r < 0 ? -errno : -EFAULT;
    char *nul = memchr(buf + n, 0, (size_t)r);
    if (nul) return (long)(nul - buf);
    n += (size_t)r;
  }
  return -ENAMETOOLONG;
}

static pid_t tgid_of(pid_t tid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/status", tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t r = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (r <= 0) return -1;
  buf[r] = 0;
  char *t = strstr(buf, "\nTgid:");
  return t ? (pid_t)atoi(t + 6) : -1;
}

int take_fd(pid_t tid, int fd) {
  int pidfd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
  if (pidfd < 0 && errno == EINVAL) {
    /* before Linux 6.9 a pidfd names a thread group leader */
    pid_t tgid = tgid_of(tid);
    pidfd = tgid > 0 ? (int)syscall(SYS_pidfd_open, tgid, 0) : -1;
  }
  if (pidfd < 0) return -errno;
  int got = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
  int err = errno;
  close(pidfd);
  return got < 0 ? -err : got;
}

/* ---- logging --------------------------------------------------------------------------------- */

static void vlog_engine(const char *level, const char *fmt, va_list ap) {
  char msg[1024], line[2200];
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (engine_alive()) {
    int n = snprintf(line, sizeof line, "\"op\":\"log\",\"level\":\"%s\",\"message\":", level);
    if (json_escape(line, sizeof line, (size_t)n, msg) > 0) {
      engine_notify(line);
      return;
    }
  }
  fprintf(stderr, "[tether] %s: %s\n", level, msg);
}

void warn_once(const char *key, const char *fmt, ...) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static char seen[32][48];
  static int nseen;
  pthread_mutex_lock(&lock);
  for (int i = 0; i < nseen; i++) {
    if (!strcmp(seen[i], key)) {
      pthread_mutex_unlock(&lock);
      return;
    }
  }
  if (nseen < 32) snprintf(seen[nseen++], sizeof seen[0], "%s", key);
  pthread_mutex_unlock(&lock);
  va_list ap;
  va_start(ap, fmt);
  vlog_engine("warn", fmt, ap);
  va_end(ap);
}

void debug_log(const char *fmt, ...) {
  if (!cfg.debug) return;
  va_list ap;
  va_start(ap, fmt);
  vlog_engine("debug", fmt, ap);
  va_end(ap);
}

/* ---- threads --------------------------------------------------------------------------------- */

struct job {
  struct notif n;
  void (*fn)(struct notif *);
};

void listener_put(struct listener *l) {
  pthread_mutex_lock(&listeners_lock);
  int last = --l->refs == 0;
  pthread_mutex_unlock(&listeners_lock);
  if (last) {
    close(l->fd);
    free(l);
  }
}

static void *run_job(void *arg) {
  struct job *j = arg;
  j->fn(&j->n);
  listener_put(j->n.l);
  free(j);
  return NULL;
}

void offload(struct notif *n, void (*fn)(struct notif *)) {
  struct job *j = malloc(sizeof *j);
  if (!j) {
    answer_continue(n);
    return;
  }
  j->n = *n;
  j->fn = fn;
  pthread_mutex_lock(&listeners_lock);
  n->l->refs++;
  pthread_mutex_unlock(&listeners_lock);
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 512 * 1024);
  if (pthread_create(&t, &attr, run_job, j) != 0) {
    listener_put(n->l);
    free(j);
    answer_continue(n);
  }
  pthread_attr_destroy(&attr);
}

/* ---- configuration --------------------------------------------------------------------------- */

static json *read_config(void) {
  const char *raw = getenv("TETHER_RUNTIME");
  json *env = raw ? json_parse(raw) : NULL;
  if (!env || !json_str(env, "addr") || !json_str(env, "token")) return NULL;
  json *files = json_get(env, "remoteFiles");
  if (files && files->type == J_ARR) {
    cfg.files = calloc((size_t)files->n + 1, sizeof(char *));
    for (int i = 0; i < files->n; i++) {
      if (files->items[i]->type != J_STR || files->items[i]->str[0] != '/') continue;
      char *f = strdup(files->items[i]->str);
      size_t len = strlen(f);
      if (len > 1 && f[len - 1] == '/') cfg.has_prefix = 1;
      cfg.files[cfg.nfiles++] = f;
    }
  }
  const char *host = json_str(env, "hostname");
  if (host && *host) cfg.hostname = strdup(host);
  cfg.debug = json_num(env, "debug", 0) != 0;
  return env;
}

/* ---- --check: the whole path once, in a child -------------------------------------------------- */

static int check(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getppid, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {4, f};
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) return printf("unavailable: pipe failed\n"), 1;
  pid_t child = fork();
  if (child == 0) {
    int l = -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0) l = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    int e = l < 0 ? errno : 0;
    if (write(pipefd[1], l < 0 ? &e : &l, sizeof l) < 0) _exit(3);
    if (l < 0) _exit(2);
    /* answered with a descriptor (ADDFD): must come back as a valid fd */
    long r = syscall(SYS_getppid);
    _exit(r >= 0 && fcntl((int)r, F_GETFD) >= 0 ? 0 : 4);
  }
  int l = -1, rc = 1;
  const char *why = "the probe process did not start";
  if (child > 0 && read(pipefd[0], &l, sizeof l) == sizeof l) {
    int status;
    if (waitpid(child, &status, WNOHANG) == child && WIFEXITED(status) && WEXITSTATUS(status) == 2) {
      why = l == EINVAL ? "seccomp user notification needs Linux >= 5.0" : "seccomp filters are forbidden here (a sandbox or container policy)";
      goto out;
    }
    int lfd = (int)syscall(SYS_pidfd_getfd, (int)syscall(SYS_pidfd_open, child, 0), l, 0);
    if (lfd < 0) {
      why = errno == ENOSYS ? "pidfd_getfd needs Linux >= 5.6" : "pidfd_getfd is not permitted (ptrace restrictions)";
      goto out;
    }
    struct seccomp_notif req;
    memset(&req, 0, sizeof req);
    if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
      why = "seccomp notifications cannot be received";
      goto out;
    }
    struct seccomp_notif_addfd a;
    memset(&a, 0, sizeof a);
    a.id = req.id;
    a.srcfd = (uint32_t)pipefd[0];
    int got = ioctl(lfd, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
    struct seccomp_notif_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.id = req.id;
    resp.val = got;
    resp.error = got < 0 ? -EPERM : 0;
    ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    if (got < 0) {
      why = "SECCOMP_IOCTL_NOTIF_ADDFD needs Linux >= 5.9";
      goto out;
    }
    int status2;
    if (waitpid(child, &status2, 0) == child && WIFEXITED(status2) && WEXITSTATUS(status2) == 0) rc = 0;
    else why = "the probe process did not get its answer";
  }
out:
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  if (rc == 0) printf("ok\n");
  else printf("unavailable: %s\n", why);
  return rc;
}

/* ---- the handshake with an injector ---------------------------------------------------------- */

struct client {
  int fd;
  pid_t pid;
  int pidfd;
  char buf[256];
  size_t len;
};

static int features(void) {
  int f = TETHER_FEAT_NET;
  if (cfg.nfiles) f |= TETHER_FEAT_FILES;
  if (cfg.hostname) f |= TETHER_FEAT_UNAME;
  return f;
}

static int epfd;
static int nlisteners;
static int closing;

static void reply(struct client *c, const char *fmt, ...) {
  char line[300];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (send(c->fd, line, (size_t)n, MSG_NOSIGNAL) < 0) { /* the injector gives up on its own */ }
}

/** Returns 1 when the client is done (close it). */
static int client_line(struct client *c, char *line) {
  if (!strncmp(line, "hello ", 6)) {
    int sockfd = -1;
    unsigned long long probe_addr = 0;
    if (sscanf(line + 6, "%d %llu", &sockfd, &probe_addr) != 2) return reply(c, "no malformed hello\n"), 1;
    if (closing || !engine_alive()) return reply(c, "no the Tether session is ending\n"), 1;
    /* can we reach this process? the same permissions every trapped call needs */
    int probe = take_fd(c->pid, sockfd);
    if (probe < 0) {
      reply(c, "no the supervisor cannot take this process's descriptors (%s; ptrace restrictions such as Yama ptrace_scope or a non-dumpable process)\n", strerror(-probe));
      return 1;
    }
    close(probe);
    char got[sizeof TETHER_PROBE];
    if (mem_read(c->pid, got, probe_addr, sizeof got) != (ssize_t)sizeof got || memcmp(got, TETHER_PROBE, sizeof got)) {
      reply(c, "no the supervisor cannot read this process's memory (%s)\n", strerror(errno));
      return 1;
    }
    reply(c, "ok %d\n", features());
    return 0;
  }
  if (!strncmp(line, "listener ", 9)) {
    int lfd = take_fd(c->pid, atoi(line + 9));
    if (lfd < 0) return reply(c, "no cannot take the listener\n"), 1;
    struct listener *l = calloc(1, sizeof *l);
    l->fd = lfd;
    l->refs = 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    nlisteners++;
    debug_log("intercepting pid %d", c->pid);
    reply(c, "ok\n");
    return 1;
  }
  return reply(c, "no unknown request\n"), 1;
}

/* epoll data: listeners are struct listener *, clients struct client *; the two sockets below are tagged */
static int server_fd, signal_fd;
static struct listener server_tag, signal_tag, engine_tag;
static char sock_dir[96], sock_path[104];

static void cleanup_files(void) {
  if (sock_path[0]) unlink(sock_path);
  if (sock_dir[0]) rmdir(sock_dir);
}

/* a crash must not leave the socket behind either (unlink and rmdir are async-signal-safe) */
static void on_fatal(int sig) {
  cleanup_files();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void enter_closing(const char *why) {
  if (closing) return;
  closing = 1;
  debug_log("closing: %s", why);
  if (server_fd >= 0) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, server_fd, NULL);
    close(server_fd);
    server_fd = -1;
  }
  cleanup_files();
}

int supervisor_main(void);
int supervisor_main(void) {
  signal(SIGPIPE, SIG_IGN);
  signal(SIGSEGV, on_fatal);
  signal(SIGBUS, on_fatal);
  signal(SIGABRT, on_fatal);
  signal(SIGFPE, on_fatal);
  json *env = read_config();
  if (!env) {
    fprintf(stderr, "tether-supervisor: TETHER_RUNTIME is missing or invalid\n");
    return 2;
  }
  /* the engine kills us with SIGTERM; a terminal's Ctrl+C is for the debuggee, not for us */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal_fd = signalfd(-1, &set, SFD_CLOEXEC);
  engine_gone_fd = eventfd(0, EFD_CLOEXEC);
  if (engine_connect(json_str(env, "addr"), json_str(env, "token")) < 0) {
    fprintf(stderr, "tether-supervisor: cannot reach the engine at %s\n", json_str(env, "addr"));
    return 1;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(sock_dir, sizeof sock_dir, "%s/tether-native-XXXXXX", tmp && *tmp && strlen(tmp) < 80 ? tmp : "/tmp");
  if (!mkdtemp(sock_dir)) {
    fprintf(stderr, "tether-supervisor: cannot create %s: %s\n", sock_dir, strerror(errno));
    return 1;
  }
  snprintf(sock_path, sizeof sock_path, "%s/s", sock_dir);
  server_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock_path);
  if (bind(server_fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(server_fd, 64) < 0) {
    fprintf(stderr, "tether-supervisor: cannot listen on %s: %s\n", sock_path, strerror(errno));
    cleanup_files();
    return 1;
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &server_tag};
  epoll_ctl(epfd, EPOLL_CTL_ADD, server_fd, &ev);
  ev.data.ptr = &signal_tag;
  epoll_ctl(epfd, EPOLL_CTL_ADD, signal_fd, &ev);
  ev.data.ptr = &engine_tag;
  epoll_ctl(epfd, EPOLL_CTL_ADD, engine_gone_fd, &ev);
  printf("ready %d %s\n", getpid(), sock_path);
  fflush(stdout);

  struct client *clients[64] = {0};
  for (;;) {
    if (closing && nlisteners == 0) break;
    struct epoll_event evs[32];
    int n = epoll_wait(epfd, evs, 32, -1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; i++) {
      void *tag = evs[i].data.ptr;
      if (tag == &signal_tag) {
        struct signalfd_siginfo si;
        if (read(signal_fd, &si, sizeof si) > 0 && si.ssi_signo == SIGTERM) enter_closing("SIGTERM");
        continue;
      }
      if (tag == &engine_tag) {
        uint64_t v;
        if (read(engine_gone_fd, &v, sizeof v) < 0) { /* level-triggered: read once */ }
        epoll_ctl(epfd, EPOLL_CTL_DEL, engine_gone_fd, NULL);
        enter_closing("the engine went away");
        continue;
      }
      if (tag == &server_tag) {
        int cfd;
        while (server_fd >= 0 && (cfd = accept4(server_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
          struct ucred cred;
          socklen_t cl = sizeof cred;
          int slot = -1;
          for (int k = 0; k < 64; k++) if (!clients[k]) { slot = k; break; }
          if (slot < 0 || getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
            close(cfd);
            continue;
          }
          struct client *c = calloc(1, sizeof *c);
          c->fd = cfd;
          c->pid = cred.pid; /* the kernel's word, not the client's */
          clients[slot] = c;
          struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &cev);
        }
        continue;
      }
      int is_client = 0;
      for (int k = 0; k < 64; k++) {
        struct client *c = clients[k];
        if (c != tag) continue;
        is_client = 1;
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
        int done = r <= 0;
        if (r > 0) {
          c->len += (size_t)r;
          c->buf[c->len] = 0;
          char *nl;
          while (!done && (nl = strchr(c->buf, '\n'))) {
            *nl = 0;
            done = client_line(c, c->buf);
            size_t rest = c->len - (size_t)(nl + 1 - c->buf);
            memmove(c->buf, nl + 1, rest + 1);
            c->len = rest;
          }
          if (c->len >= sizeof c->buf - 1) done = 1;
        }
        if (done) {
          epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
          close(c->fd);
          free(c);
          clients[k] = NULL;
        }
      }
      if (is_client) continue;
      struct listener *l = tag;
      if (evs[i].events & EPOLLIN) {
        struct notif nt;
        memset(&nt, 0, sizeof nt);
        nt.l = l;
        if (ioctl(l->fd, SECCOMP_IOCTL_NOTIF_RECV, &nt.req) == 0) {
          /* without an engine every call goes on as if Tether were not there, except a connect to
             another machine: that would leave from this one instead of the pod */
          if ((closing || !engine_alive()) && nt.req.data.nr == __NR_connect) on_connect_without_engine(&nt);
          else if (closing || !engine_alive()) answer_continue(&nt);
          else dispatch(&nt);
        }
      } else if (evs[i].events & (EPOLLHUP | EPOLLERR)) {
        /* every process using this filter has exited */
        epoll_ctl(epfd, EPOLL_CTL_DEL, l->fd, NULL);
        nlisteners--;
        listener_put(l);
        if (nlisteners == 0 && !engine_alive()) enter_closing("no process left");
      }
    }
  }
  cleanup_files();
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--check")) return check();
  if (argc > 1) {
    fprintf(stderr, "usage: tether-supervisor [--check]   (started by the Tether engine)\n");
    return 2;
  }
  return supervisor_main();
}
