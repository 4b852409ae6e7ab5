// vxnetctl's command line: the command table (names, options, help text) and the parser.
// node:util parseArgs does the tokenizing; this module decides which command the words name,
// which options that command accepts, and turns every mistake into one UsageError line.
// Pure apart from reading nothing: the data directory's env default is applied by main.ts.
import { parseArgs } from 'node:util';
import { UsageError } from '../lib/usage';
import { DEFAULT_BLOCK_GRACE_SECONDS } from '../overlay/records';

/** A wrong invocation: vxnetctl prints "vxnetctl: <message>" and exits 2 (one class with vxnetd's). */
export { UsageError };

// Every option any command takes. parseArgs sees them all at once (so global options may come
// anywhere on the line); each command then rejects the ones it does not take.
const OPTIONS = {
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
  network: { type: 'string' },
  container: { type: 'string' },
  ifname: { type: 'string' },
  'dry-run': { type: 'boolean' },
  'cni-bin-dir': { type: 'string' },
  conflist: { type: 'boolean' },
  'conf-dir': { type: 'string' },
  subnet: { type: 'string', multiple: true },
  prefix: { type: 'string' },
  'bin-dir': { type: 'string' },
  systemd: { type: 'boolean' },
  'systemd-dir': { type: 'string' },
  'docker-dns': { type: 'boolean' },
  'docker-config': { type: 'string' },
  store: { type: 'string' },
  'block-grace': { type: 'string' },
  vni: { type: 'string' },
  'block-prefix': { type: 'string' },
  'block-prefix6': { type: 'string' },
  mtu: { type: 'string' },
  port: { type: 'string' },
  remove: { type: 'string', multiple: true },
  api: { type: 'string' },
  'api-token-file': { type: 'string' },
  'api-ca': { type: 'string' },
  server: { type: 'string' },
  fix: { type: 'boolean' },
  'overlay-dir': { type: 'string' },
  'vip-table': { type: 'string' },
  'nat-table': { type: 'string', multiple: true },
  lb: { type: 'string' },
} as const;

export type OptionName = keyof typeof OPTIONS;

export interface Values {
  readonly 'data-dir'?: string;
  readonly json?: boolean;
  readonly help?: boolean;
  readonly version?: boolean;
  readonly network?: string;
  readonly container?: string;
  readonly ifname?: string;
  readonly 'dry-run'?: boolean;
  readonly 'cni-bin-dir'?: string;
  readonly conflist?: boolean;
  readonly 'conf-dir'?: string;
  readonly subnet?: readonly string[];
  readonly prefix?: string;
  readonly 'bin-dir'?: string;
  readonly systemd?: boolean;
  readonly 'systemd-dir'?: string;
  readonly 'docker-dns'?: boolean;
  readonly 'docker-config'?: string;
  readonly store?: string;
  readonly vni?: string;
  readonly 'block-prefix'?: string;
  readonly 'block-prefix6'?: string;
  readonly mtu?: string;
  readonly port?: string;
  readonly 'block-grace'?: string;
  readonly remove?: readonly string[];
  readonly api?: string;
  readonly 'api-token-file'?: string;
  readonly 'api-ca'?: string;
  readonly server?: string;
  readonly fix?: boolean;
  readonly 'overlay-dir'?: string;
  readonly 'vip-table'?: string;
  readonly 'nat-table'?: string[];
  readonly lb?: string;
}

const GLOBAL_OPTIONS: readonly OptionName[] = ['data-dir', 'json', 'help', 'version'];

export type CommandName = 'ipam pools' | 'ipam ls' | 'ipam show' | 'ipam release' | 'ipam gc' | 'hosts' | 'network create' | 'network ls' | 'network rm' | 'install' | 'endpoint label' | 'endpoint labels' | 'dns ls' | 'dns query' | 'vip ls' | 'vip show' | 'doctor' | 'lb ls';

interface CommandSpec {
  readonly name: CommandName;
  readonly synopsis: string;
  readonly summary: string;
  readonly options: readonly OptionName[];
  /** Most positional arguments the command takes (after its name); Infinity: any number. */
  readonly maxPositionals: number;
  readonly help: string;
}

/** Why --api does not apply to a command that takes none (said instead of "does not apply"). */
const NO_API: Partial<Record<CommandName, string>> = {
  'network ls': 'overlay network definitions are read from the cluster store (--store URL or $VXNET_STORE); through a vxnetd\'s API: GET /api/v1/networks, vxnetctl hosts --api URL, vxnetctl ipam pools --api URL',
  'network create': 'network definitions are changed in the cluster store only (--store URL); the operator API has no such mutation',
  'network rm': 'network definitions are changed in the cluster store only (--store URL); the operator API has no such mutation',
  'lb ls': 'it reads vxnet-lb\'s own listener (--lb URL or $VXNET_LB); a vxnetd\'s API shows its host\'s edge routes at GET /api/v1/edge/routes',
  'dns query': 'it asks a DNS server, not the API (--server ADDR[:PORT])',
  'install': 'it installs vxnet on this host',
};

