// Entry of dist/engine.js: everything that talks to a cluster. The extension loads it on first use
// (a view expanded, F5, a command), so activation only pays for the UI code.
export { Launch } from "../engine/launch";
export { Cluster } from "../kube/cluster";
export { listNamespaces, listWorkloads } from "../kube/discovery";
export { doctor } from "../kube/doctor";
export { curlCommand, entryLine, requestDetail } from "../engine/requestDetail";
export { whyNoReplay } from "../engine/replay";
