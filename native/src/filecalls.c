// Files the debuggee sees from the pod: the paths the engine lists (fs.readOnly, the resolver's
// /etc/resolv.conf and /etc/hosts, the hostname files) open read-only from a sealed in-memory copy
// of the pod's file, stat agrees with that copy, and any change to them fails with EROFS. Every
// other path is left to the kernel. The copy comes from the engine (agent file.read).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include "engine.h"
#include "filecalls.h"
#include "supervisor.h"

#define ARG(n, i) ((n)->req.data.args[i])
#define PID(n) ((pid_t)(n)->req.pid)
#define NR(n) ((n)->req.data.nr)
#define PATH_CAP 4096

/* ---- which paths ----------------------------------------------------------------------------- */

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/** Cheap test on the raw path before resolving it: could it name a served file at all? */
static int maybe_served(const char *raw) {
  if (cfg.has_prefix) return 1;
  const char *b = base_name(raw);
  for (int i = 0; i < cfg.nfiles; i++)
    if (!strcmp(base_name(cfg.files[i]), b)) return 1;
  return 0;
}

static int served(const char *abs) {
  for (int i = 0; i < cfg.nfiles; i++) {
    const char *f = cfg.files[i];
    size_t len = strlen(f);
    if (f[len - 1] == '/' ? !strncmp(abs, f, len) && abs[len] : !strcmp(abs, f)) return 1;
  }
  return 0;
}

/** Normalises an absolute path lexically (".", "..", "//"). */
static void normalise(char *p) {
  char out[PATH_CAP];
  size_t o = 0;
  const char *s = p;
  while (*s) {
    while (*s == '/') s++;
    if (!*s) break;
    const char *e = strchr(s, '/');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len == 1 && s[0] == '.') {
    } else if (len == 2 && s[0] == '.' && s[1] == '.') {
      while (o > 0 && out[o - 1] != '/') o--;
      if (o > 0) o--;
    } else if (o + len + 2 < sizeof out) {
      out[o++] = '/';
      memcpy(out + o, s, len);
      o += len;
    }
    s += len;
  }
  if (o == 0) out[o++] = '/';
  out[o] = 0;
  strcpy(p, out);
}

/** The absolute path a (dirfd, path) pair of the debuggee names; 0, or -1. */
static int resolve_at(pid_t pid, int dirfd, const char *raw, char *out) {
  if (raw[0] == '/') {
    snprintf(out, PATH_CAP, "%s", raw);
  } else {
    char link[64], base[PATH_CAP];
    if (dirfd == AT_FDCWD) snprintf(link, sizeof link, "/proc/%d/cwd", pid);
    else snprintf(link, sizeof link, "/proc/%d/fd/%d", pid, dirfd);
    ssize_t r = readlink(link, base, sizeof base - 1);
    if (r <= 0) return -1;
    base[r] = 0;
    if (snprintf(out, PATH_CAP, "%s/%s", base, raw) >= PATH_CAP) return -1;
  }
  normalise(out);
  return 0;
}

/** Reads the path argument and tells whether it is served; fills abs. */
static int served_arg(struct notif *n, int dirfd, uint64_t addr, char *abs) {
  char raw[PATH_CAP];
  if (mem_read_str(PID(n), addr, raw, sizeof raw) <= 0) return 0;
  if (!maybe_served(raw)) return 0;
  if (resolve_at(PID(n), dirfd, raw, abs) < 0) return 0;
  return served(abs);
}

/* ---- the pod's copies ------------------------------------------------------------------------ */

struct copy {
  char *path;
  int err; /* 0 ok; ENOENT/EACCES; -1: the engine says local */
  unsigned char *data;
  size_t len;
  unsigned mode;
  double mtime_ms;
  time_t expires;
  struct copy *next;
};
static struct copy *copies;
static pthread_mutex_t copies_lock = PTHREAD_MUTEX_INITIALIZER;
/* glibc stats and reopens /etc/resolv.conf and /etc/hosts on every lookup: keep a copy for a moment */
#define COPY_TTL 2

static struct copy *fetch(const char *path) {
  char fields[PATH_CAP + 64];
  int n = snprintf(fields, sizeof fields, "\"op\":\"file.read\",\"path\":");
  if (json_escape(fields, sizeof fields, (size_t)n, path) < 0) return NULL;
  json *reply = engine_call(fields, 30000);
  if (!reply) return NULL;
  struct copy *c = calloc(1, sizeof *c);
  c->path = strdup(path);
  json *res = json_get(reply, "result");
  if (!json_num(reply, "ok", 0)) {
    const char *code = json_str(reply, "code");
    c->err = code && !strcmp(code, "NOT_FOUND") ? ENOENT : EACCES;
  } else if (json_str(res, "route")) {
    c->err = -1;
  } else {
    const char *data = json_str(res, "data");
    c->data = base64_decode(data ? data : "", &c->len);
    c->mode = (unsigned)json_num(res, "mode", 0100444);
    c->mtime_ms = json_num(res, "mtimeMs", 0);
  }
  json_free(reply);
  return c;
}

