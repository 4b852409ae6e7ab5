// Executes another CNI plugin (a delegated IPAM such as host-local or dhcp) the way the spec
// says: found in CNI_PATH, same environment, the full network config on stdin.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DelegateFailed, VxnetError } from '../lib/errors';
import type { CmdArgs, Command } from './skel';

export function findPlugin(type: string, searchPath: readonly string[]): string {
  for (const dir of searchPath) {
    const file = path.join(dir, type);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch { /* next directory */ }
  }
  throw new DelegateFailed(`plugin "${type}" not found in CNI_PATH (${searchPath.join(':') || 'empty'})`);
}

/** Runs the plugin; resolves with its parsed stdout (undefined when empty), rejects with its CNI error. */
export function execPlugin(type: string, command: Command, args: CmdArgs, stdin: string = args.stdin): Promise<Record<string, unknown> | undefined> {
  const file = findPlugin(type, args.path);
  return new Promise((resolve, reject) => {
    const child = spawn(file, [], { env: { ...args.env, CNI_COMMAND: command } as NodeJS.ProcessEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => reject(new DelegateFailed(`cannot run plugin ${file}: ${e.message}`)));
    child.on('close', (code) => {
      const text = Buffer.concat(out).toString('utf8').trim();
      let parsed: Record<string, unknown> | undefined;
      try { parsed = text ? (JSON.parse(text) as Record<string, unknown>) : undefined; } catch { parsed = undefined; }
      if (code === 0) {
        if (text && !parsed) return reject(new DelegateFailed(`plugin ${type} ${command} printed something that is not JSON: ${text.slice(0, 200)}`));
        return resolve(parsed);
      }
      if (parsed && typeof parsed.code === 'number' && typeof parsed.msg === 'string') {
        return reject(new VxnetError(parsed.code, `${type}: ${parsed.msg}`, typeof parsed.details === 'string' ? parsed.details : undefined));
      }
      const stderr = Buffer.concat(err).toString('utf8').trim();
      reject(new DelegateFailed(`plugin ${type} ${command} failed (exit ${code}): ${(text || stderr).slice(0, 500)}`));
    });
    child.stdin.on('error', () => { /* the plugin may exit before reading stdin */ });
    child.stdin.end(stdin);
  });
}
