// Started by nft-session.test.ts: runs `nft monitor` in the namespace argv[2] through NftRunner,
// prints the monitor's pid and waits to be killed (the test SIGKILLs it).
import { NftRunner } from '../../../net/nft';

const monitor = new NftRunner({ netns: process.argv[2] as string }).monitor(() => undefined, () => undefined);
process.stdout.write(`${monitor.pid}\n`);
setInterval(() => undefined, 60_000);
