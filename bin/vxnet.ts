// vxnet: the CNI plugin a runtime execs (bridge and overlay networks). See README "Configuration reference".
import { runPlugin } from '../cni/skel';
import { vxnetPlugin } from '../cni/vxnet';
import { warmUpCni } from '../cni/warmup';
import { startMain } from '../lib/main';
import { VERSION } from '../lib/version';

function main(): Promise<never> | void {
  if (process.argv.includes('--version') || process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(`vxnet ${VERSION}: the vxnet CNI plugin (bridge and overlay networks).
A runtime execs it with CNI_COMMAND (ADD, DEL, CHECK, STATUS, GC, VERSION) and the network
configuration on stdin; it is not meant to be run by hand. Supported CNI versions: 0.3.0 to 1.1.0.
Configuration reference: README.md, "The vxnet plugin".
`);
    process.exit(0);
  }
  return runPlugin(vxnetPlugin);
}

startMain(main, warmUpCni);
