import { VERSION } from '../lib/version';
process.stdout.write(`vxnet ${VERSION}\n`);
