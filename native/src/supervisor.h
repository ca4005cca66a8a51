// Shared between the supervisor's main loop and its system call handlers.
#ifndef TETHER_SUPERVISOR_H
#define TETHER_SUPERVISOR_H
#include <stdint.h>
#include <sys/types.h>
#include "sys.h"

struct listener {
  int fd;
  int refs; /* the main loop's own plus one per notification in flight */
};

/** One trapped system call, waiting for an answer. */
struct notif {
  struct listener *l;
  struct seccomp_notif req;
};

struct config {
  char **files; /* served from the pod: exact paths, or prefixes ending in "/" */
  int nfiles;
  int has_prefix;
  char *hostname;
  int debug;
};
extern struct config cfg;

void listener_put(struct listener *l);

/* answers */
void answer_continue(struct notif *n);
void answer_value(struct notif *n, long value);
void answer_errno(struct notif *n, int err);
/** Installs fd in the debuggee and makes it the call's result. */
void answer_fd(struct notif *n, int fd, int cloexec);
int notif_valid(struct notif *n);

/* the debuggee's memory and descriptors */
ssize_t mem_read(pid_t pid, void *dst, uint64_t addr, size_t len);
ssize_t mem_write(pid_t pid, uint64_t addr, const void *src, size_t len);
/** Reads a NUL-terminated string; returns its length, or -errno. */
long mem_read_str(pid_t pid, uint64_t addr, char *buf, size_t cap);
/** A duplicate of the debuggee's descriptor (the same open file description), or -errno. */
int take_fd(pid_t tid, int fd);

/** Runs fn(n) on a new thread (for anything that waits on the engine or on the network). */
void offload(struct notif *n, void (*fn)(struct notif *));

void dispatch(struct notif *n);
void warn_once(const char *key, const char *fmt, ...);
void debug_log(const char *fmt, ...);
#endif
