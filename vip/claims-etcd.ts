// Named-VIP address claims in the cluster store: key PREFIX ADDRESS, value the VIP's name,
// created only if absent in one guarded transaction, so when two hosts claim one address for
// two names at once etcd orders them and both read the same winner. Not under a lease: an
// address stays its name's when every host restarts (see ./address.ts). The only etcd access
// of vip/.
import type { EtcdClient } from '../etcd/client';
import type { ClaimStore } from './address';

export const CLAIM_PREFIX = '/vxnet/vips/addresses/';

export class EtcdClaims implements ClaimStore {
  readonly description: string;
  constructor(private readonly client: EtcdClient, private readonly prefix = CLAIM_PREFIX) {
    this.description = `claims in etcd under ${prefix}`;
  }

  async claim(address: string, name: string): Promise<string> {
    const key = `${this.prefix}${address}`;
    for (;;) {
      const r = await this.client.txn(`claim VIP address ${address} for /${name}`, {
        if: [{ key, absent: true }], then: [{ put: key, value: name }], else: [{ get: key }],
      });
      if (r.succeeded) return name;
      const holder = r.responses[0]?.response_range?.kvs[0]?.value.toString();
      // Gone between the guard and the read only if an operator deleted it: claim again.
      if (holder !== undefined) return holder;
    }
  }

  async list(): Promise<ReadonlyMap<string, string>> {
    const { kvs } = await this.client.range('read VIP address claims', this.prefix);
    return new Map(kvs.map((kv) => [kv.key.toString().slice(this.prefix.length), kv.value.toString()]));
  }
}
