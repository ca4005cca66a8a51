// The three PATCH flavours the API server accepts: JSON patch (RFC 6902), JSON merge patch
// (RFC 7386) and strategic merge patch (lists of named things merged by their key).
import { ApiError } from "./apiError.js";

type Json = unknown;
const isObj = (v: Json): v is Record<string, Json> => typeof v === "object" && v !== null && !Array.isArray(v);

export function mergePatch(target: Json, patch: Json): Json {
  if (!isObj(patch)) return structuredClone(patch);
  const out: Record<string, Json> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// The merge key of the lists whose patch strategy is "merge" in the Kubernetes API.
const mergeKeys: Record<string, string> = {
  containers: "name",
  initContainers: "name",
  ephemeralContainers: "name",
  env: "name",
  volumes: "name",
  volumeMounts: "mountPath",
  ports: "containerPort",
  conditions: "type",
  ownerReferences: "uid",
  imagePullSecrets: "name",
  tolerations: "key",
};

export function strategicMergePatch(target: Json, patch: Json, field = ""): Json {
  if (Array.isArray(patch)) {
    const key = mergeKeys[field];
    if (!key || !Array.isArray(target)) return structuredClone(patch);
    const out = structuredClone(target) as Json[];
    for (const item of patch) {
      if (!isObj(item)) continue;
      const idx = out.findIndex((o) => isObj(o) && o[key] === item[key]);
      if (item["$patch"] === "delete") {
        if (idx >= 0) out.splice(idx, 1);
        continue;
      }
      if (idx >= 0) out[idx] = strategicMergePatch(out[idx], item);
      else out.push(strategicMergePatch(undefined, item));
    }
    return out;
  }
  if (!isObj(patch)) return structuredClone(patch);
  if (patch["$patch"] === "replace") {
    const { $patch: _ignored, ...rest } = patch;
    return structuredClone(rest);
  }
  const out: Record<string, Json> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith("$")) continue;
    if (v === null) delete out[k];
    else out[k] = strategicMergePatch(out[k], v, k);
  }
  return out;
}

function unescape(token: string): string {
  return token.replace(/~1/g, "/").replace(/~0/g, "~");
}

function parent(doc: Json, path: string): { container: Json; key: string } {
  if (!path.startsWith("/")) throw new ApiError("BadRequest", `invalid JSON patch path "${path}"`);
  const parts = path.slice(1).split("/").map(unescape);
  const key = parts.pop()!;
  let cur = doc;
  for (const p of parts) {
    if (Array.isArray(cur)) cur = cur[Number(p)];
    else if (isObj(cur)) cur = cur[p];
    else cur = undefined;
    if (cur === undefined) throw new ApiError("Invalid", `the server rejected our request due to an error in our request: path "${path}" does not exist`);
  }
  return { container: cur, key };
}

function getAt(doc: Json, path: string): Json {
  if (path === "") return doc;
  const { container, key } = parent(doc, path);
  return Array.isArray(container) ? container[Number(key)] : isObj(container) ? container[key] : undefined;
}

export function jsonPatch(doc: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw new ApiError("BadRequest", "json patch must be an array of operations");
  let out = structuredClone(doc);
  for (const raw of ops) {
    if (!isObj(raw) || typeof raw.op !== "string" || typeof raw.path !== "string") {
      throw new ApiError("BadRequest", "invalid json patch operation");
    }
    const { op, path } = raw as { op: string; path: string };
    const value = op === "copy" || op === "move" ? structuredClone(getAt(out, String(raw.from))) : structuredClone(raw.value);
    if (op === "test") {
      if (JSON.stringify(getAt(out, path)) !== JSON.stringify(value)) throw new ApiError("Invalid", `test operation failed at "${path}"`);
      continue;
    }
    if (op === "move") out = jsonPatch(out, [{ op: "remove", path: raw.from }]);
    if (path === "") {
      out = value;
      continue;
    }
    const { container, key } = parent(out, path);
    if (Array.isArray(container)) {
      const idx = key === "-" ? container.length : Number(key);
      if (op === "add" || op === "copy" || op === "move") container.splice(idx, 0, value);
      else if (op === "replace") container[idx] = value;
      else if (op === "remove") container.splice(idx, 1);
      else throw new ApiError("BadRequest", `unknown json patch op "${op}"`);
    } else if (isObj(container)) {
      if (op === "add" || op === "copy" || op === "move" || op === "replace") container[key] = value;
      else if (op === "remove") delete container[key];
      else throw new ApiError("BadRequest", `unknown json patch op "${op}"`);
    }
  }
  return out;
}

export function applyPatch(contentType: string, doc: Json, patch: Json): Json {
  const ct = contentType.split(";")[0]!.trim();
  if (ct === "application/json-patch+json") return jsonPatch(doc, patch);
  if (ct === "application/merge-patch+json") return mergePatch(doc, patch);
  if (ct === "application/strategic-merge-patch+json") return strategicMergePatch(doc, patch);
  throw new ApiError("UnsupportedMediaType", `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`);
}
