// vxnetctl: the operator's command line (see ctl/). Bundled to dist/bin/vxnetctl, so dist/ is
// this file's parent directory: what `vxnetctl install` copies.
import * as path from 'node:path';
import { main } from '../ctl/main';

// `vxnetctl ipam ls | head` closes the pipe early: that is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2), {
  stdout: (text) => { process.stdout.write(text); },
  stderr: (text) => { process.stderr.write(text); },
  env: process.env,
  now: Date.now,
  distDir: path.resolve(__dirname, '..'),
}).then((code) => { process.exitCode = code; }, (err: unknown) => {
  process.stderr.write(`vxnetctl: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
