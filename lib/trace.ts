// VXNET_TRACE=1 prints, on stderr, the milliseconds since the process started at each named
// step of an exec'd command: where an ADD's time goes, measured rather than guessed.
let enabled: boolean | undefined;

export function trace(step: string): void {
  enabled ??= process.env.VXNET_TRACE === '1';
  if (enabled) process.stderr.write(`vxnet-trace ${step} ${performance.now().toFixed(2)}\n`);
}
