// What a target is, decided once: the kinds Tether can run as, the path syntax
// KIND/NAME[/container/CONTAINER], and the two ways to write one (a string, or an object with a
// namespace and a container). The config schema, target resolution in the cluster, discovery, the
// mirrord translation, the views and the CLI all go through here. No zod: the extension's activation
// bundle uses it too.
import { TetherError } from "../protocol/error";

/**
 * The kinds a target may name ("rollout": an Argo Rollout, where its CRD is installed). A new kind is
 * added here, then where the compiler asks for it: kube/cluster.ts needs to know how to find its pods.
 */
export const TARGET_KINDS = ["pod", "deployment", "statefulset", "replicaset", "job", "service", "rollout"] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

const NAME = "[a-z0-9]([-a-z0-9.]*[a-z0-9])?";
const CONTAINER = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
/** "targetless" or KIND/NAME[/container/CONTAINER] (what the config schema accepts). */
export const TARGET_PATH_PATTERN = new RegExp(`^(targetless|(${TARGET_KINDS.join("|")})/${NAME}(/container/${CONTAINER})?)$`);
export const TARGET_PATH_HELP = `a target is "targetless" or KIND/NAME[/container/CONTAINER] with KIND one of ${TARGET_KINDS.join(", ")}`;

/** A target as users write it: "deployment/api", or { path, namespace?, container? }. */
export type TargetInput = string | { path: string; namespace?: string; container?: string };

/** A target in its one normal form. */
export interface Target {
  kind: TargetKind;
  name: string;
  /** The container: the object's `container`, else the path's /container/ part; undefined: the pod's default (kube/containers.ts). */
  container?: string;
  /** undefined: the context's namespace. */
  namespace?: string;
}

export function isTargetKind(kind: string): kind is TargetKind {
  return (TARGET_KINDS as readonly string[]).includes(kind);
}

/** "KIND/NAME[/container/CONTAINER]" as kind, name and container; throws a CONFIG_INVALID TetherError. */
export function parseTargetPath(path: string): Pick<Target, "kind" | "name" | "container"> {
  const m = /^([a-z]+)\/([^/]+)(?:\/container\/([^/]+))?$/.exec(path);
  if (!m || !isTargetKind(m[1]!)) throw new TetherError("CONFIG_INVALID", `target "${path}" is not KIND/NAME (${TARGET_KINDS.join(", ")})`);
  return { kind: m[1], name: m[2]!, ...(m[3] ? { container: m[3] } : {}) };
}

/** The normal form of a configured target; undefined when there is none or it is "targetless". */
export function normalizeTarget(input: TargetInput | undefined): Target | undefined {
  if (input === undefined) return undefined;
  const { path, namespace, container } = typeof input === "string" ? { path: input, namespace: undefined, container: undefined } : input;
  if (!path || path === "targetless") return undefined;
  const parsed = parseTargetPath(path);
  return { ...parsed, ...(container ? { container } : {}), ...(namespace ? { namespace } : {}) };
}

/** KIND/NAME[/container/CONTAINER] of a target (the namespace is not part of the path). */
export function targetPath(t: Pick<Target, "kind" | "name" | "container">): string {
  return `${t.kind}/${t.name}${t.container ? `/container/${t.container}` : ""}`;
}

/** How a target is shown: "demo/deployment/api", "deployment/api" without a namespace, or `none`. */
export function targetLabel(input: TargetInput | Target | undefined, none = "no target"): string {
  if (input === "targetless" || (typeof input === "object" && "path" in input && input.path === "targetless")) return "targetless";
  const t = input !== undefined && typeof input === "object" && "kind" in input ? input : normalizeTarget(input);
  return t ? `${t.namespace ? `${t.namespace}/` : ""}${targetPath(t)}` : none;
}
