// The CNI exec protocol, separated from process I/O: dispatch() takes the environment and
// stdin as values and returns what to print and the exit code, so tests drive it in-process
// and bin/ wrappers stay three lines. Validates what the spec and libcni's skel validate.
import { trace } from '../lib/trace';
import { readStdin } from '../lib/stdin';
import { DecodingFailure, InvalidEnvironment, InvalidNetworkConfig, VxnetError, asVxnetError } from '../lib/errors';
import type { IpamEvents } from '../ipam/store/observed';
import { SUPPORTED_VERSIONS, checkVersion, compareVersions, CniVersion } from './version';

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';

export interface CmdArgs {
  readonly command: Command;
  readonly containerId: string;
  readonly netns: string;
  readonly ifname: string;
  readonly args: ReadonlyMap<string, string>;
  readonly path: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  /** stdin, raw and parsed. */
  readonly stdin: string;
  readonly conf: Record<string, unknown>;
  readonly version: CniVersion;
  /** Told what the in-process IPAM committed (vxnetd's counters, when it runs the call); absent in a plugin process. */
  readonly ipamEvents?: IpamEvents;
}

export interface Handlers {
  add(args: CmdArgs): Promise<Record<string, unknown>>;
  del(args: CmdArgs): Promise<void>;
  check(args: CmdArgs): Promise<void>;
  status(args: CmdArgs): Promise<void>;
  gc(args: CmdArgs): Promise<void>;
}

export interface Outcome {
  readonly stdout: string;
  readonly exitCode: number;
}

const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const COMMANDS: readonly Command[] = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'];

export function parseCniArgs(raw: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!raw) return out;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new InvalidEnvironment(`CNI_ARGS: "${pair}" is not KEY=VALUE`);
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return out;
}

export function validateIfname(ifname: string): void {
  if (ifname.length === 0 || ifname.length > 15 || ifname === '.' || ifname === '..' || /[/:\s]/.test(ifname)) {
    throw new InvalidEnvironment(`CNI_IFNAME: "${ifname}" is not a valid interface name (1-15 characters, no "/", ":" or whitespace)`);
  }
}

function required(env: CmdArgs['env'], name: string): string {
  const v = env[name];
  if (v === undefined || v === '') throw new InvalidEnvironment(`${name}: required for CNI_COMMAND=${env.CNI_COMMAND} but not set`);
  return v;
}

function parseStdin(stdin: string): Record<string, unknown> {
  let conf: unknown;
  try {
    conf = JSON.parse(stdin);
  } catch (err) {
    throw new DecodingFailure(`network configuration on stdin is not valid JSON: ${(err as Error).message}`);
  }
  if (conf === null || typeof conf !== 'object' || Array.isArray(conf)) throw new DecodingFailure('network configuration on stdin must be a JSON object');
  return conf as Record<string, unknown>;
}

function errorOutcome(err: VxnetError, version: string): Outcome {
  const body: Record<string, unknown> = { cniVersion: version, code: err.code, msg: err.message };
  if (err.details) body.details = err.details;
  return { stdout: JSON.stringify(body) + '\n', exitCode: 1 };
}

export async function dispatch(env: CmdArgs['env'], stdin: string, handlers: Handlers, ipamEvents?: IpamEvents): Promise<Outcome> {
  let version = '1.1.0';
  try {
    const command = env.CNI_COMMAND as Command | undefined;
    if (!command) throw new InvalidEnvironment('CNI_COMMAND: required but not set (one of ADD, DEL, CHECK, STATUS, GC, VERSION)');
    if (!COMMANDS.includes(command)) throw new InvalidEnvironment(`CNI_COMMAND: unknown command "${command}" (one of ${COMMANDS.join(', ')})`);
    if (command === 'VERSION') {
      let asked = '1.1.0';
      try { const c = JSON.parse(stdin || '{}') as { cniVersion?: string }; if (typeof c.cniVersion === 'string') asked = c.cniVersion; } catch { /* VERSION ignores its stdin */ }
      return { stdout: JSON.stringify({ cniVersion: (SUPPORTED_VERSIONS as readonly string[]).includes(asked) ? asked : '1.1.0', supportedVersions: SUPPORTED_VERSIONS }) + '\n', exitCode: 0 };
    }
    const conf = parseStdin(stdin);
    if (typeof conf.cniVersion === 'string') version = conf.cniVersion;
    const checked = checkVersion(conf.cniVersion);
    version = checked;
    if (typeof conf.name !== 'string' || !ID_RE.test(conf.name)) {
      throw new InvalidNetworkConfig(`name: ${JSON.stringify(conf.name)} is not a valid network name (letters, digits, "_", ".", "-")`);
    }
    const perContainer = command === 'ADD' || command === 'DEL' || command === 'CHECK';
    if ((command === 'STATUS' || command === 'GC') && compareVersions(checked, '1.1.0') < 0) {
      throw new InvalidNetworkConfig(`${command} needs cniVersion 1.1.0 or later; the config says ${checked}`);
    }
    const containerId = perContainer ? required(env, 'CNI_CONTAINERID') : '';
    if (perContainer && !ID_RE.test(containerId)) throw new InvalidEnvironment(`CNI_CONTAINERID: "${containerId}" is not a valid container id`);
    const ifname = perContainer ? required(env, 'CNI_IFNAME') : '';
    if (perContainer) validateIfname(ifname);
    const netns = command === 'ADD' || command === 'CHECK' ? required(env, 'CNI_NETNS') : (env.CNI_NETNS ?? '');
    const args: CmdArgs = {
      command, containerId, netns, ifname, args: parseCniArgs(env.CNI_ARGS),
      path: (env.CNI_PATH ?? '').split(':').filter(Boolean), env, stdin, conf, version: checked,
      ...(ipamEvents ? { ipamEvents } : {}),
    };
    switch (command) {
      case 'ADD': return { stdout: JSON.stringify(await handlers.add(args)) + '\n', exitCode: 0 };
      case 'DEL': await handlers.del(args); break;
      case 'CHECK': await handlers.check(args); break;
      case 'STATUS': await handlers.status(args); break;
      case 'GC': await handlers.gc(args); break;
    }
    return { stdout: '', exitCode: 0 };
  } catch (err) {
    return errorOutcome(asVxnetError(err), version);
  }
}

/** Reads stdin, dispatches, prints, exits: the whole of a CNI plugin's main(). */
export async function runPlugin(handlers: Handlers): Promise<never> {
  const stdin = await readStdin();
  trace('stdin');
  const outcome = await dispatch(process.env, stdin, handlers);
  trace('done');
  process.stdout.write(outcome.stdout);
  process.exit(outcome.exitCode);
}
