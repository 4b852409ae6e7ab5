// vxnetd: the vxnet host daemon (Docker's remote network and IPAM driver; with --store, the
// overlay agent too). See daemon/vxnetd.ts and `vxnetd --help`. Bundled to dist/bin/vxnetd.
import { main } from '../daemon/vxnetd';

void main(process.argv.slice(2));