/** A copy of the pod's file (the caller must not free it), or NULL when the engine is gone. */
static struct copy *pod_copy(const char *path) {
  time_t now = time(NULL);
  pthread_mutex_lock(&copies_lock);
  for (struct copy **pp = &copies; *pp; pp = &(*pp)->next) {
    struct copy *c = *pp;
    if (strcmp(c->path, path)) continue;
    if (c->expires > now) {
      pthread_mutex_unlock(&copies_lock);
      return c;
    }
    break; /* stale: fetched again below; the old one stays (a thread may still use it) */
  }
  pthread_mutex_unlock(&copies_lock);
  struct copy *c = fetch(path);
  if (!c) return NULL;
  c->expires = now + COPY_TTL;
  pthread_mutex_lock(&copies_lock);
  c->next = copies;
  copies = c;
  /* older copies of the same path: freed once no call can still be using them */
  for (struct copy **pp = &c->next; *pp;) {
    struct copy *old = *pp;
    if (!strcmp(old->path, path) && old->expires + 60 < now) {
      *pp = old->next;
      free(old->path);
      free(old->data);
      free(old);
    } else {
      pp = &old->next;
    }
  }
  pthread_mutex_unlock(&copies_lock);
  return c;
}

/** A read-only descriptor on a sealed memfd holding the copy, with the pod file's mode and mtime. */
static int copy_fd(const struct copy *c) {
  int mfd = memfd_create(base_name(c->path), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mfd < 0) return -1;
  size_t at = 0;
  while (at < c->len) {
    ssize_t w = write(mfd, c->data + at, c->len - at);
    if (w <= 0) {
      close(mfd);
      return -1;
    }
    at += (size_t)w;
  }
  fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", mfd);
  int ro = open(self, O_RDONLY | O_CLOEXEC); /* a read-only open file description of its own */
  fchmod(mfd, c->mode & 07777);
  struct timespec t[2];
  t[0].tv_sec = t[1].tv_sec = (time_t)(c->mtime_ms / 1000);
  t[0].tv_nsec = t[1].tv_nsec = (long)((c->mtime_ms - (double)t[0].tv_sec * 1000) * 1e6);
  futimens(mfd, t);
  fcntl(mfd, F_ADD_SEALS, F_SEAL_SEAL);
  close(mfd);
  return ro;
}

/* ---- open ------------------------------------------------------------------------------------ */

static int open_args(struct notif *n, int *dirfd, uint64_t *path, uint64_t *flags) {
  switch (NR(n)) {
#ifdef __NR_open
    case __NR_open:
      *dirfd = AT_FDCWD, *path = ARG(n, 0), *flags = ARG(n, 1);
      return 0;
    case __NR_creat:
      *dirfd = AT_FDCWD, *path = ARG(n, 0), *flags = O_CREAT | O_WRONLY | O_TRUNC;
      return 0;
#endif
    case __NR_openat:
      *dirfd = (int)ARG(n, 0), *path = ARG(n, 1), *flags = ARG(n, 2);
      return 0;
#ifdef __NR_openat2
    case __NR_openat2: {
      struct open_how how;
      if (ARG(n, 3) < sizeof(uint64_t) || mem_read(PID(n), &how, ARG(n, 2), sizeof(uint64_t)) != sizeof(uint64_t)) return -1;
      *dirfd = (int)ARG(n, 0), *path = ARG(n, 1), *flags = how.flags;
      return 0;
    }
#endif
  }
  return -1;
}

static void do_open(struct notif *n) {
  int dirfd;
  uint64_t path, flags;
  char abs[PATH_CAP];
  if (open_args(n, &dirfd, &path, &flags) < 0 || !served_arg(n, dirfd, path, abs)) return answer_continue(n);
  struct copy *c = pod_copy(abs);
  if (!c || c->err == -1) return answer_continue(n);
  if (c->err) return answer_errno(n, c->err);
  if ((flags & O_DIRECTORY)) return answer_errno(n, ENOTDIR);
  int fd = copy_fd(c);
  if (fd < 0) return answer_errno(n, EIO);
  if (notif_valid(n)) answer_fd(n, fd, (flags & O_CLOEXEC) != 0);
  close(fd);
  debug_log("open %s: the pod's copy", abs);
}

void on_open(struct notif *n) {
  int dirfd;
  uint64_t path, flags;
  char abs[PATH_CAP];
  if (open_args(n, &dirfd, &path, &flags) < 0 || !served_arg(n, dirfd, path, abs)) return answer_continue(n);
  /* the pod's file is read-only here: never write the local one */
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC))) return answer_errno(n, EROFS);
  offload(n, do_open);
}

/* ---- stat and access ------------------------------------------------------------------------- */

