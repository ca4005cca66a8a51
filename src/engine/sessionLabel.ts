// How a session names itself to the agent, and so to other developers in refusals ("alice@laptop
// steals port 8080 with ..."): who runs it, where. The same for the CLI and the extension.
import { hostname, userInfo } from "node:os";

/** "user@host": the login name as the shell says it (USER, USERNAME), else the uid's, and the host name. */
export function sessionLabel(env: NodeJS.ProcessEnv = process.env): string {
  let user = env.USER || env.USERNAME;
  if (!user) {
    try {
      user = userInfo().username;
    } catch {
      // a uid with no passwd entry (some containers)
    }
  }
  return `${user || "unknown"}@${hostname() || "unknown-host"}`;
}
