// Decodes the few request bodies kubectl sends as Kubernetes protobuf (typed-client commands such as
// `kubectl create namespace` and `kubectl auth can-i`) into their JSON form. Responses stay JSON,
// which kubectl accepts.
import { ApiError } from "./apiError.js";

type FieldType = "string" | "int" | "bool" | "map" | "strings" | "intOrString" | Schema | { repeated: Schema };
interface Schema {
  [field: number]: [name: string, type: FieldType];
}

const objectMeta: Schema = {
  1: ["name", "string"],
  2: ["generateName", "string"],
  3: ["namespace", "string"],
  11: ["labels", "map"],
  12: ["annotations", "map"],
  14: ["finalizers", "strings"],
};

const labelSelector: Schema = { 1: ["matchLabels", "map"] };
const container: Schema = {
  1: ["name", "string"],
  2: ["image", "string"],
  3: ["command", "strings"],
  4: ["args", "strings"],
  5: ["workingDir", "string"],
  6: ["ports", { repeated: { 1: ["name", "string"], 2: ["hostPort", "int"], 3: ["containerPort", "int"], 4: ["protocol", "string"] } }],
  7: ["env", { repeated: { 1: ["name", "string"], 2: ["value", "string"] } }],
  14: ["imagePullPolicy", "string"],
};
const podSpec: Schema = {
  2: ["containers", { repeated: container }],
  3: ["restartPolicy", "string"],
  4: ["terminationGracePeriodSeconds", "int"],
  6: ["dnsPolicy", "string"],
  8: ["serviceAccountName", "string"],
  11: ["hostNetwork", "bool"],
  12: ["hostPID", "bool"],
  20: ["initContainers", { repeated: container }],
};
const podTemplate: Schema = { 1: ["metadata", objectMeta], 2: ["spec", podSpec] };

const schemas: Record<string, Schema> = {
  Pod: { 1: ["metadata", objectMeta], 2: ["spec", podSpec] },
  Deployment: {
    1: ["metadata", objectMeta],
    2: ["spec", { 1: ["replicas", "int"], 2: ["selector", labelSelector], 3: ["template", podTemplate], 6: ["revisionHistoryLimit", "int"], 9: ["progressDeadlineSeconds", "int"] }],
  },
  Job: {
    1: ["metadata", objectMeta],
    2: ["spec", { 1: ["parallelism", "int"], 2: ["completions", "int"], 3: ["activeDeadlineSeconds", "int"], 4: ["selector", labelSelector], 6: ["template", podTemplate], 7: ["backoffLimit", "int"], 8: ["ttlSecondsAfterFinished", "int"] }],
  },
  Service: {
    1: ["metadata", objectMeta],
    2: [
      "spec",
      {
        1: ["ports", { repeated: { 1: ["name", "string"], 2: ["protocol", "string"], 3: ["port", "int"], 4: ["targetPort", "intOrString"], 5: ["nodePort", "int"] } }],
        2: ["selector", "map"],
        3: ["clusterIP", "string"],
        4: ["type", "string"],
      },
    ],
  },
  Namespace: { 1: ["metadata", objectMeta], 2: ["spec", { 1: ["finalizers", "strings"] }] },
  SelfSubjectAccessReview: {
    1: ["metadata", objectMeta],
    2: [
      "spec",
      {
        1: ["resourceAttributes", { 1: ["namespace", "string"], 2: ["verb", "string"], 3: ["group", "string"], 4: ["version", "string"], 5: ["resource", "string"], 6: ["subresource", "string"], 7: ["name", "string"] }],
        2: ["nonResourceAttributes", { 1: ["path", "string"], 2: ["verb", "string"] }],
      },
    ],
  },
  SelfSubjectRulesReview: { 1: ["metadata", objectMeta], 2: ["spec", { 1: ["namespace", "string"] }] },
  DeleteOptions: { 1: ["gracePeriodSeconds", "int"], 4: ["propagationPolicy", "string"], 5: ["dryRun", "strings"] },
  ConfigMap: { 1: ["metadata", objectMeta], 2: ["data", "map"] },
  ServiceAccount: { 1: ["metadata", objectMeta] },
};

interface Field {
  no: number;
  wire: number;
  value: bigint | Buffer;
}

function* fields(buf: Buffer): Generator<Field> {
  let i = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (i >= buf.length) throw new ApiError("BadRequest", "truncated protobuf body");
      const b = buf[i++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const no = key >> 3;
    const wire = key & 7;
    if (wire === 0) yield { no, wire, value: varint() };
    else if (wire === 2) {
      const len = Number(varint());
      yield { no, wire, value: buf.subarray(i, i + len) };
      i += len;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new ApiError("BadRequest", `unsupported protobuf wire type ${wire}`);
  }
}

function decode(buf: Buffer, schema: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields(buf)) {
    const spec = schema[f.no];
    if (!spec) continue;
    const [name, type] = spec;
    if (type === "string") {
      const v = (f.value as Buffer).toString("utf8");
      if (v !== "") out[name] = v; // proto2 sends empty strings that JSON would omit
    }
    else if (type === "int") out[name] = Number(BigInt.asIntN(64, f.value as bigint));
    else if (type === "bool") out[name] = f.value !== 0n;
    else if (type === "strings") ((out[name] ??= []) as string[]).push((f.value as Buffer).toString("utf8"));
    else if (type === "intOrString") {
      const v = decode(f.value as Buffer, { 1: ["type", "int"], 2: ["intVal", "int"], 3: ["strVal", "string"] });
      out[name] = v.type === 1 ? String(v.strVal ?? "") : Number(v.intVal ?? 0);
    } else if (typeof type === "object" && "repeated" in type) {
      ((out[name] ??= []) as unknown[]).push(decode(f.value as Buffer, type.repeated as Schema));
    } else if (type === "map") {
      const entry = decode(f.value as Buffer, { 1: ["key", "string"], 2: ["value", "string"] });
      ((out[name] ??= {}) as Record<string, string>)[String(entry.key ?? "")] = String(entry.value ?? "");
    } else out[name] = decode(f.value as Buffer, type as Schema);
  }
  return out;
}

const magic = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

export function decodeProtobufBody(body: Buffer): Record<string, unknown> {
  if (body.length < 4 || !body.subarray(0, 4).equals(magic)) throw new ApiError("BadRequest", "protobuf body without the k8s envelope");
  const unknown = decode(body.subarray(4), {
    1: ["typeMeta", { 1: ["apiVersion", "string"], 2: ["kind", "string"] }],
  });
  let raw: Buffer = Buffer.alloc(0);
  for (const f of fields(body.subarray(4))) if (f.no === 2) raw = f.value as Buffer;
  const tm = (unknown.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  const schema = schemas[tm.kind ?? ""];
  if (!schema) {
    throw new ApiError("UnsupportedMediaType", `the playground cannot decode protobuf ${tm.kind ?? "objects"}; send application/json`);
  }
  return { apiVersion: tm.apiVersion, kind: tm.kind, ...decode(raw, schema) };
}
