// vxnetd: the vxnet host daemon (Docker's remote network and IPAM driver, the CNI plugin's
// hand-off, and with --store the overlay agent). Flags: daemon/flags.ts and `vxnetd --help`;
// the services and their order: daemon/vxnetd.ts. Bundled to dist/lib/vxnetd.js, which
// scripts/build.mjs copies to dist/bin/vxnetd with a node shebang.
import { main } from '../daemon/vxnetd';

void main(process.argv.slice(2));
