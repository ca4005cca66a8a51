// tether-shim -- PROGRAM [ARGS...]: installs the Tether filter, then execs PROGRAM (found on PATH).
// The filter survives exec and is inherited by every child, so a static Go binary, a JVM or a
// shell script are covered from their first instruction. Without TETHER_NATIVE, or when the filter
// cannot be installed, PROGRAM runs as is after one warning.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "install.h"
#include "tether.h"

int main(int argc, char **argv) {
  int first = 1;
  if (first < argc && strcmp(argv[first], "--") == 0) first++;
  if (first >= argc) {
    fprintf(stderr, "usage: tether-shim [--] PROGRAM [ARGS...]\n");
    return 127;
  }
  const char *spec = getenv(TETHER_NATIVE_ENV);
  if (spec && *spec && *spec != '!') {
    char why[256];
    int r = tether_install(spec, why, sizeof why);
    if (r < 0) tether_warn(argv[first], why);
    if (r == -1) {
      /* children inherit the mark and run without interception, quietly */
      char *marked = malloc(strlen(spec) + 2);
      if (marked) {
        marked[0] = '!';
        strcpy(marked + 1, spec);
        setenv(TETHER_NATIVE_ENV, marked, 1);
      }
    }
  }
  execvp(argv[first], argv + first);
  fprintf(stderr, "tether-shim: cannot run %s: %s\n", argv[first], strerror(errno));
  return errno == ENOENT ? 127 : 126;
}
