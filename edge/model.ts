// What the edge serves, independent of HAProxy's syntax: backends (one per service and port
// index, Marathon-LB's app + service port) with their servers, and where each is reached
// (vhosts on the shared HTTP frontend, a service port of its own). ./labels.ts builds it from
// the endpoint catalog, ./slots.ts gives every server a stable slot, ./config.ts writes it as
// haproxy.cfg, ./diff.ts tells what HAProxy must do to go from one to the next. Pure types.

export type Mode = 'http' | 'tcp';

export interface HealthCheck {
  /** HTTP check path (`option httpchk GET PATH`); absent: a TCP connect check. */
  readonly path?: string;
  readonly intervalMs: number;
  readonly rise: number;
  readonly fall: number;
}

export interface Server {
  /** The endpoint id (HOST/NETWORK/CONTAINERID): stable while the container lives. */
  readonly id: string;
  /** Canonical text address, IPv4 or IPv6. */
  readonly address: string;
  readonly port: number;
  /** HAProxy server weight, 1-256. */
  readonly weight: number;
}

export interface Backend {
  /** HAProxy-safe name, unique in the model: `SERVICE_N` (N the port index). */
  readonly name: string;
  readonly mode: Mode;
  /** HAProxy's `balance` argument (roundrobin, leastconn, source, uri, hdr(name), ...). */
  readonly balance: string;
  /** Cookie stickiness (`cookie ... insert`), Marathon-LB's HAPROXY_n_STICKY. */
  readonly sticky: boolean;
  /** A 301 from the HTTP frontend to the HTTPS one for its vhosts (only when an HTTPS frontend exists). */
  readonly redirectToHttps: boolean;
  /**
   * HAPROXY_n_SSL_CERT: PEM files (key and chain) for its vhosts on the HTTPS frontend (SNI
   * filtered to them) and for its service port's frontend. From the labels every path given;
   * after ./certs.ts checked them, only those that parse (the others are notes).
   */
  readonly sslCerts: readonly string[];
  /** HAPROXY_n_USE_HSTS: `Strict-Transport-Security: max-age=15768000` on its HTTPS responses. */
  readonly hsts: boolean;
  readonly health: HealthCheck | undefined;
  /** Virtual hosts on the shared HTTP frontend, lowercase, sorted. */
  readonly vhosts: readonly string[];
  /** Path prefix (path_beg) within the vhosts; needs vhosts. */
  readonly path: string | undefined;
  /** Marathon-LB's HAPROXY_n_BACKEND_WEIGHT: a higher weight's rules are evaluated first. */
  readonly aclWeight: number;
  /** A frontend of its own on this port (HAPROXY_n_PORT). */
  readonly servicePort: number | undefined;
  /** Address that frontend binds (HAPROXY_n_BIND_ADDR); `*` for all. */
  readonly bindAddr: string;
  /** Sorted by id. */
  readonly servers: readonly Server[];
}

/** A certificate file that passed the check, and a digest of what it held then (key file included). */
export interface TlsCert {
  readonly path: string;
  /** sha256 of the PEM text (and of its `.key` file): a renewed certificate changes the config text, so it reloads. */
  readonly sha256: string;
}

export interface Tls {
  /** `--cert-dir`'s certificates, sorted: HAProxy picks among them by their own names; the first is the default. */
  readonly dirCerts: readonly TlsCert[];
  /** HAPROXY_n_SSL_CERT files that passed the check, sorted by path. */
  readonly labelCerts: readonly TlsCert[];
}

export interface EdgeModel {
  /** Sorted by name. */
  readonly backends: readonly Backend[];
  /** Certificates; absent or empty: no HTTPS frontend. */
  readonly tls?: Tls;
}

/** Something about an endpoint's labels the operator should hear of (unknown label, bad value, conflict). */
export interface Note {
  readonly endpoint: string;
  readonly label?: string;
  readonly message: string;
}

export const noteKey = (n: Note): string => `${n.endpoint}\u0000${n.label ?? ''}\u0000${n.message}`;
export const formatNote = (n: Note): string => `endpoint ${n.endpoint}${n.label ? ` label ${n.label}` : ''}: ${n.message}`;
