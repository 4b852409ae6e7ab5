// vxnetctl's dispatcher: parse, load the one command module needed, turn every failure into
// one "vxnetctl: <message>" line and an exit status (0 ok, 1 failure, 2 usage error).
// Command modules are required lazily: `vxnetctl --help` loads neither the store nor ip-num.
import * as path from 'node:path';
import { VxnetError } from '../lib/errors';
import { VERSION } from '../lib/version';
import { DEFAULTS, type Invocation, UsageError, parseCommandLine } from './args';
import type { Ctx, Io } from './context';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ').trim();

async function dispatch(inv: Extract<Invocation, { kind: 'run' }>, io: Io): Promise<number | void> {
  const ctx: Ctx = {
    ...io,
    json: inv.values.json === true,
    dataDir: path.resolve(inv.values['data-dir'] ?? (io.env.VXNET_DATA_DIR || DEFAULTS.dataDir)),
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    veth: io.veth ?? (require('./veth') as typeof import('./veth')).systemVeth,
  };
  if (inv.command === 'hosts') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runHosts } = require('./hosts') as typeof import('./hosts');
    return runHosts(inv.values, ctx);
  }
  if (inv.command.startsWith('network ')) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runNetwork } = require('./network') as typeof import('./network');
    return runNetwork(inv.command, inv.values, inv.positionals, ctx);
  }
  if (inv.command.startsWith('endpoint ')) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runEndpoint } = require('./endpoint') as typeof import('./endpoint');
    return runEndpoint(inv.command, inv.values, inv.positionals, ctx);
  }
  if (inv.command === 'dns ls' || inv.command === 'dns query') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runDns } = require('./dns') as typeof import('./dns');
    return runDns(inv.command, inv.values, inv.positionals, ctx);
  }
  if (inv.command === 'vip ls' || inv.command === 'vip show') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runVip } = require('./vip') as typeof import('./vip');
    return runVip(inv.command, inv.values, inv.positionals, ctx);
  }
  if (inv.command === 'doctor') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runDoctor } = require('./doctor') as typeof import('./doctor');
    return runDoctor(inv.values, ctx);
  }
  if (inv.command === 'lb ls') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runLb } = require('./lb') as typeof import('./lb');
    return runLb(inv.values, ctx);
  }
  if (inv.command === 'install') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runInstall } = require('./install') as typeof import('./install');
    return runInstall(inv.values, ctx);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { runIpam } = require('./ipam') as typeof import('./ipam');
  return runIpam(inv.command, inv.values, inv.positionals, ctx);
}

/** Runs vxnetctl with argv (after the script name); resolves to the exit status. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  try {
    const inv = parseCommandLine(argv);
    switch (inv.kind) {
      case 'help':
        io.stdout(inv.text);
        return EXIT_OK;
      case 'version':
        io.stdout(inv.values.json ? JSON.stringify({ version: VERSION }, null, 2) + '\n' : `vxnetctl ${VERSION}\n`);
        return EXIT_OK;
      case 'run':
        // Only doctor answers with a status of its own (findings are not failures).
        return (await dispatch(inv, io)) ?? EXIT_OK;
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`vxnetctl: ${oneLine(err.message)}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof VxnetError) {
      io.stderr(`vxnetctl: ${oneLine(err.message)}\n`);
      return EXIT_FAILURE;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    io.stderr(`vxnetctl: internal error: ${oneLine(e.message)}\n`);
    if (io.env.VXNETCTL_DEBUG) io.stderr(`${e.stack ?? ''}\n`);
    return EXIT_FAILURE;
  }
}
