// All network-namespace entry goes through here (see net/README.md for why setns on the main
// thread): a netlink socket belongs to the namespace of the thread that opened it, so
// entering the target namespace, opening the socket and returning at once gives a socket
// that keeps working inside the target. Only synchronous work may run while entered:
// libuv's pool threads stay in the host namespace.
import * as fs from 'node:fs';
import { InvalidNetns } from '../lib/errors';
import { netnsBinding } from '../lib/native';

/** An open handle on a network namespace file (/run/netns/x, /proc/PID/ns/net). */
export interface NetnsHandle {
  readonly path: string;
  readonly fd: number;
  close(): void;
}

/** Opens a namespace by path; InvalidNetns when it is missing or not a network namespace. */
export function openNetns(path: string): NetnsHandle {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new InvalidNetns(e.code === 'ENOENT' ? `network namespace ${path} does not exist` : `cannot open network namespace ${path}: ${e.message}`);
  }
  let closed = false;
  return { path, fd, close: () => { if (!closed) { closed = true; fs.closeSync(fd); } } };
}

/** Runs fn (synchronous) inside the namespace and returns to the caller's namespace, also on throw. */
export function inNetnsSync<T>(ns: NetnsHandle, fn: () => T): T {
  const binding = netnsBinding();
  const home = fs.openSync('/proc/thread-self/ns/net', 'r');
  try {
    try {
      binding.setns(ns.fd, binding.CLONE_NEWNET);
    } catch (err) {
      throw new InvalidNetns(`${ns.path} is not a network namespace: ${(err as Error).message}`);
    }
    try {
      return fn();
    } finally {
      binding.setns(home, binding.CLONE_NEWNET);
    }
  } finally {
    fs.closeSync(home);
  }
}
