// The extension's one LogOutputChannel as the Log every layer takes.
import type * as vscode from "vscode";
import type { Log } from "../protocol/log";

export function channelLog(channel: vscode.LogOutputChannel): Log {
  return (level, message, fields) => {
    const text = fields && Object.keys(fields).length ? `${message} ${JSON.stringify(fields)}` : message;
    channel[level](text);
  };
}
