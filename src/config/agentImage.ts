// The agent image: the name Tether asks the cluster for when agent.image is not set, and the one text
// that says what to do when the cluster cannot pull it (a failed agent start and `doctor` print it;
// the README's "The agent image" section says the same at length).
import { TETHER_VERSION } from "../protocol/version";

/** The agent image of this version of Tether (`npm run agent-image` builds it under this name). */
export const DEFAULT_AGENT_IMAGE = `tether/agent:${TETHER_VERSION}`;

export function imagePullAdvice(image: string): string {
  return (
    `the cluster cannot pull ${image}. Build the agent image with \`npm run agent-image\` in Tether's repository, ` +
    `then push it to a registry the cluster pulls from (\`npm run agent-image -- --push REGISTRY/NAME:TAG\`) ` +
    `or load the archive into a local cluster (\`kind load image-archive\`, \`k3d image import\`, \`minikube image load\`), ` +
    `and set agent.image in .tether/config.json (in VS Code: the tether.agent.image setting) to its name; ` +
    `unset, Tether uses ${DEFAULT_AGENT_IMAGE}`
  );
}