export const DEFAULTS = {
  dataDir: '/var/lib/vxnet',
  cniBinDir: '/opt/cni/bin',
  confDir: '/etc/cni/net.d',
  systemdDir: '/etc/systemd/system',
  network: 'vxnet',
  // Podman's default network is 10.88.0.0/16 and Docker's bridges start at 172.17.0.0/16.
  subnet: '10.231.0.0/16',
  prefix: '/usr/local/lib/vxnet',
  binDir: '/usr/local/bin',
} as const;

/** The record types `dns query` asks for (here so its help lists them without loading ctl/dns.ts). */
export const QUERY_TYPES = ['A', 'AAAA', 'SRV', 'PTR', 'SOA', 'NS', 'TXT', 'CNAME', 'MX', 'CAA', 'ANY'] as const;

const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'ipam pools',
    synopsis: 'ipam pools [--network N] [--store URL | --api URL]',
    summary: 'networks with their subnets, size, used and free addresses',
    options: ['network', 'store', 'api', 'api-token-file', 'api-ca'],
    maxPositionals: 0,
    help: `One row per range set of each network in this host's IPAM store: its subnets, how many
addresses it can hand out (gateways, network and broadcast addresses excluded), how many
are held, how many are free. On an overlay network the range sets are this host's blocks.

Options:
  --network N   only network N
  --store URL   also list every block of the cluster's overlay networks from the cluster
                store (etcd://HOST:PORT[,HOST:PORT...]): network, block, holding host, state
                (held; orphaned: its host's lease expired), size, and used and free as the
                host's vxnetd last published them ("-": not published)

Remote (vxnetd's operator API instead of this host's store; api/README.md):
  --api URL             a vxnetd's HTTP API, http://HOST:PORT or https://HOST:PORT (default
                        $VXNET_API; neither: the local store): its host's pools (GET
                        /api/v1/pools) and, when it runs with a cluster store, the blocks as
                        --store shows them (GET /api/v1/blocks). --store wins over $VXNET_API.
  --api-token-file FILE its bearer token (the first line; default $VXNET_API_TOKEN)
  --api-ca FILE         the CA (PEM) that signed its certificate, for https

JSON: {"store", "note", "pools": [{"network", "subnets", "size", "used", "free", "updated",
"rangeSets": [{"subnets", "ranges", "size", "used", "free"}]}]}; size and free are decimal
strings (IPv6 pools hold more than 2^53 addresses), used is a number. With --store also
"cluster" and "blocks": [{"network", "block", "hostId", "state", "size", "used", "free",
"usageAt"}] (used, free and usageAt null when the host published nothing).`,
  },
  {
    name: 'ipam ls',
    synopsis: 'ipam ls [--network N] [--api URL]',
    summary: 'allocated addresses and who holds them',
    options: ['network', 'api', 'api-token-file', 'api-ca'],
    maxPositionals: 0,
    help: `Lists allocated addresses: network, address, container id (12 characters; the full id
with --json), container name, interface, runtime (cni or docker), since when.

Options:
  --network N   only network N

Remote (vxnetd's operator API instead of this host's store; api/README.md):
  --api URL             a vxnetd's HTTP API, http://HOST:PORT or https://HOST:PORT (default
                        $VXNET_API; neither: the local store)
  --api-token-file FILE its bearer token (the first line; default $VXNET_API_TOKEN)
  --api-ca FILE         the CA (PEM) that signed its certificate, for https

JSON: {"store", "note", "allocations": [{"network", "address", "family", "containerId",
"ifname", "name", "runtime", "netns", "aliases", "rangeSet", "since"}]}.`,
  },
  {
    name: 'ipam show',
    synopsis: 'ipam show ADDRESS [--network N] [--api URL]',
    summary: 'the current owner and the history of one address',
    options: ['network', 'api', 'api-token-file', 'api-ca'],
    maxPositionals: 1,
    help: `Shows who holds ADDRESS now (in every network whose pool holds it, or only in N) and
who held it before, newest first, with why each release happened.

Options:
  --network N   only network N

Remote (vxnetd's operator API instead of this host's store; api/README.md):
  --api URL             a vxnetd's HTTP API, http://HOST:PORT or https://HOST:PORT (default
                        $VXNET_API; neither: the local store)
  --api-token-file FILE its bearer token (the first line; default $VXNET_API_TOKEN)
  --api-ca FILE         the CA (PEM) that signed its certificate, for https

JSON: {"address", "networks": [{"network", "subnets", "owner", "hostVeth", "history": [...]}]};
owner is an allocation or null, history entries add "until" and "reason".`,
  },
  {
    name: 'ipam release',
    synopsis: 'ipam release (ADDRESS [--network N] | --container ID [--ifname IF] --network N)',
    summary: "release an address, or a container's addresses, and its host veth",
    options: ['network', 'container', 'ifname', 'api', 'api-token-file', 'api-ca'],
    maxPositionals: 1,
    help: `Releases an address in the store (history records "vxnetctl release"), then deletes the
attachment's host veth when the attachment holds no address any more.

  ADDRESS          the address to release; --network is needed only when several
                   networks hold it
  --container ID   every address of container ID (a unique prefix will do, such as the
                   12 characters ipam ls shows) in network N
  --ifname IF      only the container's interface IF
  --network N      the network

Remote (vxnetd's operator API instead of this host's store; api/README.md):
  --api URL             a vxnetd's HTTP API, http://HOST:PORT or https://HOST:PORT (default
                        $VXNET_API; neither: the local store)
  --api-token-file FILE its bearer token (the first line; default $VXNET_API_TOKEN)
  --api-ca FILE         the CA (PEM) that signed its certificate, for https

JSON: {"released": [allocation...], "veths": [{"name", "containerId", "ifname", "result"}]};
result is "deleted", "absent" or "kept" (the attachment still holds an address).`,
  },
  {
    name: 'ipam gc',
    synopsis: 'ipam gc [--network N] [--dry-run] [--api URL]',
    summary: 'release addresses of CNI containers whose network namespace is gone',
    options: ['network', 'dry-run', 'api', 'api-token-file', 'api-ca'],
    maxPositionals: 0,
    help: `Releases the allocations of runtime "cni" whose recorded network namespace path no
longer exists, and deletes their host veths. Allocations that recorded no namespace, and
those of runtime "docker" (vxnetd collects those), are kept.

Options:
  --network N   only network N
  --dry-run     print what would be released, change nothing

Remote (vxnetd's operator API instead of this host's store; api/README.md):
  --api URL             a vxnetd's HTTP API, http://HOST:PORT or https://HOST:PORT (default
                        $VXNET_API; neither: the local store)
  --api-token-file FILE its bearer token (the first line; default $VXNET_API_TOKEN)
  --api-ca FILE         the CA (PEM) that signed its certificate, for https

JSON: {"dryRun", "checked", "note", "released": [allocation...], "veths": [...]}.`,
  },
  {
    name: 'hosts',
    synopsis: 'hosts [--store etcd://HOST:PORT[,HOST:PORT...] | --api URL] [--block-grace SEC]',
    summary: 'overlay hosts in the cluster store: underlay, VTEPs, blocks, lease state',
    options: ['store', 'block-grace', 'api', 'api-token-file', 'api-ca'],
    maxPositionals: 0,
    help: `Lists the hosts registered in the cluster store (etcd) by their vxnetd: one row per host
and overlay network with its underlay address, VTEP MAC and IPs, blocks, and lease state
("alive (ttl Ns)"); then the blocks of hosts whose lease expired, with the time left before
other hosts may reclaim them. A host that joined a network whose subnet has no free block
shows "none (subnet full)" in BLOCKS, and a line after the table says what it waits for: the
subnet, its blocks, who holds them and when the first may be reclaimed.

Options:
  --store URL         the cluster store, etcd://HOST:PORT[,HOST:PORT...] (default $VXNET_STORE;
                      one of the two is required). Gives up after a few seconds when etcd
                      does not answer.
  --block-grace SEC   the grace period vxnetd runs with (its --block-grace, default ${DEFAULT_BLOCK_GRACE_SECONDS}), for
                      the "reclaimable in" times

Remote (vxnetd's operator API instead of this host's store; api/README.md):
  --api URL             a vxnetd's HTTP API, http://HOST:PORT or https://HOST:PORT (default
                        $VXNET_API; neither: the local store)
  --api-token-file FILE its bearer token (the first line; default $VXNET_API_TOKEN)
  --api-ca FILE         the CA (PEM) that signed its certificate, for https

JSON: {"store", "hosts": [{"id", "underlay", "since", "lease", "ttlSeconds", "networks":
[{"network", "mac", "vteps", "blocks"}]}], "blocks": [{"network", "block", "hostId", "since",
"state", "orphanedAt"}], "waiting": [{"hostId", "network", "subnet", "blockPrefix", "blocks",
"holders": [{"hostId", "block", "state", "reclaimableAt"}], "nextReclaimableAt"}]}; state is
"held", "orphaned" or "reclaimable", times are epoch ms, ttlSeconds and the times are null
when unknown.`,
  },
  {
    name: 'network create',
    synopsis: 'network create NAME --vni N --subnet CIDR [--subnet CIDR6] [--block-prefix LEN] [--block-prefix6 LEN] [--mtu N] [--port N] [--store URL]',
    summary: 'define an overlay network for the whole cluster',
    options: ['store', 'vni', 'subnet', 'block-prefix', 'block-prefix6', 'mtu', 'port'],
    maxPositionals: 1,
    help: `Stores the definition of overlay network NAME in the cluster store, once for every host:
each host's vxnetd that joins it (vxnetd --store URL --overlay-network NAME, or every defined
network when vxnetd names none at start) leases a block of each subnet, and CNI configs
with "mode": "overlay" and this name attach containers to it. Defining it again identically
is a no-op; differently, an error (code 105) that shows both definitions.

Options:
  --vni N             VXLAN network identifier, 1-16777215, unique among the networks
  --subnet CIDR       the network's subnet; repeat once with an IPv6 subnet for dual stack
  --block-prefix LEN  prefix length of each host's IPv4 block (default 24, or one longer
                      than the subnet's)
  --block-prefix6 LEN the same for IPv6 (default 64)
  --mtu N             the overlay MTU (default: each host's underlay MTU minus 50)
  --port N            VXLAN UDP port (default 4789)
  --store URL         the cluster store, etcd://HOST:PORT[,HOST:PORT...] (default $VXNET_STORE)

JSON: {"network": {"name", "vni", "subnets", "blockPrefix", "blockPrefix6", "mtu", "port"},
"created"}.`,
  },
  {
    name: 'network ls',
    synopsis: 'network ls [--store URL]',
    summary: 'overlay networks defined in the cluster store, with hosts and blocks',
    options: ['store'],
    maxPositionals: 0,
    help: `Lists the overlay networks defined in the cluster store: VNI, subnets, block sizes, MTU
("auto": each host's underlay MTU minus 50), VXLAN port, how many hosts are registered on
it, how many blocks are held and how many are orphaned (their host's lease expired).

Options:
  --store URL   the cluster store, etcd://HOST:PORT[,HOST:PORT...] (default $VXNET_STORE)

JSON: {"store", "networks": [{"name", "vni", "subnets", "blockPrefix", "blockPrefix6", "mtu",
"port", "hosts": [id...], "blocks": {"held", "orphaned"}}]}; mtu is null for auto.`,
  },
  {
    name: 'network rm',
    synopsis: 'network rm NAME [--store URL]',
    summary: 'remove an overlay network no live host uses',
    options: ['store'],
    maxPositionals: 1,
    help: `Removes overlay network NAME's definition, member records and block records from the
cluster store. Refused (code 107) while a host whose lease is alive holds one of its blocks:
stop that host's vxnetd, or restart it without the network, first. Not found: code 106.

Options:
  --store URL   the cluster store, etcd://HOST:PORT[,HOST:PORT...] (default $VXNET_STORE)

JSON: {"network", "removed", "blocks"}.`,
  },
  {
    name: 'endpoint label',
    synopsis: 'endpoint label NAME KEY=VALUE... [--remove KEY]...',
    summary: 'set or remove operator labels on an endpoint name',
    options: ['remove', 'api', 'api-token-file', 'api-ca'],
    maxPositionals: Infinity,
    help: `Sets labels on the endpoints named NAME (a container's name: one DNS label, stored
lowercase), for runtimes that pass none: plain CNI, podman without its API socket. Labels
give an endpoint its service (vxnet.service) and its ports (vxnet.ports, e.g.
"http=8080,53/udp"). vxnetd picks a change up at once.

Which label wins, per key: operator labels (this command) over the runtime's own labels
(Docker's or podman's API) over CNI args labels (args.cni.labels).

  NAME          the endpoint name
  KEY=VALUE     set KEY (non-empty, no "=" or whitespace) to VALUE (printable; may be empty)
  --remove KEY  remove KEY; repeat for more

The labels live in DATA_DIR/endpoint-labels.json, edited under a lock (concurrent runs keep
each other's labels) and replaced atomically.

Remote (vxnetd's operator API instead of this host's store; api/README.md):
  --api URL             a vxnetd's HTTP API, http://HOST:PORT or https://HOST:PORT (default
                        $VXNET_API; neither: the local store)
  --api-token-file FILE its bearer token (the first line; default $VXNET_API_TOKEN)
  --api-ca FILE         the CA (PEM) that signed its certificate, for https

JSON: {"file", "name", "labels": {KEY: VALUE}} (the name's labels after the change).`,
  },
  {
    name: 'endpoint labels',
    synopsis: 'endpoint labels [NAME]',
    summary: 'operator labels of every endpoint name, or of one',
    options: ['api', 'api-token-file', 'api-ca'],
    maxPositionals: 1,
    help: `Lists the operator labels set with "vxnetctl endpoint label": one row per endpoint name
and label. These win over the runtime's own labels, which win over CNI args labels.

  NAME   only this endpoint name

Remote (vxnetd's operator API instead of this host's store; api/README.md):
  --api URL             a vxnetd's HTTP API, http://HOST:PORT or https://HOST:PORT (default
                        $VXNET_API; neither: the local store)
  --api-token-file FILE its bearer token (the first line; default $VXNET_API_TOKEN)
  --api-ca FILE         the CA (PEM) that signed its certificate, for https

JSON: {"file", "endpoints": {NAME: {KEY: VALUE}}}; with NAME {"file", "name", "labels"}.`,
  },
  {
    name: 'doctor',
    synopsis: 'doctor [--fix] [--overlay-dir DIR] [--store URL] [--api URL] [--vip-table NAME] [--server ADDR[:PORT]] [--conf-dir DIR] [--nat-table NAME]...',
    summary: 'compare what vxnet believes with what the kernel has; --fix repairs the safe part',
    options: ['fix', 'overlay-dir', 'store', 'api', 'vip-table', 'server', 'api-token-file', 'api-ca', 'conf-dir', 'nat-table'],
    maxPositionals: 0,
    help: `Compares, on this host, what vxnet believes (the IPAM store in the data directory, the
overlay agent's state files, the VIPs and the endpoint catalog vxnetd's API reports) with
what the kernel has (links, addresses, host routes, iptables FORWARD rules, nftables tables,
the VIP table's elements, the containers' network namespaces) and what vxnetd's DNS server
answers, both ways, and prints each problem found: what it is, how it likely happened, the
command that fixes it, and whether --fix may apply it.

Checked: allocations whose container's network namespace is gone (leaked), or whose host
veth is missing, off its bridge, or (overlay) without its host route; vxnet host veths (vx +
12 hex) and host routes through them that no allocation accounts for (orphans), veths a DEL
retired (vxz...) and never deleted; each network's bridge (missing, down, without its gateway
address) and its FORWARD accept rules (comment vxnet:BRIDGE), FORWARD rules of vxnet for
links that are gone; each overlay network's VXLAN device and its VTEP and gateway addresses,
and with a cluster store its neighbour, FDB and route entries against the peers in etcd,
and its routed setup's FORWARD accept rules by address (comment vxnet:DEVICE); masquerading:
a network whose setup record (its bridge's or VXLAN device's alias) says ipMasq must have its
subnets in the masq set of its nft table (ip/ip6 NAT_TABLE) and the table's postrouting chain
exactly vxnet's rule; an element of vxnet's tables (vxnet, those named by a setup record, by a
vxnet plugin in --conf-dir, by a Docker network record, or --nat-table) that no network has is
stale; IP forwarding where a gateway bridge or routed network needs it. A network whose
record cannot be read (no bridge here) is not judged;
the VIP table (nftables inet NAME) against vxnetd's VIPs (/v1/vips): missing, not vxnet's,
incomplete (chains, maps, base chains' rules), a VIP missing from it or stale in it, a VIP
whose backends differ (its slots compared with the weights), the hairpin sets; the DNS zone
against the catalog (/v1/endpoints, /v1/vips): the server in dns.json not answering, and for
every name the catalog gives (NAME.DOMAIN, NAME.NETWORK.DOMAIN, aliases, SERVICE.DOMAIN,
NAME.l4lb.DOMAIN) an A and AAAA question (256 in flight, 1 s per try, two tries): a name
missing, with other addresses, or unanswered. A VIP or DNS difference is reported only when a
second read a second later still shows it (a change in flight is not a problem); more than
10 of one kind are folded into one finding. Docker's endpoints are left to
vxnetd, which reconciles them against the Docker API. The store is taken as this host's only
one: a vxnet veth it does not account for is an orphan.

Safe, and applied by --fix: releasing a leaked allocation (history reason "vxnetctl doctor")
and deleting its veth; deleting an orphan or retired veth, an orphan host route, a FORWARD
rule of a link that is gone; inserting a network's missing FORWARD accept rules; re-adding a
missing masquerade element, table or rule (the setup's own idempotent nft script, in vxnet's
table); deleting a masquerade element no network's subnet and no address or host route here
overlaps. Each is decided again under the store's write lock, so a container or network
being created meanwhile is not touched. Not safe: turning forwarding on (the whole host's
routing), an element of a network whose record says it is not masqueraded there, a set or
chain not of vxnet's shape. The rest is left to the component that
made it (the next ADD, vxnetd): the finding names the command. No VIP or DNS finding is safe:
vxnetd is the only writer of its table and zone, and rebuilds both when it starts (its first
sync replaces the VIP table in one transaction; its guard restores hand edits while it runs).

Options:
  --fix              apply the safe fixes
  --overlay-dir DIR  the overlay agent's state files (default /run/vxnet/overlay)
  --store URL        the cluster store, etcd://HOST:PORT[,HOST:PORT...] (default $VXNET_STORE;
                     none: the peer entries are not checked; not answering within about 3 s:
                     a note, the rest is checked)
  --api URL          vxnetd's HTTP API, asked for its VIPs (default $VXNET_API, else
                     http://127.0.0.1:8123; not answering: the VIP table is not checked)
  --vip-table NAME   vxnetd's --vip-table (default vxnet-vip)
  --server ADDR[:PORT]  vxnetd's DNS server (default: the first nameserver in
                     /run/vxnet/dns.json, which vxnetd writes, or $VXNET_DNS_JSON's; port 53;
                     no file: the DNS zone is not checked), and the domain from that file
  --conf-dir DIR     the CNI config directory whose vxnet plugins name NAT tables (default
                     /etc/cni/net.d)
  --nat-table NAME   another NAT table vxnet uses (repeat for more)

Exit status: 0 nothing found; 3 problems found (with --fix: some left); 4 problems found and
all fixed by --fix; 1 the doctor itself failed; 2 usage error.

JSON: {"dataDir", "store", "overlayDir", "fix", "checked": {"allocations", "networks",
"overlays", "vxnetLinks", "vips", "dnsNames", "natTables", "forwardRules"}, "notes": [...],
"findings": [{"kind", "subject", "what", "why", "fix", "safe", "fixed", "error"}], "found",
"fixed"}; fixed is null without --fix. A checked field is null when its check did not run (a
note says why): vips (API not answering, --no-vip), dnsNames (no DNS server known or
answering), natTables (nft missing), forwardRules (no iptables).`,
  },
  {
    name: 'install',
    synopsis: 'install [--prefix DIR] [--cni-bin-dir DIR] [--bin-dir DIR] [--conflist [--conf-dir DIR] [--network NAME] [--subnet CIDR]...] [--systemd [--systemd-dir DIR]]',
    summary: 'install the built binaries and link them into the CNI and bin directories',
    options: ['prefix', 'cni-bin-dir', 'bin-dir', 'conflist', 'conf-dir', 'network', 'subnet', 'systemd', 'systemd-dir', 'docker-dns', 'docker-config'],
    maxPositionals: 0,
    help: `Copies the dist/ directory this vxnetctl runs from to DIR (through DIR.new and a rename,
so running plugins keep their files), links CNI_BIN_DIR/vxnet and CNI_BIN_DIR/vxnet-ipam
to it, and links vxnetctl and vxnetd into the bin directory.

Options:
  --prefix DIR        where vxnet lives (default ${DEFAULTS.prefix})
  --cni-bin-dir DIR   the runtimes' CNI plugin directory (default ${DEFAULTS.cniBinDir})
  --bin-dir DIR       where vxnetctl, vxnetd and vxnet-lb are linked (default ${DEFAULTS.binDir})
  --conflist          also write CONF_DIR/10-NAME.conflist, unless it exists
  --conf-dir DIR      the CNI config directory (default ${DEFAULTS.confDir})
  --network NAME      the network's name (default ${DEFAULTS.network})
  --subnet CIDR       its subnet (default ${DEFAULTS.subnet}); repeat for dual stack
  --systemd           also write SYSTEMD_DIR/vxnetd.service and vxnet-lb.service (from the bin
                      directory); then: systemctl daemon-reload && systemctl enable --now vxnetd
                      (and on edge hosts vxnet-lb)
  --systemd-dir DIR   where the unit goes (default ${DEFAULTS.systemdDir})
  --docker-dns        also set "dns": [198.51.100.1, .2, .3] (vxnetd's DNS) in Docker's daemon.json,
                      keeping its other keys (a malformed file is an error, left as it is);
                      dockerd must then be restarted. Per container: docker run --dns 198.51.100.1
  --docker-config F   the daemon.json to change (default /etc/docker/daemon.json)

JSON: {"source", "prefix", "replaced", "relocated", "links": [{"path", "target", "replaced"}],
"conflist": {"path", "written"} | null, "systemdUnit": path | null}.`,
  },
  {
    name: 'dns ls',
    synopsis: 'dns ls [--api URL]',
    summary: "endpoints in vxnet's DNS: names, addresses, ports, host, network, service",
    options: ['api', 'api-token-file', 'api-ca'],
    maxPositionals: 0,
    help: `Lists the endpoints (named containers) vxnetd's DNS knows, on this host and across the
cluster, from vxnetd's HTTP API (the Mesos-DNS API plus /v1/endpoints): name and aliases,
network, service, addresses, ports in their order (index n is port n; "http=8080/tcp" is a
named port), the host it runs on, and the names DNS answers for it now (an endpoint whose
name DNS cannot serve shows none).

Options:
  --api URL   vxnetd's HTTP API (default $VXNET_API, else http://127.0.0.1:8123)
  --api-token-file FILE, --api-ca FILE   its token (default $VXNET_API_TOKEN) and CA (https)

JSON: {"api", "endpoints": [{"id", "name", "aliases", "network", "host", "runtime",
"containerId", "addresses", "ports": [{"port", "protocol", "name"}], "service", "labels",
"dnsNames"}]}; service and a port's name are null when there is none.`,
  },
  {
    name: 'dns query',
    synopsis: 'dns query NAME [TYPE] [--server ADDR[:PORT]]',
    summary: "ask vxnet's DNS server one question, print the answer as dig does",
    options: ['server'],
    maxPositionals: 2,
    help: `Sends one query for NAME (type TYPE, default A) over UDP, and again over TCP when the
answer is truncated, and prints the status and the answer, authority and additional
records. A NAME without a dot gets the domain appended ("web" asks web.vxnet.); an address
asks for its PTR record. The status is NOERROR for a name that exists, even with no record
of TYPE; NXDOMAIN, SERVFAIL, REFUSED or no answer within 2 s (two tries) exit 1.

  TYPE                    ${QUERY_TYPES.join(', ')}
  --server ADDR[:PORT]    the server (default: the first nameserver in /run/vxnet/dns.json,
                          which vxnetd writes, else 198.51.100.1; port 53). The domain also
                          comes from dns.json (default vxnet); $VXNET_DNS_JSON names another file.

JSON: {"server", "transport", "truncatedOverUdp", "name", "type", "rcode", "flags",
"answers": [{"name", "ttl", "type", "data"}], "authorities", "additionals", "elapsedMs"}.`,
  },
  {
    name: 'vip ls',
    synopsis: 'vip ls [--api URL]',
    summary: 'VIPs: address, protocol, port, backends with host and state',
    options: ['api', 'api-token-file', 'api-ca'],
    maxPositionals: 0,
    help: `Lists the VIPs vxnetd balances, as it gave them to the kernel, from its HTTP API (/v1/vips):
one row per backend under its VIP. A VIP comes from endpoint labels VIP_<n>=/NAME:PORT (named:
its address derived from the name, NAME.l4lb.DOMAIN in DNS) or VIP_<n>=IP:PORT, optionally
prefixed tcp:// or udp://; its backends are the labelled endpoints' addresses at their port n.
STATE is "up", "unhealthy" or "starting" (Docker's health check): only "up" backends get new
connections. WEIGHT comes from the endpoint's label vxnet.weight (1-100, default 1).
ADDRESSES "(pending)": the named VIP's address is not claimed yet (etcd unreachable?).

Options:
  --api URL   vxnetd's HTTP API (default $VXNET_API, else http://127.0.0.1:8123)
  --api-token-file FILE, --api-ca FILE   its token (default $VXNET_API_TOKEN) and CA (https)

JSON: {"api", "vips": [{"vip", "name", "addresses", "protocol", "port", "backends": [{"endpoint",
"name", "host", "ip", "port", "weight", "state"}]}]}; name is absent for an IP VIP.`,
  },
  {
    name: 'vip show',
    synopsis: 'vip show NAME|ADDRESS [--api URL]',
    summary: 'the VIPs of one name (every port), or at one address',
    options: ['api', 'api-token-file', 'api-ca'],
    maxPositionals: 1,
    help: `Shows the VIPs named NAME (a leading "/" is allowed: /web), one per protocol and port, or
those at ADDRESS, with their backends, as "vip ls" does. None: exit 1 (code 106).

Options:
  --api URL   vxnetd's HTTP API (default $VXNET_API, else http://127.0.0.1:8123)
  --api-token-file FILE, --api-ca FILE   its token (default $VXNET_API_TOKEN) and CA (https)

JSON: {"api", "vips": [...]} as "vip ls".`,
  },
  {
    name: 'lb ls',
    synopsis: 'lb ls [--lb URL]',
    summary: 'the edge balancer: frontends, vhosts, backends, servers with state',
    options: ['lb'],
    maxPositionals: 0,
    help: `Shows what vxnet-lb (the HAProxy edge balancer, on an edge host) serves, from its local
listener (GET /v1/lb): each frontend with its bind address and rules (vhosts, path prefix, the
backend they lead to, in HAProxy's order), then each backend (mode, balance, health check,
HAProxy's status) with one row per server: its slot, endpoint, address, weight, state (up,
down, drain, maint, nolb; "unknown": HAProxy did not answer) and current sessions. A leaving
server shows as "drain" until its requests have finished.

Options:
  --lb URL   vxnet-lb's listener (default $VXNET_LB, else http://127.0.0.1:9091; vxnet-lb
             --metrics-listen)

JSON: {"lb", "haproxy": {"pid", "up"}, "reloads", "runtimeChanges", "refused", "frontends": [{"name",
"bind", "mode", "rules": [{"vhosts", "path", "redirectToHttps", "backend"}]}], "backends": [{"name",
"mode", "balance", "sticky", "health", "status", "slots", "servers": [{"slot", "endpoint",
"address", "weight", "state", "status", "sessions", "draining"}]}]}.`,
  },
];

