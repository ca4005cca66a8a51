// Entry of dist/config.js: reading and validating the configuration (zod and the schema). Loaded on
// first use, a tick after activation, so activating the extension does not pay for it.
export { configProblems, readConfigFile, readProjectConfig, resolveConfig } from "../config/load";
