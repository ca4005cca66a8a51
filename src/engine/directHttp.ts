// HTTP requests on connections the engine chose itself (a tunnel to the pod, the debuggee's local
// port). Inside VS Code's extension host node:http's and node:https's request() and get() are
// replaced by a version that adds a proxy agent (the http.proxySupport setting), and an agent wins
// over createConnection: the request would then be dialled to its Host (e.g. 127.0.0.1:80) instead
// of the given connection, or through the user's proxy. The ClientRequest class itself is left
// alone (with createConnection and no agent Node uses no agent at all), so the engine builds its
// requests with it: the same behaviour in the CLI and in VS Code, whatever the proxy settings.
import { ClientRequest, type RequestOptions } from "node:http";
import { globalAgent as httpsGlobalAgent, type RequestOptions as HttpsRequestOptions } from "node:https";

/** `tls`: to an HTTPS server (as https.request would), with the given https.Agent or a new one. */
export function directRequest(options: (RequestOptions | HttpsRequestOptions) & { tls?: boolean }): ClientRequest {
  const { tls, ...rest } = options;
  return new ClientRequest(tls ? ({ ...rest, protocol: "https:", _defaultAgent: httpsGlobalAgent } as RequestOptions) : rest);
}
