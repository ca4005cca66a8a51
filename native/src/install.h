#ifndef TETHER_INSTALL_H
#define TETHER_INSTALL_H
#include <stddef.h>
/** 0: installed; 1: a Tether filter was already there (inherited); < 0: not installed (why says why). */
int tether_install(const char *spec, char *why, size_t why_cap);
int tether_installed(void);
void tether_warn(const char *who, const char *why);
long tether_syscall(long n, long a, long b, long c, long d, long e, long f);
#endif
