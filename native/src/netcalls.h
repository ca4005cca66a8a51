#ifndef TETHER_NETCALLS_H
#define TETHER_NETCALLS_H
#include "supervisor.h"
void on_connect(struct notif *n);
void on_connect_without_engine(struct notif *n);
void on_sendto(struct notif *n);
void on_sendmsg(struct notif *n);
void on_sendmmsg(struct notif *n);
void on_recvfrom(struct notif *n);
void on_recvmsg(struct notif *n);
void on_getpeername(struct notif *n);
void on_listen(struct notif *n);
#endif
