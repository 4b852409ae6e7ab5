// vxnet-ipam: the CNI IPAM plugin other plugins delegate to. See README.
import { runPlugin } from '../cni/skel';
import { vxnetIpamPlugin } from '../cni/vxnet-ipam';
import { warmUpCni } from '../cni/warmup';
import { startMain } from '../lib/main';
import { VERSION } from '../lib/version';

function main(): Promise<never> | void {
  if (process.argv.includes('--version') || process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(`vxnet-ipam ${VERSION}: the vxnet CNI IPAM plugin.
Other plugins (bridge, macvlan, ptp, vxnet) exec it with CNI_COMMAND and the network
configuration on stdin; its "ipam" section takes host-local's "ranges", "routes" and "dataDir".
Supported CNI versions: 0.3.0 to 1.1.0. Reference: README.md, "The vxnet-ipam plugin".
`);
    process.exit(0);
  }
  return runPlugin(vxnetIpamPlugin);
}

startMain(main, warmUpCni);
