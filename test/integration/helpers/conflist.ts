// A small libcni: executes a network configuration list the way libcni's AddNetworkList /
// DelNetworkList / CheckNetworkList do (containernetworking/cni libcni/api.go), so tests can
// chain vxnet with the reference plugins without a container runtime:
//   - each plugin's stdin is the plugin object plus the list's cniVersion and name;
//   - runtimeConfig holds the capability args the plugin declares in `capabilities` (only
//     when non-empty);
//   - ADD runs in order, every plugin but the first gets prevResult = the previous result;
//     the final result is cached (libcni writes /var/lib/cni/results; here: in memory);
//   - DEL runs in reverse order with the cached result as prevResult (when there is one);
//   - CHECK runs in order with the cached result as prevResult.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CNI_PATH, type CniOutcome, describe, runPlugin } from './cni';

export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface Conflist {
  cniVersion: string;
  name: string;
  plugins: PluginConf[];
}

export interface RuntimeArgs {
  containerId: string;
  ifname: string;
  netns: string;
  /** CNI_ARGS */
  args?: string;
  /** Capability args the runtime offers (portMappings, bandwidth, ips, mac, ...). */
  capabilityArgs?: Record<string, unknown>;
  /** CNI_PATH (default dist/bin:/usr/lib/cni). */
  path?: string;
}

export interface StepOutcome extends CniOutcome {
  plugin: string;
}

/** The plugin binary for `type` in the CNI_PATH directories. */
export function findPlugin(type: string, path: string): string {
  for (const dir of path.split(':').filter(Boolean)) {
    const file = join(dir, type);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch { /* next */ }
  }
  throw new Error(`plugin ${type} not found in ${path}`);
}

export class ConflistRunner {
  /** The cached result of the last successful ADD (libcni's cache). */
  cached: Record<string, any> | undefined;
  readonly steps: StepOutcome[] = [];

  constructor(readonly list: Conflist, readonly rt: RuntimeArgs) {}

  /** The stdin libcni builds for one plugin. */
  pluginStdin(plugin: PluginConf, prevResult: Record<string, unknown> | undefined): Record<string, unknown> {
    const conf: Record<string, unknown> = { ...plugin, cniVersion: this.list.cniVersion, name: this.list.name };
    const rc: Record<string, unknown> = {};
    for (const [cap, on] of Object.entries(plugin.capabilities ?? {})) {
      if (on && this.rt.capabilityArgs && cap in this.rt.capabilityArgs) rc[cap] = this.rt.capabilityArgs[cap];
    }
    if (Object.keys(rc).length > 0) conf.runtimeConfig = rc;
    if (prevResult) conf.prevResult = prevResult;
    return conf;
  }

  private async exec(command: 'ADD' | 'DEL' | 'CHECK', plugin: PluginConf, prev: Record<string, unknown> | undefined): Promise<StepOutcome> {
    const path = this.rt.path ?? CNI_PATH;
    const o = await runPlugin(findPlugin(plugin.type, path), this.pluginStdin(plugin, prev), {
      command, containerId: this.rt.containerId, ifname: this.rt.ifname, netns: this.rt.netns, args: this.rt.args, path,
    });
    const step = { ...o, plugin: `${command} ${plugin.type}` };
    this.steps.push(step);
    return step;
  }

  /** ADD through the list; resolves with the failing step, or the final result. */
  async add(): Promise<{ ok: true; result: Record<string, any> } | { ok: false; failed: StepOutcome }> {
    let prev: Record<string, any> | undefined;
    for (const plugin of this.list.plugins) {
      const o = await this.exec('ADD', plugin, prev);
      if (o.code !== 0 || !o.json) return { ok: false, failed: o };
      prev = o.json;
    }
    this.cached = prev;
    return { ok: true, result: prev! };
  }

  /** DEL in reverse order; every plugin runs even if one fails (as libcni does not; we want to see all). */
  async del(): Promise<StepOutcome[]> {
    const failed: StepOutcome[] = [];
    for (const plugin of [...this.list.plugins].reverse()) {
      const o = await this.exec('DEL', plugin, this.cached);
      if (o.code !== 0) failed.push(o);
    }
    if (failed.length === 0) this.cached = undefined;
    return failed;
  }

  /** CHECK in order; plugins whose type is in `skip` are left out (known upstream bugs). */
  async check(skip: readonly string[] = []): Promise<StepOutcome[]> {
    const failed: StepOutcome[] = [];
    for (const plugin of this.list.plugins) {
      if (skip.includes(plugin.type)) continue;
      const o = await this.exec('CHECK', plugin, this.cached);
      if (o.code !== 0) failed.push(o);
    }
    return failed;
  }
}

export const describeSteps = (steps: readonly StepOutcome[]): string[] => steps.map((s) => `${s.plugin}: ${describe(s)}`);
