// Constants shared by the injector (libtether.so, tether-shim) and the supervisor.
#ifndef TETHER_H
#define TETHER_H

/** "<supervisor pid>:<unix socket path>", set by the engine for the debuggee and inherited by its children. */
#define TETHER_NATIVE_ENV "TETHER_NATIVE"

/* An installed Tether filter answers prctl(TETHER_MAGIC_OPTION, TETHER_MAGIC_ARG) with this errno, so
   a child (which inherits the filter over fork and exec) never stacks a second one. */
#define TETHER_MAGIC_OPTION 0x54455448u /* "TETH" */
#define TETHER_MAGIC_ARG 0x4e415456u    /* "NATV" */
#define TETHER_MAGIC_ERRNO 3141

/* Features the supervisor asks the injector to trap (the filter stays as narrow as the session needs). */
#define TETHER_FEAT_NET 1   /* connect, sendto/sendmsg with an address, recvfrom/recvmsg, getpeername, listen */
#define TETHER_FEAT_FILES 2 /* open/stat/access of served paths, EROFS for changes to them */
#define TETHER_FEAT_UNAME 4 /* uname: the pod's hostname */

/* The handshake: "hello <fd of this socket> <address of probe bytes>\n" -> "ok <features>\n" | "no <reason>\n",
   then "listener <fd>\n" -> "ok\n". The supervisor takes both descriptors with pidfd_getfd. */
#define TETHER_PROBE "tether-probe-1"

#endif
