// Who may do what: users (from client certificates or bearer tokens) and a small RBAC-like rule
// table, with the Forbidden messages the real API server writes.
import { ApiError } from "./apiError.js";

export interface UserInfo {
  name: string;
  groups: string[];
}

export interface Rule {
  verbs: string[]; // "*" = all
  apiGroups: string[]; // "*" = all
  resources: string[]; // "pods", "pods/log", "*"
  namespaces: string[] | "*";
}

export interface Attributes {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

export const adminUser = "playground-admin";
export const limitedUser = "playground-limited";

const everything: Rule = { verbs: ["*"], apiGroups: ["*"], resources: ["*"], namespaces: "*" };
// What every authenticated user may do (system:basic-user): ask about its own permissions.
const basic: Rule = {
  verbs: ["create"],
  apiGroups: ["authorization.k8s.io"],
  resources: ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
  namespaces: "*",
};

export class Authorizer {
  private readonly userRules = new Map<string, Rule[]>();
  private readonly groupRules = new Map<string, Rule[]>([["system:masters", [everything]]]);

  constructor() {
    this.userRules.set(limitedUser, [
      { verbs: ["get", "list", "watch"], apiGroups: [""], resources: ["pods", "pods/log"], namespaces: ["demo"] },
    ]);
  }

  setUserRules(user: string, rules: Rule[]): void {
    this.userRules.set(user, rules);
  }

  rulesFor(user: UserInfo): Rule[] {
    const rules = [basic, ...(this.userRules.get(user.name) ?? [])];
    for (const g of user.groups) rules.push(...(this.groupRules.get(g) ?? []));
    return rules;
  }

  allowed(user: UserInfo, a: Attributes): boolean {
    const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
    return this.rulesFor(user).some(
      (r) =>
        (r.verbs.includes("*") || r.verbs.includes(a.verb)) &&
        (r.apiGroups.includes("*") || r.apiGroups.includes(a.group)) &&
        (r.resources.includes("*") || r.resources.includes(res) || (a.subresource && r.resources.includes(`${a.resource}/*`))) &&
        (r.namespaces === "*" || (a.namespace !== undefined && r.namespaces.includes(a.namespace))),
    );
  }

  check(user: UserInfo, a: Attributes): void {
    if (!this.allowed(user, a)) throw forbidden(user, a);
  }
}

export function forbidden(user: UserInfo, a: Attributes): ApiError {
  const what = a.group ? `${a.resource}.${a.group}` : a.resource;
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const subject = a.name ? `${what} "${a.name}"` : what;
  const scope = a.namespace ? `in the namespace "${a.namespace}"` : "at the cluster scope";
  return new ApiError(
    "Forbidden",
    `${subject} is forbidden: User "${user.name}" cannot ${a.verb} resource "${res}" in API group "${a.group}" ${scope}`,
    { ...(a.name ? { name: a.name } : {}), group: a.group, kind: a.resource },
  );
}
