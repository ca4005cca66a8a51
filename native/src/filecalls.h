#ifndef TETHER_FILECALLS_H
#define TETHER_FILECALLS_H
#include "supervisor.h"
void on_open(struct notif *n);
void on_stat(struct notif *n);
void on_change(struct notif *n);
void on_uname(struct notif *n);
#endif