static int stat_args(struct notif *n, int *dirfd, uint64_t *path) {
  switch (NR(n)) {
#ifdef __NR_stat
    case __NR_stat:
    case __NR_lstat:
    case __NR_access:
      *dirfd = AT_FDCWD, *path = ARG(n, 0);
      return 0;
#endif
    case __NR_newfstatat:
    case __NR_statx:
    case __NR_faccessat:
#ifdef __NR_faccessat2
    case __NR_faccessat2:
#endif
      *dirfd = (int)ARG(n, 0), *path = ARG(n, 1);
      return 0;
  }
  return -1;
}

static void do_stat(struct notif *n) {
  int dirfd;
  uint64_t path;
  char abs[PATH_CAP];
  if (stat_args(n, &dirfd, &path) < 0 || !served_arg(n, dirfd, path, abs)) return answer_continue(n);
  struct copy *c = pod_copy(abs);
  if (!c || c->err == -1) return answer_continue(n);
  if (c->err) return answer_errno(n, c->err);
  int nr = (int)NR(n);
  int access_mode = -1;
#ifdef __NR_access
  if (nr == __NR_access) access_mode = (int)ARG(n, 1);
#endif
  if (nr == __NR_faccessat) access_mode = (int)ARG(n, 2);
#ifdef __NR_faccessat2
  if (nr == __NR_faccessat2) access_mode = (int)ARG(n, 2);
#endif
  if (access_mode >= 0) {
    if (access_mode & W_OK) return answer_errno(n, EROFS);
    if ((access_mode & X_OK) && !(c->mode & 0111)) return answer_errno(n, EACCES);
    return answer_value(n, 0);
  }
  int fd = copy_fd(c);
  if (fd < 0) return answer_errno(n, EIO);
  int bad = 0;
  if (nr == __NR_statx) {
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH, (unsigned)ARG(n, 3), &sx) < 0 || mem_write(PID(n), ARG(n, 4), &sx, sizeof sx) < 0) bad = 1;
  } else {
    struct stat st;
    uint64_t buf = nr == __NR_newfstatat ? ARG(n, 2) : ARG(n, 1);
    if (fstat(fd, &st) < 0 || mem_write(PID(n), buf, &st, sizeof st) < 0) bad = 1;
  }
  close(fd);
  if (bad) answer_errno(n, EFAULT);
  else answer_value(n, 0);
}

void on_stat(struct notif *n) {
  int dirfd;
  uint64_t path;
  char abs[PATH_CAP];
  if (stat_args(n, &dirfd, &path) < 0) return answer_continue(n);
  /* fstatat(fd, "", AT_EMPTY_PATH) is about the descriptor: left to the kernel */
  if (!served_arg(n, dirfd, path, abs)) return answer_continue(n);
  offload(n, do_stat);
}

/* ---- changes: EROFS -------------------------------------------------------------------------- */

void on_change(struct notif *n) {
  char abs[PATH_CAP];
  int nr = (int)NR(n), hit = 0;
  switch (nr) {
#ifdef __NR_rename
    case __NR_rename:
    case __NR_link:
      hit = served_arg(n, AT_FDCWD, ARG(n, 0), abs) || served_arg(n, AT_FDCWD, ARG(n, 1), abs);
      break;
    case __NR_symlink:
      hit = served_arg(n, AT_FDCWD, ARG(n, 1), abs);
      break;
    case __NR_unlink:
    case __NR_chmod:
    case __NR_chown:
    case __NR_lchown:
    case __NR_utime:
    case __NR_utimes:
#endif
    case __NR_truncate:
      hit = served_arg(n, AT_FDCWD, ARG(n, 0), abs);
      break;
    case __NR_renameat:
    case __NR_renameat2:
    case __NR_linkat:
      hit = served_arg(n, (int)ARG(n, 0), ARG(n, 1), abs) || served_arg(n, (int)ARG(n, 2), ARG(n, 3), abs);
      break;
    case __NR_symlinkat:
      hit = served_arg(n, (int)ARG(n, 1), ARG(n, 2), abs);
      break;
    case __NR_unlinkat:
    case __NR_fchmodat:
    case __NR_fchownat:
      hit = served_arg(n, (int)ARG(n, 0), ARG(n, 1), abs);
      break;
    case __NR_utimensat:
      hit = ARG(n, 1) && served_arg(n, (int)ARG(n, 0), ARG(n, 1), abs);
      break;
  }
  if (hit) answer_errno(n, EROFS);
  else answer_continue(n);
}

/* ---- uname ----------------------------------------------------------------------------------- */

void on_uname(struct notif *n) {
  struct utsname u;
  if (!cfg.hostname || uname(&u) < 0) return answer_continue(n);
  memset(u.nodename, 0, sizeof u.nodename);
  snprintf(u.nodename, sizeof u.nodename, "%s", cfg.hostname);
  if (mem_write(PID(n), ARG(n, 0), &u, sizeof u) < 0) return answer_errno(n, EFAULT);
  answer_value(n, 0);
}
