// Which handler answers which trapped system call.
#include <asm/unistd.h>
#include "filecalls.h"
#include "netcalls.h"
#include "supervisor.h"

void dispatch(struct notif *n) {
  switch (n->req.data.nr) {
    case __NR_connect: return on_connect(n);
    case __NR_sendto: return on_sendto(n);
    case __NR_sendmsg: return on_sendmsg(n);
    case __NR_sendmmsg: return on_sendmmsg(n);
    case __NR_recvfrom: return on_recvfrom(n);
    case __NR_recvmsg: return on_recvmsg(n);
    case __NR_getpeername: return on_getpeername(n);
    case __NR_listen: return on_listen(n);
#ifdef __NR_open
    case __NR_open:
    case __NR_creat:
#endif
    case __NR_openat:
#ifdef __NR_openat2
    case __NR_openat2:
#endif
      return on_open(n);
#ifdef __NR_stat
    case __NR_stat:
    case __NR_lstat:
    case __NR_access:
#endif
    case __NR_newfstatat:
    case __NR_statx:
    case __NR_faccessat:
#ifdef __NR_faccessat2
    case __NR_faccessat2:
#endif
      return on_stat(n);
    case __NR_uname: return on_uname(n);
    default: return on_change(n);
  }
}
