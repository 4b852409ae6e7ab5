import { VERSION } from '../lib/version';
process.stdout.write(`vxnetd ${VERSION}\n`);
