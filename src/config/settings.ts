// The VS Code settings: configuration keys a user may set for every workspace (where the cluster is,
// which agent). Each is a key of the configuration schema; package.json's contributes.configuration
// is generated from the schema for exactly these keys (src/config/generate.ts), and the extension
// reads them with settingsConfig. An empty setting means "not set". No zod here (activation reads it).

/** The setting `tether.<key>` for each of these configuration keys. */
export const SETTING_KEYS = ["kubeconfig", "context", "agent.image", "agent.mode"] as const;
export type SettingKey = (typeof SETTING_KEYS)[number];

/** The settings as a configuration value (only the ones that are set), e.g. { agent: { image } }. */
export function settingsConfig(get: (key: SettingKey) => string | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of SETTING_KEYS) {
    const value = get(key);
    if (!value) continue;
    const path = key.split(".");
    let at = out;
    for (const part of path.slice(0, -1)) at = (at[part] ??= {}) as Record<string, unknown>;
    at[path.at(-1)!] = value;
  }
  return out;
}
