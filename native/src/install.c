// Installs the Tether seccomp filter in the calling process and hands its listener to the
// supervisor. Freestanding (raw system calls, no libc), so libtether.so depends on no glibc symbol
// version and loads into any program, old or new; tether-shim links the same code statically.
//
// Order matters: the unix socket is connected and the supervisor has checked that it can reach this
// process (pidfd_getfd, process_vm_readv) BEFORE the filter exists, because from then on every
// trapped system call waits for the supervisor. The handshake itself uses read/write, which the
// filter never traps. If anything fails before the filter is installed, the caller gets a reason
// and the process runs without interception.
#include <stddef.h>
#include <stdint.h>
#include <linux/prctl.h>
#include <linux/un.h>
#include <linux/socket.h>
#include <asm/unistd.h>
#include "tether.h"
#include "sys.h"
#include "install.h"

#ifndef AF_UNIX
#define AF_UNIX 1
#endif
#define T_SOCK_STREAM 1
#define T_SOCK_CLOEXEC 02000000
#define T_SOL_SOCKET 1
#define T_SO_RCVTIMEO 20
#define T_EINVAL 22
#define T_EINTR 4
#define T_ESRCH 3

long tether_syscall(long n, long a, long b, long c, long d, long e, long f) {
  long ret;
#if defined(__x86_64__)
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  ret = x0;
#endif
  return ret; /* -errno on failure */
}
#define S(n, a, b, c, d, e, f) tether_syscall((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

static size_t slen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

static char *fmt_u(char *p, unsigned long v) {
  char tmp[24];
  int n = 0;
  do tmp[n++] = (char)('0' + v % 10); while ((v /= 10) != 0);
  while (n) *p++ = tmp[--n];
  return p;
}

static char *put(char *p, const char *s) {
  while (*s) *p++ = *s++;
  return p;
}

/* ---- the filter ------------------------------------------------------------------------------ */

#define MAXI 160
struct prog {
  struct sock_filter ins[MAXI];
  int label_at[MAXI]; /* for a jump: label index of jt (and jf below) or -1 */
  int jt_label[MAXI], jf_label[MAXI];
  int labels[8];
  int n;
};
enum { L_ALLOW, L_NOTIFY, L_PRCTL, L_ADDR4, L_COUNT };

static void emit(struct prog *p, uint16_t code, uint32_t k, int jt, int jf) {
  if (p->n >= MAXI) return;
  p->ins[p->n] = (struct sock_filter){code, 0, 0, k};
  p->jt_label[p->n] = jt;
  p->jf_label[p->n] = jf;
  p->n++;
}
static void label(struct prog *p, int l) { p->labels[l] = p->n; }
#define NEXT (-1)
#define LD(off) emit(&p, BPF_LD | BPF_W | BPF_ABS, (off), NEXT, NEXT)
#define RET(k) emit(&p, BPF_RET | BPF_K, (k), NEXT, NEXT)
#define JEQ(k, t, f) emit(&p, BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))
#define TRAP(nr) JEQ((nr), L_NOTIFY, NEXT)
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)

