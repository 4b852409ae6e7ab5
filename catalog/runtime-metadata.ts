// The runtimes' own knowledge of a container (name, labels, exposed ports) through their
// Docker-compatible APIs: Docker's socket for runtime "docker", podman's API socket for
// runtime "cni" (podman passes no labels to CNI, so its API is where they are; CNI_CONTAINERID
// is podman's container id). A pure core (`factsOfInspect`) and a thin dockerode shell.
//
// Docker deadlock: Docker calls the driver's Join while holding the container's lock (inside
// `docker start`), and a container inspect issued from inside that call waits forever. Lookups
// here run later, from the catalog's refresh, never from inside a driver call; keep it so.
//
// For runtime "docker" the IPAM store's containerId is Docker's ENDPOINT id (cnm/ sees no
// container id in CreateEndpoint): a lookup that is no container is resolved through the
// networks' inspect (Containers: {containerId: {EndpointID}}), which takes no container lock.
//
// Not cnm/docker.ts (a door, layer 2, above catalog/): the few dockerode calls needed are here.
import * as fs from 'node:fs';
import type Dockerode from 'dockerode';
import { IoFailure, TryAgainLater, VxnetError } from '../lib/errors';
import type { Logger } from '../lib/log';
import type { EndpointHealth, EndpointPort } from './endpoint';
import type { MetadataSource, RuntimeFacts } from './sources';

export const DEFAULT_PODMAN_SOCKET = '/run/podman/podman.sock';
const DEFAULT_TIMEOUT_MS = 5000;

/** The part of a container inspect (Docker's, or podman's compat API) the catalog reads. */
export interface ContainerInspect {
  readonly Id?: string;
  readonly Name?: string;
  readonly State?: { readonly Health?: { readonly Status?: string } | null } | null;
  readonly Config?: {
    readonly Labels?: Readonly<Record<string, string>> | null;
    readonly ExposedPorts?: Readonly<Record<string, unknown>> | null;
  } | null;
}

/** `"8080/tcp"` keys to ports; other protocols (sctp) and malformed keys are left out. */
export function exposedPortsOf(exposed: Readonly<Record<string, unknown>> | null | undefined): EndpointPort[] {
  const out: EndpointPort[] = [];
  for (const key of Object.keys(exposed ?? {})) {
    const m = /^(\d{1,5})(?:\/(tcp|udp))?$/i.exec(key.trim());
    const port = m ? Number(m[1]) : 0;
    if (!m || port < 1 || port > 65535) continue;
    out.push({ port, protocol: (m[2]?.toLowerCase() ?? 'tcp') as 'tcp' | 'udp' });
  }
  return out;
}

const HEALTH: ReadonlySet<string> = new Set(['starting', 'healthy', 'unhealthy']);

/** The facts an inspect gives: Name without its leading "/", Config.Labels, Config.ExposedPorts, Id, State.Health.Status. */
export function factsOfInspect(info: ContainerInspect): RuntimeFacts {
  const name = (info.Name ?? '').replace(/^\//, '');
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(info.Config?.Labels ?? {})) if (typeof v === 'string') labels[k] = v;
  const health = info.State?.Health?.Status;
  return {
    ...(name ? { name } : {}), labels, exposedPorts: exposedPortsOf(info.Config?.ExposedPorts),
    ...(info.Id ? { containerId: info.Id } : {}),
    ...(health !== undefined && HEALTH.has(health) ? { health: health as EndpointHealth } : {}),
  };
}

// Container ids and names as the runtimes make them; anything else (a "/" or "..") would
// change the API path the id is put into, so it is not asked about.
const CONTAINER_REF = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export interface RuntimeMetadataOptions {
  /** Docker's API socket, for runtime "docker"; none: Docker containers are not looked up. */
  readonly docker?: string;
  /** podman's Docker-compatible API socket, for runtime "cni" (default /run/podman/podman.sock, used when it exists); false: none. */
  readonly podman?: string | false;
  /** Per call (default 5 s). */
  readonly timeoutMs?: number;
  readonly log: Logger;
}

const errno = (err: unknown): string | undefined => (err as { code?: string }).code;
const status = (err: unknown): number | undefined => (err as { statusCode?: number }).statusCode;

/**
 * Container inspect through dockerode, per socket. For runtime "docker" the id may be a
 * container's or one of its endpoints' (the IPAM store's). A missing socket, an unknown id or
 * runtime is undefined; a socket that fails is a VxnetError.
 */
