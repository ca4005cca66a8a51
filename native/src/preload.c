// libtether.so: loaded with LD_PRELOAD into a dynamically linked debuggee, its constructor installs
// the Tether filter before main() runs. In a child of an intercepted process the filter is already
// there (inherited over fork and exec): the constructor then only declares the supervisor as this
// process's tracer (Yama) and returns. Never crashes the program: on failure one warning, no filter.
#include <asm/unistd.h>
#include "install.h"
#include "tether.h"

extern char **environ __attribute__((weak));

static const char *find_env(const char *name) {
  if (!&environ || !environ) return 0;
  for (char **e = environ; *e; e++) {
    const char *a = *e, *b = name;
    while (*b && *a == *b) a++, b++;
    if (!*b && *a == '=') return a + 1;
  }
  return 0;
}

/* gcc may emit calls to these for struct copies and zeroing; -nostdlib has no libc to provide them */
void *memset(void *d, int c, unsigned long n) {
  unsigned char *p = d;
  while (n--) *p++ = (unsigned char)c;
  return d;
}
void *memcpy(void *d, const void *s, unsigned long n) {
  unsigned char *p = d;
  const unsigned char *q = s;
  while (n--) *p++ = *q++;
  return d;
}

__attribute__((constructor)) static void tether_preload(void) {
  const char *spec = find_env(TETHER_NATIVE_ENV);
  /* "!...": an ancestor already failed and said so; its children run without interception quietly */
  if (!spec || !*spec || *spec == '!') return;
  char why[256];
  int r = tether_install(spec, why, sizeof why);
  if (r >= 0) return;
  char who[32] = "pid ", *p = who + 4;
  unsigned long pid = (unsigned long)tether_syscall(__NR_getpid, 0, 0, 0, 0, 0, 0);
  char tmp[24];
  int n = 0;
  do tmp[n++] = (char)('0' + pid % 10); while ((pid /= 10) != 0);
  while (n) *p++ = tmp[--n];
  *p = 0;
  tether_warn(who, why);
  if (r == -1) *(char *)spec = '!'; /* the environment's own bytes: children inherit the mark */
}
