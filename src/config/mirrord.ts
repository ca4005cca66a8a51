// Reads a mirrord configuration (.mirrord/mirrord.json) as a Tether configuration source, so a team
// that already has one can press F5 without writing a new file. Only what Tether has an equivalent
// for is translated; every key that is dropped is reported by its JSON path so nothing is lost
// silently. The result is validated like any other source (errors name "mirrord.json" and the path).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TetherError } from "../protocol/error";
import { parseConfigText } from "./jsonc";
import type { ConfigSource } from "./load";
import { TARGET_KINDS } from "./target";

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

export interface MirrordTranslation {
  source: ConfigSource;
  /** JSON paths of keys Tether has no equivalent for. */
  ignored: string[];
}

/** "A;B" or ["A","B"] (mirrord accepts both for env include/exclude). */
function list(v: unknown): string[] | undefined {
  if (typeof v === "string") return v.split(";").map((s) => s.trim()).filter(Boolean);
  if (Array.isArray(v)) return v.map(String);
  return undefined;
}

function httpFilter(f: Json, at: string, ignored: string[]): Json | undefined {
  const out: Json = {};
  for (const [k, v] of Object.entries(f)) {
    if (k === "header_filter") out.header = v;
    else if (k === "path_filter") out.path = v;
    else if (k === "method_filter" || k === "method") out.method = v;
    else if (k === "all_of" || k === "any_of") {
      if (!Array.isArray(v)) continue;
      out[k === "all_of" ? "allOf" : "anyOf"] = v.map((item, i) => {
        if (!isObject(item)) return item;
        // all_of/any_of items are {"header": "..."} / {"path": "..."} / {"method": "..."}
        const { header, path, method, ...rest } = item;
        for (const extra of Object.keys(rest)) ignored.push(`${at}.${k}.${i}.${extra}`);
        return { ...(header !== undefined ? { header } : {}), ...(path !== undefined ? { path } : {}), ...(method !== undefined ? { method } : {}) };
      });
    } else if (k !== "ports") ignored.push(`${at}.${k}`);
  }
  return Object.keys(out).length ? out : undefined;
}

export function translateMirrord(m: unknown, name = "mirrord.json"): MirrordTranslation {
  const ignored: string[] = [];
  if (!isObject(m)) throw new TetherError("CONFIG_INVALID", `${name}: (top level): expected an object`);
  const out: Json = {};
  for (const [key, value] of Object.entries(m)) {
    switch (key) {
      case "target": {
        if (typeof value === "string") out.target = value;
        else if (isObject(value)) {
          const { path, namespace, ...rest } = value;
          for (const k of Object.keys(rest)) ignored.push(`target.${k}`);
          if (typeof path === "string") out.target = namespace ? { path, namespace } : path;
          else if (isObject(path)) {
            // {"deployment": "api", "container": "app"} form
            const kind = TARGET_KINDS.find((k) => typeof path[k] === "string");
            if (kind) {
              const container = typeof path.container === "string" ? `/container/${path.container}` : "";
              const p = `${kind}/${path[kind] as string}${container}`;
              out.target = namespace ? { path: p, namespace } : p;
            } else ignored.push("target.path");
          }
        }
        break;
      }
      case "kube_context":
        out.context = value;
        break;
      case "kubeconfig":
        out.kubeconfig = value;
        break;
      case "agent": {
        if (!isObject(value)) break;
        const agent: Json = {};
        for (const [k, v] of Object.entries(value)) {
          if (k === "image") agent.image = isObject(v) ? v.name : v;
          else if (k === "namespace") agent.namespace = v;
          else if (k === "ttl") agent.ttlSeconds = v;
          else if (k === "startup_timeout") agent.startupTimeoutSeconds = v;
          else if (k === "ephemeral") agent.mode = v === false ? "job" : "ephemeral";
          else ignored.push(`agent.${k}`);
        }
        out.agent = agent;
        break;
      }
      case "feature": {
        if (!isObject(value)) break;
        for (const [fk, fv] of Object.entries(value)) {
          if (fk === "network" && isObject(fv)) {
            for (const [nk, nv] of Object.entries(fv)) {
              if (nk === "incoming") {
                if (typeof nv === "string") out.incoming = { mode: nv };
                else if (isObject(nv)) {
                  const inc: Json = {};
                  for (const [ik, iv] of Object.entries(nv)) {
                    if (ik === "mode") inc.mode = iv;
                    else if (ik === "port_mapping") inc.portMapping = iv;
                    else if (ik === "ignore_ports") inc.ignorePorts = iv;
                    else if (ik === "ports") inc.ports = iv;
                    else if (ik === "http_filter" && isObject(iv)) {
                      const f = httpFilter(iv, "feature.network.incoming.http_filter", ignored);
                      if (f) inc.httpFilter = f;
                      if (Array.isArray(iv.ports) && !inc.ports) inc.ports = iv.ports;
                    } else ignored.push(`feature.network.incoming.${ik}`);
                  }
                  out.incoming = inc;
                }
              } else if (nk === "outgoing") {
                if (nv === false) out.outgoing = { tcp: false, udp: false };
                else if (isObject(nv)) {
                  const o: Json = {};
                  for (const [ok, ov] of Object.entries(nv)) {
                    if (ok === "tcp" || ok === "udp") o[ok] = ov;
                    else if (ok === "filter") o.filter = ov;
                    else ignored.push(`feature.network.outgoing.${ok}`);
                  }
                  out.outgoing = o;
                }
              } else if (nk === "dns") {
                if (typeof nv === "boolean") out.dns = { enabled: nv };
                else if (isObject(nv)) out.dns = { ...(nv.enabled !== undefined ? { enabled: nv.enabled } : {}), ...(nv.filter !== undefined ? { filter: nv.filter } : {}) };
              } else ignored.push(`feature.network.${nk}`);
            }
          } else if (fk === "env") {
            if (fv === false) out.env = { include: [] };
            else if (isObject(fv)) {
              const env: Json = {};
              for (const [ek, ev] of Object.entries(fv)) {
                if (ek === "include" || ek === "exclude") env[ek] = list(ev);
                else if (ek === "override") env.override = ev;
                else ignored.push(`feature.env.${ek}`);
              }
              out.env = env;
            }
          } else if (fk === "fs") {
            const mode = typeof fv === "string" ? fv : isObject(fv) ? fv.mode : undefined;
            const fs: Json = {};
            if (mode === "read" || mode === "write") fs.mode = "read";
            else if (mode === "local" || mode === "localwithoverrides") fs.mode = "local";
            else if (mode === "disabled") fs.mode = "off";
            if (mode === "write") ignored.push("feature.fs.mode (write: Tether reads only)");
            if (isObject(fv)) {
              if (fv.read_only !== undefined) fs.readOnly = list(fv.read_only);
              if (fv.local !== undefined) fs.local = list(fv.local);
              for (const k of Object.keys(fv)) if (!["mode", "read_only", "local"].includes(k)) ignored.push(`feature.fs.${k}`);
            }
            out.fs = fs;
          } else ignored.push(`feature.${fk}`);
        }
        break;
      }
      default:
        ignored.push(key);
    }
  }
  return { source: { name, value: out }, ignored };
}

/** .mirrord/mirrord.json of a workspace, translated (undefined when absent). */
export function readMirrordConfig(dir: string): MirrordTranslation | undefined {
  const path = join(dir, ".mirrord", "mirrord.json");
  if (!existsSync(path)) return undefined;
  return translateMirrord(parseConfigText(readFileSync(path, "utf8"), ".mirrord/mirrord.json"), ".mirrord/mirrord.json");
}