export const USAGE = `Usage: vxnetctl [--data-dir DIR] [--json] COMMAND [ARGS]

Operates vxnet on this host: IPAM state and history, overlay hosts, operator labels on
endpoints, DNS, VIPs, the edge balancer, the kernel against vxnet's state (doctor), installation.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(16)}${c.summary}`).join('\n')}
  help [COMMAND]  this text, or a command's

Global options:
  --data-dir DIR  vxnet's data directory: the embedded store, endpoint-labels.json
                  (default $VXNET_DATA_DIR, else ${DEFAULTS.dataDir})
  --json          machine output with stable field names
  -h, --help      help, for vxnetctl or for a command
  --version       print the version

Exit status: 0 success, 1 failure, 2 usage error (doctor also 3 and 4: see its help).
`;

const GLOBAL_HELP = `Global options: --data-dir DIR, --json, -h/--help (see vxnetctl --help).`;

const groupUsage = (group: string): string => `Usage: vxnetctl ${group} COMMAND [ARGS]

Commands:
${COMMANDS.filter((c) => c.name.startsWith(`${group} `)).map((c) => `  ${c.synopsis}\n      ${c.summary}`).join('\n')}

Run "vxnetctl ${group} COMMAND --help" for a command's options.
`;

/** Commands of two words: the group's usage. */
const GROUPS: Readonly<Record<string, string>> = { ipam: groupUsage('ipam'), network: groupUsage('network'), endpoint: groupUsage('endpoint'), dns: groupUsage('dns'), vip: groupUsage('vip'), lb: groupUsage('lb') };

export function commandHelp(name: CommandName): string {
  const spec = COMMANDS.find((c) => c.name === name) as CommandSpec;
  return `Usage: vxnetctl ${spec.synopsis}\n\n${spec.help}\n\n${GLOBAL_HELP}\n`;
}

export type Invocation =
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'version'; readonly values: Values }
  | { readonly kind: 'run'; readonly command: CommandName; readonly values: Values; readonly positionals: readonly string[] };

const ALIASES: Readonly<Record<string, string>> = { list: 'ls', remove: 'rm', delete: 'rm' };

/** The command the words name: its spec and how many words it took, or a group's help. */
function resolve(words: readonly string[]): { spec?: CommandSpec; used: number; groupHelp?: string } {
  if (words.length === 0) return { used: 0, groupHelp: USAGE };
  const group = GROUPS[words[0]];
  if (group !== undefined) {
    if (words.length === 1) return { used: 1, groupHelp: group };
    const sub = ALIASES[words[1]] ?? words[1];
    const spec = COMMANDS.find((c) => c.name === `${words[0]} ${sub}`);
    if (!spec) throw new UsageError(`unknown command "${words[0]} ${words[1]}" (see vxnetctl ${words[0]} --help)`);
    return { spec, used: 2 };
  }
  const spec = COMMANDS.find((c) => c.name === words[0]);
  if (!spec) throw new UsageError(`unknown command "${words[0]}" (see vxnetctl --help)`);
  return { spec, used: 1 };
}

const helpHint = (spec: CommandSpec | undefined): string => `see vxnetctl ${spec ? spec.name + ' ' : ''}--help`;

/** parseArgs' messages, recast as one short line. */
function parseError(err: unknown, hint: string): UsageError {
  const e = err as { code?: string; message?: string };
  const quoted = /'(-[^' ]*)/.exec(e.message ?? '')?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new UsageError(`unknown option ${quoted ?? ''} (${hint})`);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return new UsageError(/does not take/.test(e.message ?? '')
        ? `option ${quoted} takes no value (${hint})`
        : `option ${quoted} needs a value (${hint})`);
    default:
      return new UsageError(`${(e.message ?? String(err)).split('\n')[0]} (${hint})`);
  }
}

/** Parses argv (without node and the script); throws UsageError. */
export function parseCommandLine(argv: readonly string[]): Invocation {
  // A lenient first pass names the command, so errors of the strict pass can point at its help.
  let guess: CommandSpec | undefined;
  try {
    const loose = parseArgs({ args: [...argv], options: OPTIONS, strict: false, allowPositionals: true });
    guess = resolve(loose.positionals.filter((p) => p !== 'help')).spec;
  } catch { /* the strict pass reports it */ }

  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true, tokens: true });
  } catch (err) {
    throw parseError(err, helpHint(guess));
  }
  const values = parsed.values as Values;
  let words = parsed.positionals;

  const helpCommand = words[0] === 'help';
  if (helpCommand) words = words.slice(1);
  if (values.version && words.length === 0 && !helpCommand && !values.help) return { kind: 'version', values };

  const { spec, used, groupHelp } = resolve(words);
  if (!spec) return { kind: 'help', text: groupHelp ?? USAGE };

  const allowed = new Set<OptionName>([...GLOBAL_OPTIONS, ...spec.options]);
  for (const token of parsed.tokens) {
    if (token.kind === 'option' && !allowed.has(token.name as OptionName)) {
      const why = token.name === 'api' ? NO_API[spec.name] : undefined;
      if (why !== undefined) throw new UsageError(`option --api does not apply to "vxnetctl ${spec.name}": ${why}`);
      throw new UsageError(`option ${token.rawName} does not apply to "vxnetctl ${spec.name}" (${helpHint(spec)})`);
    }
  }
  if (helpCommand || values.help) return { kind: 'help', text: commandHelp(spec.name) };
  if (values.version) throw new UsageError(`option --version does not apply to "vxnetctl ${spec.name}" (${helpHint(spec)})`);

  const positionals = words.slice(used);
  if (positionals.length > spec.maxPositionals) {
    throw new UsageError(`unexpected argument "${positionals[spec.maxPositionals]}" to "vxnetctl ${spec.name}" (${helpHint(spec)})`);
  }
  for (const name of ['data-dir', 'network', 'container', 'ifname', 'cni-bin-dir', 'conf-dir', 'prefix', 'bin-dir', 'systemd-dir', 'store', 'vni', 'block-prefix', 'block-prefix6', 'mtu', 'port', 'api', 'api-token-file', 'api-ca', 'server', 'overlay-dir', 'vip-table', 'lb'] as const) {
    if (values[name] === '') throw new UsageError(`option --${name} needs a non-empty value (${helpHint(spec)})`);
  }
  if (values.remove?.includes('')) throw new UsageError(`option --remove needs a non-empty value (${helpHint(spec)})`);
  return { kind: 'run', command: spec.name, values, positionals };
}
