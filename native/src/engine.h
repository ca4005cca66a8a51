// The supervisor's end of the runtime wire (src/protocol/runtimeWire.ts): JSON lines over loopback
// TCP to the engine, the first line { token }. Many threads call at once; one reader thread hands
// each reply to the thread waiting for its id.
#ifndef TETHER_ENGINE_H
#define TETHER_ENGINE_H
#include "json.h"

int engine_connect(const char *addr, const char *token);
/** Sends {"id":N,<fields>} and waits for the reply; NULL when the engine is gone or did not answer. */
json *engine_call(const char *fields, int timeout_ms);
/** Sends {"id":N,<fields>} without waiting. */
void engine_notify(const char *fields);
int engine_alive(void);
/** Set by the reader thread when the engine goes away; the main loop watches it. */
extern int engine_gone_fd;
#endif
