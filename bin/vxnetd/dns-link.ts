// The link that holds vxnetd's default DNS addresses (198.51.100.1-3). DC/OS put them on a
// dummy interface; this kernel has no dummy links, so it is a bridge with no ports: a local
// address on any link that is up is the host's, so packets a container sends to it through
// its gateway are delivered locally (test/integration/vxnetd-dns.test.ts checks it from a
// netns). Idempotent: an existing link and its addresses are reused, so a restart needs
// nothing undone first; they are left in place when vxnetd stops, as a dummy interface would
// be (the addresses answer nothing then; a resolver moves on to its next server).
import * as fs from 'node:fs';
import { type Ip, familyBits, formatIp } from '../../ipam/addr';
import { DatapathFailure } from '../../lib/errors';
import type { Rtnl } from '../../net/rtnl';

/** Ensures `name` is a bridge, up, holding each address as a host route (/32, /128). */
export async function ensureDnsLink(host: Rtnl, name: string, addresses: readonly Ip[]): Promise<void> {
  let link = await host.link(name);
  if (link && link.kind !== 'bridge') {
    throw new DatapathFailure(`${name} exists and is a ${link.kind ?? 'plain'} device, not a bridge; choose another --dns-link`);
  }
  if (!link) {
    await host.createBridge(name, undefined);
    link = await host.link(name);
    if (!link) throw new DatapathFailure(`${name} vanished right after it was created`);
    // Nothing is behind it: no router advertisements to learn from.
    try { fs.writeFileSync(`/proc/sys/net/ipv6/conf/${name}/accept_ra`, '0'); } catch { /* IPv6 disabled */ }
  }
  const held = new Set((await host.addresses(link.index)).map((a) => `${formatIp(a.cidr.ip)}/${a.cidr.prefix}`));
  for (const ip of addresses) {
    const prefix = familyBits(ip.family);
    if (!held.has(`${formatIp(ip)}/${prefix}`)) await host.addAddress(link.index, { ip, prefix });
  }
  if (!link.up) await host.setLink(link.index, { up: true });
}
