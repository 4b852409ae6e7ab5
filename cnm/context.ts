// What the driver's parts share: the store, the network records and names, the kernel side,
// the Docker API, and the per-network lock. cnm/driver.ts builds it once.
import type { Datapath } from '../datapath/docker';
import type { IpamStore } from '../ipam/store/types';
import type { Logger } from '../lib/log';
import type { DockerApi } from './docker';
import type { KeyedMutex } from '../lib/mutex';
import type { Networks } from './networks';

export type Body = Record<string, unknown>;
export type Reply = Record<string, unknown>;
/** Handlers of Docker's plugin methods, by path without the leading "/". */
export type Handlers = Record<string, (body: Body) => Promise<Reply>>;

export interface DriverContext {
  readonly store: IpamStore;
  readonly networks: Networks;
  readonly dp: Datapath;
  /** Undefined when vxnetd runs without the Docker API (names then come only from -o network). */
  readonly docker: DockerApi | undefined;
  readonly log: Logger;
  /** The name Docker knows this plugin by: -d NAME / --ipam-driver NAME. */
  readonly plugin: string;
  readonly now: () => number;
  /** Per Docker network id: the network's setup and record are not raced. */
  readonly mutex: KeyedMutex;
}
