// From what the runtimes and the IPAM store say about a container to its catalog endpoint.
// Pure. The rules (README "Service discovery"):
//   labels   CNI `args.cni.labels` < the runtime's own labels (Docker API, podman's API socket)
//            < operator labels (`vxnetctl endpoint label`); a later source wins per key.
//   ports    the label `vxnet.ports` ("8080,9000/udp,http=8080") in its order when given,
//            else the container's exposed ports (Docker) or its portMappings' container
//            ports (CNI), ascending (tcp before udp on one number).
//   service  `vxnet.service`, else `com.docker.compose.service`, else none.
//   name     lowercased; a name that is not one DNS label is left out (the endpoint is still
//            catalogued, by id, but not named).
import { InvalidName } from '../lib/errors';
import type { Endpoint, EndpointHealth, EndpointPort } from './endpoint';

export const PORTS_LABEL = 'vxnet.ports';
export const SERVICE_LABEL = 'vxnet.service';
export const COMPOSE_SERVICE_LABEL = 'com.docker.compose.service';

/** What is known of one container on one network on this host. */
export interface EndpointFacts {
  readonly host: string;
  readonly runtime: string;
  readonly containerId: string;
  readonly network: string;
  readonly name?: string;
  readonly aliases?: readonly string[];
  readonly addresses: readonly string[];
  /** Label sources, lowest precedence first. */
  readonly cniLabels?: Readonly<Record<string, string>>;
  readonly runtimeLabels?: Readonly<Record<string, string>>;
  readonly operatorLabels?: Readonly<Record<string, string>>;
  /** Docker's exposed ports or CNI portMappings' container ports, any order. */
  readonly exposedPorts?: readonly EndpointPort[];
  /** The runtime's health check state, when the container has one. */
  readonly health?: EndpointHealth;
}

const LABEL_RE = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** A name usable as one DNS label (lowercased), or undefined. */
export function dnsLabelOf(name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  const n = name.replace(/^\//, '').toLowerCase();
  return LABEL_RE.test(n) ? n : undefined;
}

/** Parses `vxnet.ports`: comma-separated `[NAME=]PORT[/tcp|/udp]`; throws InvalidName on the first bad entry. */
export function parsePortsLabel(text: string): EndpointPort[] {
  const out: EndpointPort[] = [];
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const m = /^(?:([A-Za-z0-9_-]+)=)?(\d{1,5})(?:\/(tcp|udp))?$/i.exec(entry);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) {
      throw new InvalidName(`bad ${PORTS_LABEL} entry "${entry}": expected [NAME=]PORT[/tcp|/udp] with PORT 1-65535`);
    }
    const name = m[1]?.toLowerCase();
    if (name !== undefined && !LABEL_RE.test(name)) throw new InvalidName(`bad port name "${m[1]}" in ${PORTS_LABEL}: not a DNS label`);
    out.push({ port, protocol: (m[3]?.toLowerCase() ?? 'tcp') as 'tcp' | 'udp', ...(name ? { name } : {}) });
  }
  return out;
}

const byPort = (a: EndpointPort, b: EndpointPort): number => a.port - b.port || (a.protocol === b.protocol ? 0 : a.protocol === 'tcp' ? -1 : 1);

/** The merged labels, the ports and the service, as the rules above say. `problem` names a label that was ignored. */
export function deriveEndpoint(f: EndpointFacts): { endpoint: Endpoint; problem?: string } {
  const labels: Record<string, string> = { ...f.cniLabels, ...f.runtimeLabels, ...f.operatorLabels };
  let ports: EndpointPort[];
  let problem: string | undefined;
  const portsLabel = labels[PORTS_LABEL];
  try {
    ports = portsLabel !== undefined ? parsePortsLabel(portsLabel) : [];
  } catch (err) {
    problem = (err as Error).message;
    ports = [];
  }
  if (portsLabel === undefined || problem !== undefined) {
    const seen = new Set<string>();
    ports = [...(f.exposedPorts ?? [])].sort(byPort).filter((p) => {
      const k = `${p.port}/${p.protocol}`;
      return !seen.has(k) && (seen.add(k), true);
    });
  }
  const service = dnsLabelOf(labels[SERVICE_LABEL]) ?? dnsLabelOf(labels[COMPOSE_SERVICE_LABEL]);
  const aliases = [...new Set((f.aliases ?? []).map(dnsLabelOf).filter((a): a is string => a !== undefined))];
  const endpoint: Endpoint = {
    id: `${f.host}/${f.network}/${f.containerId}`,
    host: f.host, runtime: f.runtime, containerId: f.containerId, network: f.network,
    name: dnsLabelOf(f.name) ?? '',
    aliases,
    addresses: [...f.addresses].sort(),
    labels, ports,
    ...(service ? { service } : {}),
    ...(f.health ? { health: f.health } : {}),
  };
  return problem ? { endpoint, problem } : { endpoint };
}
