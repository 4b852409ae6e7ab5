// What vxnetd asks the Docker daemon (through dockerode): Docker's driver calls carry neither
// the network's name nor the container's, so vxnetd looks them up here, and it follows
// Docker's events to release what Docker forgets to tell the driver about.
//
// Never call this from inside a driver call that Docker makes while holding the container's
// lock (Join runs inside `docker start`): container inspect would wait for the start that
// waits for us. Network list and inspect do not take that lock.
import type Dockerode from 'dockerode';

export interface DockerEndpoint {
  readonly endpointId: string;
  readonly containerId: string;
  /** Container name without the leading "/". */
  readonly name: string;
}

export interface DockerNetwork {
  readonly id: string;
  readonly name: string;
  readonly driver: string;
  readonly ipamDriver: string;
  readonly subnets: readonly string[];
  readonly options: Readonly<Record<string, string>>;
  /** Joined endpoints by endpoint id (network inspect only; list leaves it empty). */
  readonly endpoints: ReadonlyMap<string, DockerEndpoint>;
}

export interface DockerEvent {
  readonly type: string;
  readonly action: string;
  readonly id: string;
  readonly attributes: Readonly<Record<string, string>>;
}

export interface EventStream {
  close(): void;
}

export interface DockerApi {
  /** The network, or undefined when Docker does not know it. */
  network(id: string): Promise<DockerNetwork | undefined>;
  /** Every network (without endpoints). */
  networks(): Promise<DockerNetwork[]>;
  /** Streams network and container events; onEnd is called once when the stream stops. */
  events(onEvent: (e: DockerEvent) => void, onEnd: (err?: Error) => void): Promise<EventStream>;
}

function toNetwork(n: Dockerode.NetworkInspectInfo): DockerNetwork {
  const endpoints = new Map<string, DockerEndpoint>();
  for (const [containerId, c] of Object.entries(n.Containers ?? {})) {
    if (c.EndpointID) endpoints.set(c.EndpointID, { endpointId: c.EndpointID, containerId, name: c.Name.replace(/^\//, '') });
  }
  return {
    id: n.Id, name: n.Name, driver: n.Driver, ipamDriver: n.IPAM?.Driver ?? '',
    subnets: (n.IPAM?.Config ?? []).map((c) => c.Subnet ?? '').filter((s) => s !== ''),
    options: n.Options ?? {}, endpoints,
  };
}

/** dockerode against a unix socket; calls time out after timeoutMs, the event stream does not. */
export function dockerApi(socketPath: string, timeoutMs = 10_000): DockerApi {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Docker = require('dockerode') as typeof Dockerode;
  const calls = new Docker({ socketPath, timeout: timeoutMs });
  const stream = new Docker({ socketPath });
  return {
    async network(id) {
      try {
        return toNetwork(await calls.getNetwork(id).inspect() as Dockerode.NetworkInspectInfo);
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return undefined;
        throw err;
      }
    },
    async networks() {
      return (await calls.listNetworks()).map(toNetwork);
    },
    async events(onEvent, onEnd) {
      const s = await stream.getEvents({ filters: { type: ['network', 'container'] } }) as NodeJS.ReadableStream & { destroy?: () => void };
      let buf = '';
      let ended = false;
      const end = (err?: Error): void => { if (!ended) { ended = true; onEnd(err); } };
      s.on('data', (chunk: Buffer | string) => {
        buf += chunk.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          try {
            const e = JSON.parse(line) as { Type?: string; Action?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
            onEvent({ type: e.Type ?? '', action: e.Action ?? '', id: e.Actor?.ID ?? '', attributes: e.Actor?.Attributes ?? {} });
          } catch { /* not an event line */ }
        }
      });
      s.on('error', (err: Error) => end(err));
      s.on('end', () => end());
      s.on('close', () => end());
      return { close: () => { ended = true; s.destroy?.(); } };
    },
  };
}