static int build(struct prog *pp, int features) {
  struct prog p;
  for (int i = 0; i < L_COUNT; i++) p.labels[i] = -1;
  p.n = 0;
  LD(offsetof(struct seccomp_data, arch));
  JEQ(TETHER_AUDIT_ARCH, NEXT, L_ALLOW); /* another ABI (i386 through int 0x80): not intercepted */
  LD(offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
  emit(&p, BPF_JMP | BPF_JGE | BPF_K, 0x40000000, L_ALLOW, NEXT); /* x32 */
#endif
  JEQ(__NR_prctl, L_PRCTL, NEXT);
  if (features & TETHER_FEAT_NET) {
    /* sendto/recvfrom without an address stay in the kernel: connected sockets, the common case */
    JEQ(__NR_sendto, L_ADDR4, NEXT);
    JEQ(__NR_recvfrom, L_ADDR4, NEXT);
    TRAP(__NR_connect);
    TRAP(__NR_sendmsg);
    TRAP(__NR_recvmsg);
    TRAP(__NR_sendmmsg);
    TRAP(__NR_getpeername);
    TRAP(__NR_listen);
  }
  if (features & TETHER_FEAT_FILES) {
    TRAP(__NR_openat);
#ifdef __NR_openat2
    TRAP(__NR_openat2);
#endif
#ifdef __NR_open
    TRAP(__NR_open);
    TRAP(__NR_creat);
    TRAP(__NR_stat);
    TRAP(__NR_lstat);
    TRAP(__NR_access);
    TRAP(__NR_rename);
    TRAP(__NR_unlink);
    TRAP(__NR_chmod);
    TRAP(__NR_chown);
    TRAP(__NR_lchown);
    TRAP(__NR_link);
    TRAP(__NR_symlink);
    TRAP(__NR_utime);
    TRAP(__NR_utimes);
#endif
    TRAP(__NR_newfstatat);
    TRAP(__NR_statx);
    TRAP(__NR_faccessat);
#ifdef __NR_faccessat2
    TRAP(__NR_faccessat2);
#endif
    TRAP(__NR_truncate);
    TRAP(__NR_renameat);
    TRAP(__NR_renameat2);
    TRAP(__NR_unlinkat);
    TRAP(__NR_fchmodat);
    TRAP(__NR_fchownat);
    TRAP(__NR_linkat);
    TRAP(__NR_symlinkat);
    TRAP(__NR_utimensat);
  }
  if (features & TETHER_FEAT_UNAME) TRAP(__NR_uname);
  RET(SECCOMP_RET_ALLOW); /* everything else */
  /* the address argument (args[4]) of sendto/recvfrom: NULL -> allow (classic BPF jumps only forward,
     so the blocks come after the list and the shared returns last) */
  label(&p, L_ADDR4);
  LD(ARG_LO(4));
  JEQ(0, NEXT, L_NOTIFY);
  LD(ARG_HI(4));
  JEQ(0, L_ALLOW, L_NOTIFY);
  /* prctl(TETHER_MAGIC_OPTION, TETHER_MAGIC_ARG): "a Tether filter is here" */
  label(&p, L_PRCTL);
  LD(ARG_LO(0));
  JEQ(TETHER_MAGIC_OPTION, NEXT, L_ALLOW);
  LD(ARG_LO(1));
  JEQ(TETHER_MAGIC_ARG, NEXT, L_ALLOW);
  RET(SECCOMP_RET_ERRNO | TETHER_MAGIC_ERRNO);
  label(&p, L_ALLOW);
  RET(SECCOMP_RET_ALLOW);
  label(&p, L_NOTIFY);
  RET(SECCOMP_RET_USER_NOTIF);
  if (p.n >= MAXI) return -1;
  for (int i = 0; i < p.n; i++) {
    if ((p.ins[i].code & 0x07) != BPF_JMP) continue;
    int jt = p.jt_label[i] == NEXT ? i + 1 : p.labels[p.jt_label[i]];
    int jf = p.jf_label[i] == NEXT ? i + 1 : p.labels[p.jf_label[i]];
    if (jt <= i || jf <= i || jt - i - 1 > 255 || jf - i - 1 > 255) return -1;
    p.ins[i].jt = (uint8_t)(jt - i - 1);
    p.ins[i].jf = (uint8_t)(jf - i - 1);
  }
  *pp = p;
  return 0;
}

/* ---- the handshake --------------------------------------------------------------------------- */

static const char probe[] = TETHER_PROBE;

static long read_line(int fd, char *buf, size_t cap) {
  size_t n = 0;
  while (n + 1 < cap) {
    long r = S(__NR_read, fd, buf + n, 1, 0, 0, 0);
    if (r == -T_EINTR) continue;
    if (r <= 0) return r < 0 ? r : -1;
    if (buf[n] == '\n') break;
    n++;
  }
  buf[n] = 0;
  return (long)n;
}

static long write_all(int fd, const char *s, size_t n) {
  while (n) {
    long r = S(__NR_write, fd, s, n, 0, 0, 0);
    if (r == -T_EINTR) continue;
    if (r <= 0) return -1;
    s += r;
    n -= (size_t)r;
  }
  return 0;
}

int tether_installed(void) {
  return S(__NR_prctl, TETHER_MAGIC_OPTION, TETHER_MAGIC_ARG, 0, 0, 0, 0) == -TETHER_MAGIC_ERRNO;
}

static int parse_spec(const char *spec, long *pid, const char **path) {
  long v = 0;
  const char *s = spec;
  if (*s < '0' || *s > '9') return -1;
  while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
  if (*s != ':' || s[1] != '/') return -1;
  *pid = v;
  *path = s + 1;
  return 0;
}

int tether_install(const char *spec, char *why, size_t why_cap) {
  long sup;
  const char *path;
#define FAIL(msg)                                                   \
  do {                                                              \
    size_t i_ = 0;                                                  \
    for (const char *m_ = (msg); *m_ && i_ + 1 < why_cap; m_++) why[i_++] = *m_; \
    why[i_] = 0;                                                    \
    goto fail;                                                      \
  } while (0)
  int fd = -1;
  if (parse_spec(spec, &sup, &path) < 0) FAIL(TETHER_NATIVE_ENV " is malformed");
  /* Yama (ptrace_scope 1) lets only an ancestor or a declared tracer read this process's memory */
  S(__NR_prctl, PR_SET_PTRACER, sup, 0, 0, 0, 0);
  if (tether_installed()) return 1;
  struct sockaddr_un addr;
  size_t plen = slen(path);
  if (plen >= sizeof addr.sun_path) FAIL("the supervisor's socket path is too long");
  for (size_t i = 0; i < sizeof addr; i++) ((char *)&addr)[i] = 0;
  addr.sun_family = AF_UNIX;
  for (size_t i = 0; i < plen; i++) addr.sun_path[i] = path[i];
  fd = (int)S(__NR_socket, AF_UNIX, T_SOCK_STREAM | T_SOCK_CLOEXEC, 0, 0, 0, 0);
  if (fd < 0) FAIL("cannot create a unix socket");
  if (S(__NR_connect, fd, &addr, sizeof addr, 0, 0, 0) < 0) FAIL("the supervisor is not running (its socket refused the connection)");
  struct {
    long sec, usec;
  } tv = {10, 0};
  S(__NR_setsockopt, fd, T_SOL_SOCKET, T_SO_RCVTIMEO, &tv, sizeof tv, 0);
  char line[256], *p = line;
  p = put(p, "hello ");
  p = fmt_u(p, (unsigned long)fd);
  p = put(p, " ");
  p = fmt_u(p, (unsigned long)(uintptr_t)probe);
  p = put(p, "\n");
  if (write_all(fd, line, (size_t)(p - line)) < 0) FAIL("the supervisor closed the connection");
  if (read_line(fd, line, sizeof line) < 0) FAIL("the supervisor did not answer");
  if (line[0] != 'o' || line[1] != 'k' || line[2] != ' ') FAIL(line[0] == 'n' && line[1] == 'o' && line[2] == ' ' ? line + 3 : "the supervisor refused");
  int features = 0;
  for (const char *s = line + 3; *s >= '0' && *s <= '9'; s++) features = features * 10 + (*s - '0');
  struct prog prog;
  if (build(&prog, features) < 0) FAIL("internal: the filter does not fit");
  struct sock_fprog fprog = {(unsigned short)prog.n, prog.ins};
  if (S(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0) < 0) FAIL("prctl(PR_SET_NO_NEW_PRIVS) failed");
  /* newest flags first: all threads, and signals do not restart a call the supervisor already took */
  static const unsigned long flag_sets[] = {
      SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
      SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
      SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
      SECCOMP_FILTER_FLAG_NEW_LISTENER,
  };
  long listener = -T_EINVAL;
  for (unsigned i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
    listener = S(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flag_sets[i], &fprog, 0, 0, 0);
    if (listener >= 0 || (listener != -T_EINVAL && listener != -T_ESRCH)) break;
  }
  if (listener < 0) FAIL("seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER) failed: seccomp user notification is forbidden or unsupported here");
  /* from here on, failing leaves a filter without a supervisor: trapped calls would fail with ENOSYS */
  p = put(line, "listener ");
  p = fmt_u(p, (unsigned long)listener);
  p = put(p, "\n");
  long ok = write_all(fd, line, (size_t)(p - line));
  if (ok == 0) ok = read_line(fd, line, sizeof line);
  S(__NR_close, listener, 0, 0, 0, 0, 0);
  S(__NR_close, fd, 0, 0, 0, 0, 0);
  if (ok < 0 || line[0] != 'o') {
    for (size_t i = 0; i + 1 < why_cap && "the supervisor did not take the filter's listener"[i]; i++) why[i] = "the supervisor did not take the filter's listener"[i], why[i + 1] = 0;
    return -2;
  }
  return 0;
fail:
  if (fd >= 0) S(__NR_close, fd, 0, 0, 0, 0, 0);
  return -1;
#undef FAIL
}

void tether_warn(const char *who, const char *why) {
  char buf[512], *p = buf, *end = buf + sizeof buf - 2;
  const char *parts[] = {"[tether] warning: the native layer is not active in ", who, " (", why,
                         "); it runs without interception: outgoing traffic, DNS and files stay local\n"};
  for (unsigned i = 0; i < 5; i++)
    for (const char *s = parts[i]; *s && p < end; s++) *p++ = *s;
  write_all(2, buf, (size_t)(p - buf));
}
