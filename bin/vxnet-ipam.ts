import { VERSION } from '../lib/version';
process.stdout.write(`vxnet-ipam ${VERSION}\n`);
