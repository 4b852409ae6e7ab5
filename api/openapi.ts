// The operator API's OpenAPI 3 document, as data (served at GET /api/openapi.json). Every route
// of ./router.ts's ROUTES is here and nothing else (test/unit/api-openapi.test.ts), and real
// answers of a running vxnetd validate against these schemas (test/integration/api.test.ts).
// Field meanings: api/README.md and ./model.ts.
import { VERSION } from '../lib/version';

type Schema = Record<string, unknown>;

const str: Schema = { type: 'string' };
const int: Schema = { type: 'integer' };
const bool: Schema = { type: 'boolean' };
const nul = (s: Schema): Schema => ({ ...s, nullable: true });
const arr = (items: Schema): Schema => ({ type: 'array', items });
const obj = (properties: Record<string, Schema>, optional: readonly string[] = []): Schema => ({
  type: 'object', properties, required: Object.keys(properties).filter((k) => !optional.includes(k)),
});
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const strMap: Schema = { type: 'object', additionalProperties: str };
const decimal: Schema = { type: 'string', pattern: '^[0-9]+$', description: 'a whole number as a decimal string (IPv6 pools pass 2^53)' };
const isoTime: Schema = { type: 'string', format: 'date-time' };

const usageProps = { size: decimal, used: int, free: decimal };

const allocation = obj({
  network: str, address: str, family: { type: 'integer', enum: [4, 6] }, containerId: str, ifname: str, name: nul(str), runtime: str,
  netns: nul(str), aliases: arr(str), rangeSet: int, since: isoTime,
});
const history = { allOf: [ref('Allocation'), obj({ until: isoTime, reason: str })] };
const veth = obj({ name: str, containerId: str, ifname: str, result: { type: 'string', enum: ['deleted', 'absent', 'kept', 'would-delete', 'error'] }, error: str }, ['error']);
const holding = obj({ network: str, address: str, containerId: str, ifname: str, name: nul(str), runtime: str, since: isoTime, until: nul(isoTime) });

export const SCHEMAS: Record<string, Schema> = {
  Error: obj({ error: obj({ code: { ...str, description: 'the vxnet error class (NotFound, DecodingFailure, ...) or Unauthorized, Forbidden, PayloadTooLarge, MethodNotAllowed, BadRequest, InternalError' }, message: str }) }),
  Summary: obj({ host: str, version: str, store: { type: 'string', enum: ['embedded', 'etcd'] }, networks: int, hosts: int, allocations: int, endpoints: int, vips: int, time: isoTime }),
  Usage: obj(usageProps),
  Network: obj({
    name: str, mode: { type: 'string', enum: ['bridge', 'overlay'] }, subnets: arr(str), vni: nul(int), mtu: nul(int), blockPrefix: nul(int),
    ...usageProps, local: { ...ref('Usage'), nullable: true },
  }),
  Pool: obj({
    network: str, subnets: arr(str), size: nul(decimal), used: int, free: nul(decimal), updated: isoTime,
    rangeSets: arr(obj({ subnets: arr(str), ranges: arr(obj({ subnet: str, rangeStart: str, rangeEnd: str, gateway: str })), ...usageProps })),
    error: { ...str, description: 'only when the pool\'s stored definition cannot be read' },
  }, ['error']),
  Host: obj({
    id: str, address: nul(str), since: nul(isoTime), leaseTtl: nul(int), leaseExpiresAt: nul(isoTime), state: { type: 'string', enum: ['alive', 'expired'] },
    networks: arr(obj({ network: str, mac: str, vteps: arr(str), blocks: arr(str) })), blocks: int, self: bool,
  }),
  Block: obj({ network: str, cidr: str, host: str, state: { type: 'string', enum: ['held', 'orphaned'] }, size: decimal, used: nul(int), free: nul(decimal), usageAt: nul(isoTime), since: isoTime, orphanedAt: nul(isoTime) }),
  Allocation: allocation,
  HostAllocation: { allOf: [ref('Allocation'), obj({ host: str })] },
  RemoteAllocation: obj({
    network: str, address: str, family: { type: 'integer', enum: [4, 6] }, containerId: str, name: nul(str), runtime: str, aliases: arr(str), host: str, endpoint: str,
  }),
  HistoryEntry: history,
  AddressEvent: obj({
    network: str, address: str, action: { type: 'string', enum: ['allocate', 'release'] }, containerId: str, ifname: str, name: nul(str), runtime: str,
    at: isoTime, reason: nul(str),
  }),
  Holding: holding,
  Endpoint: obj({
    id: str, name: str, aliases: arr(str), service: nul(str), network: str, containerId: str, addresses: arr(str), host: str, runtime: str,
    labels: strMap, ports: arr(obj({ port: int, protocol: { type: 'string', enum: ['tcp', 'udp'] }, name: nul(str) })),
    health: { type: 'string', enum: ['starting', 'healthy', 'unhealthy'], nullable: true }, healthy: nul(bool),
  }),
  DnsRecord: obj({ name: str, type: str, value: str, ttl: int }),
  Vip: obj({
    vip: str, name: nul(str), addresses: arr(str), protocol: { type: 'string', enum: ['tcp', 'udp'] }, port: int,
    backends: arr(obj({ endpoint: str, name: str, address: str, port: int, host: str, weight: int, state: str })),
  }),
  EdgeRoute: obj({
    frontend: str, bind: str, mode: { type: 'string', enum: ['http', 'tcp'] }, vhosts: arr(str), path: nul(str), redirectToHttps: bool, backend: str,
    servers: arr(obj({ slot: str, endpoint: str, address: str, weight: int, state: str, sessions: int })),
  }),
  Veth: veth,
  Labels: obj({ id: str, name: str, labels: strMap }),
};

