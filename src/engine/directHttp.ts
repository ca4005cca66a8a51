// HTTP requests on connections the engine chose itself (a tunnel to the pod, the debuggee's local
// port). Inside VS Code's extension host node:http's request() and get() are replaced by a version
// that adds a proxy agent (the http.proxySupport setting), and an agent wins over createConnection:
// the request would then be dialled to its Host (e.g. 127.0.0.1:80) instead of the given connection.
// The ClientRequest class itself is left alone, and with createConnection and no agent Node uses no
// agent at all, so the engine builds its requests with it: the same behaviour in the CLI, in VS
// Code, whatever the proxy settings.
import { ClientRequest, type RequestOptions } from "node:http";

export function directRequest(options: RequestOptions): ClientRequest {
  return new ClientRequest(options);
}
