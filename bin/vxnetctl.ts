import { VERSION } from '../lib/version';
process.stdout.write(`vxnetctl ${VERSION}\n`);