const json = (schema: Schema): Schema => ({ content: { 'application/json': { schema } } });
const ok = (description: string, schema: Schema): Schema => ({ 200: { description, ...json(schema) } });
const errors = (...codes: number[]): Schema => Object.fromEntries(codes.map((c) => [String(c), { description: ERROR_TEXT[c] ?? 'error', ...json(ref('Error')) }]));
const ERROR_TEXT: Record<number, string> = {
  400: 'bad request (DecodingFailure, BadRequest, InvalidName, ...)', 401: 'no or wrong bearer token (Unauthorized)',
  403: 'a mutation from a non-loopback client without a configured token (Forbidden)', 404: 'not found (NotFound)',
  409: 'conflict', 413: 'body over 64 KiB (PayloadTooLarge)', 503: 'the IPAM store or the cluster store cannot answer now',
};
const q = (name: string, description: string, schema: Schema = str): Schema => ({ name, in: 'query', required: false, description, schema });
const body = (schema: Schema, required = true): Schema => ({ required, ...json(schema) });
const readErrors = errors(400, 401, 503);
const writeErrors = errors(400, 401, 403, 404, 409, 413, 503);

export const OPENAPI = {
  openapi: '3.0.3',
  info: {
    title: 'vxnetd operator API',
    version: VERSION,
    description: 'What vxnet knows on this host and of its cluster: networks, hosts and leases, blocks, allocations with their history, endpoints, DNS records, VIPs, edge routes; and the operator\'s mutations. See api/README.md.',
  },
  components: {
    schemas: SCHEMAS,
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: '--api-token-file or $VXNET_API_TOKEN on vxnetd; required for every request when set' } },
  },
  security: [{ bearer: [] }, {}],
  paths: {
    '/api/openapi.json': { get: { summary: 'This document', responses: ok('the OpenAPI document', { type: 'object' }) } },
    '/api/v1/summary': { get: { summary: 'Counts of everything, this host\'s id and version', responses: { ...ok('summary', ref('Summary')), ...readErrors } } },
    '/api/v1/networks': { get: { summary: 'Networks (IPAM pools and overlay networks) with size, used, free', responses: { ...ok('networks', obj({ networks: arr(ref('Network')) })), ...readErrors } } },
    '/api/v1/pools': {
      get: {
        summary: 'This host\'s IPAM pools, per range set (vxnetctl ipam pools); cluster: the overlay\'s blocks are at /api/v1/blocks',
        parameters: [q('network', 'only this network\'s')],
        responses: { ...ok('pools', obj({ host: str, cluster: bool, pools: arr(ref('Pool')) })), ...readErrors },
      },
    },
    '/api/v1/hosts': { get: { summary: 'The overlay\'s hosts and their leases (this host alone without --store)', responses: { ...ok('hosts', obj({ hosts: arr(ref('Host')) })), ...readErrors } } },
    '/api/v1/blocks': {
      get: {
        summary: 'Overlay blocks with their holder and usage (none without --store)', parameters: [q('network', 'only this network\'s')],
        responses: { ...ok('blocks', obj({ blocks: arr(ref('Block')) })), ...readErrors },
      },
    },
    '/api/v1/allocations': {
      get: {
        summary: 'This host\'s allocations (its IPAM store); in remote, the other hosts\' containers as the endpoint catalog (etcd) has them',
        parameters: [q('network', 'network name'), q('container', 'container id or a prefix of one'), q('name', 'container name, exactly'),
          q('address', 'an address, exactly'), q('q', 'substring of address, name or container id (case-insensitive)')],
        responses: { ...ok('allocations', obj({ host: str, allocations: arr(ref('HostAllocation')), remote: arr(ref('RemoteAllocation')) })), ...readErrors },
      },
    },
    '/api/v1/history': {
      get: {
        summary: 'An address\'s allocations and releases; with at, who held it then',
        parameters: [q('address', 'the address (this or network is required)'), q('network', 'network name'),
          q('at', 'ISO 8601 time or epoch milliseconds'), q('limit', 'at most this many past allocations', int)],
        responses: {
          ...ok('history', obj({
            address: nul(str), network: nul(str), at: nul(isoTime), events: arr(ref('AddressEvent')), holders: arr(ref('Holding')),
            holder: { ...ref('Holding'), nullable: true }, current: arr(ref('Allocation')), past: arr(ref('HistoryEntry')),
          })), ...readErrors,
        },
      },
    },
    '/api/v1/endpoints': {
      get: {
        summary: 'The endpoint catalog (this host\'s and, with --store, the cluster\'s)',
        parameters: [q('host', 'host id'), q('network', 'network name'), q('name', 'endpoint name'), q('q', 'substring of name, id, service or address')],
        responses: { ...ok('endpoints', obj({ endpoints: arr(ref('Endpoint')) })), ...readErrors },
      },
    },
    '/api/v1/endpoints/{id}/labels': {
      parameters: [{ name: 'id', in: 'path', required: true, description: 'endpoint id (HOST/NETWORK/CONTAINERID, URL-encoded) or name', schema: str }],
      get: { summary: 'The endpoint\'s operator labels', responses: { ...ok('labels', ref('Labels')), ...errors(401, 404) } },
      put: {
        summary: 'Replace the endpoint\'s operator labels (kept by name, as vxnetctl endpoint label does)',
        requestBody: body(obj({ labels: strMap })), responses: { ...ok('labels after', ref('Labels')), ...writeErrors },
      },
    },
    '/api/v1/dns/records': {
      get: { summary: 'The DNS zone\'s A, AAAA and SRV records', responses: { ...ok('records', obj({ running: bool, domain: nul(str), serial: nul(int), records: arr(ref('DnsRecord')) })), ...readErrors } },
    },
    '/api/v1/vips': { get: { summary: 'VIPs with their backends and states', responses: { ...ok('vips', obj({ running: bool, vips: arr(ref('Vip')) })), ...readErrors } } },
    '/api/v1/edge/routes': {
      get: {
        summary: 'vxnet-lb\'s routes on this host (running false when it does not answer)',
        responses: { ...ok('routes', obj({ running: bool, source: nul(str), haproxyUp: nul(bool), routes: arr(ref('EdgeRoute')) })), ...readErrors },
      },
    },
    '/api/v1/events': {
      get: {
        summary: 'Server-sent events: "change" with {"resource": NAME} when a resource changed',
        responses: { 200: { description: 'an event stream', content: { 'text/event-stream': { schema: str } } }, ...errors(401) },
      },
    },
    '/api/v1/allocations/release': {
      post: {
        summary: 'Release an address, or an attachment\'s addresses (and its host veth when nothing is left)',
        requestBody: body({ oneOf: [obj({ network: str, containerId: str, ifname: str }, ['ifname']), obj({ address: str, network: str }, ['network'])] }),
        responses: { ...ok('released', obj({ released: arr(ref('Allocation')), veths: arr(ref('Veth')) })), ...writeErrors },
      },
    },
    '/api/v1/gc': {
      post: {
        summary: 'Release CNI allocations whose network namespace is gone',
        requestBody: body(obj({ network: str, dryRun: bool }, ['network', 'dryRun']), false),
        responses: {
          ...ok('collected', obj({
            dryRun: bool, checked: int, released: arr(ref('Allocation')), kept: obj({ alive: int, noNetns: int, otherRuntime: int, unknown: int }),
            unknownNetns: arr(str), veths: arr(ref('Veth')),
          })), ...writeErrors,
        },
      },
    },
  },
} as const;
