// vxnetd: the vxnet host daemon (Docker's remote network and IPAM driver, the CNI plugin's
// hand-off, DNS, the HTTP API, and with --store the overlay agent). Flags: bin/vxnetd/flags.ts and `vxnetd --help`;
// the services and their order: bin/vxnetd/compose.ts. Bundled to dist/lib/vxnetd.js, which
// scripts/build.mjs copies to dist/bin/vxnetd with a node shebang.
import { main } from './vxnetd/compose';

void main(process.argv.slice(2));