export function runtimeMetadata(o: RuntimeMetadataOptions): MetadataSource {
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const clients = new Map<string, Dockerode>();
  const client = (socketPath: string): Dockerode => {
    let c = clients.get(socketPath);
    if (!c) {
      // Required lazily, like cnm/docker.ts: CNI plugin runs and vxnetctl never load dockerode.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const Docker = require('dockerode') as typeof Dockerode;
      c = new Docker({ socketPath, timeout: timeoutMs });
      clients.set(socketPath, c);
    }
    return c;
  };
  const socketFor = (runtime: string): { socket: string; what: string } | undefined => {
    if (runtime === 'docker') return o.docker ? { socket: o.docker, what: 'Docker' } : undefined;
    if (runtime === 'cni') return o.podman === false ? undefined : { socket: o.podman ?? DEFAULT_PODMAN_SOCKET, what: 'podman' };
    return undefined;
  };
  const fail = (err: unknown, where: string, socket: string, what: string, t0: number): never => {
    if (err instanceof VxnetError) throw err;
    const msg = (err as Error).message ?? String(err);
    // docker-modem ends a call that times out by destroying it: "socket hang up".
    if (errno(err) === 'ETIMEDOUT' || (errno(err) === 'ECONNRESET' && Date.now() - t0 >= timeoutMs - 10)) throw new TryAgainLater(`cannot inspect ${where} through ${socket}: no answer within ${timeoutMs} ms`);
    if (errno(err) === 'ECONNREFUSED') throw new IoFailure(`cannot inspect ${where} through ${socket}: nothing listens on the socket (is the ${what} API service running?)`);
    throw new IoFailure(`cannot inspect ${where} through ${socket}: ${status(err) !== undefined ? `HTTP ${status(err)}: ` : ''}${msg.split('\n')[0]}`);
  };
  /** Container inspect; undefined on 404. */
  const inspect = async (socket: string, what: string, id: string): Promise<ContainerInspect | undefined> => {
    const t0 = Date.now();
    try {
      return await client(socket).getContainer(id).inspect() as ContainerInspect;
    } catch (err) {
      if (status(err) === 404 || errno(err) === 'ENOENT') return undefined;
      return fail(err, `${what} container ${id.slice(0, 12)}`, socket, what, t0);
    }
  };
  // Docker endpoint id -> container id, from every network's inspect; rebuilt on a miss (one
  // rebuild at a time, shared by the lookups that wait for it).
  let endpoints = new Map<string, string>();
  let rebuilding: Promise<void> | undefined;
  const rebuildEndpoints = (socket: string): Promise<void> => (rebuilding ??= (async () => {
    const t0 = Date.now();
    try {
      const next = new Map<string, string>();
      for (const n of await client(socket).listNetworks()) {
        let info: Dockerode.NetworkInspectInfo;
        try {
          info = await client(socket).getNetwork(n.Id).inspect() as Dockerode.NetworkInspectInfo;
        } catch (err) {
          if (status(err) === 404) continue; // removed since the list
          throw err;
        }
        for (const [cid, c] of Object.entries(info.Containers ?? {})) if (c.EndpointID) next.set(c.EndpointID, cid);
      }
      endpoints = next;
    } catch (err) {
      if (errno(err) === 'ENOENT') { endpoints = new Map(); return; }
      fail(err, 'Docker networks (to find an endpoint\'s container)', socket, 'Docker', t0);
    }
  })().finally(() => { rebuilding = undefined; }));
  const containerOfEndpoint = async (socket: string, endpointId: string): Promise<string | undefined> => {
    const known = endpoints.get(endpointId);
    if (known) return known;
    await rebuildEndpoints(socket);
    return endpoints.get(endpointId);
  };

  return {
    async lookup(runtime, containerId) {
      const api = socketFor(runtime);
      if (!api || !CONTAINER_REF.test(containerId)) return undefined;
      // Checked on every lookup: podman's socket appears when its service is started later.
      if (!fs.existsSync(api.socket)) return undefined;
      let info = await inspect(api.socket, api.what, containerId);
      if (!info && runtime === 'docker' && /^[0-9a-f]{64}$/.test(containerId)) {
        const cid = await containerOfEndpoint(api.socket, containerId);
        if (cid) info = await inspect(api.socket, api.what, cid);
      }
      if (!info) return undefined;
      const facts = factsOfInspect(info);
      o.log.debug('runtime metadata', { runtime, containerId: containerId.slice(0, 12), name: facts.name, labels: Object.keys(facts.labels ?? {}).length, ports: facts.exposedPorts?.length });
      return facts;
    },
  };
}
