// Runs an executable's main function now, or, while a V8 startup snapshot of the bundle is
// being built, registers it to run when the snapshot is started (scripts/build.mjs).
import * as v8 from 'node:v8';

export function startMain(main: () => unknown, warmUp?: () => void): void {
  const snapshot = (v8 as { startupSnapshot?: { isBuildingSnapshot(): boolean; setDeserializeMainFunction(fn: () => void): void } }).startupSnapshot;
  if (snapshot?.isBuildingSnapshot()) {
    warmUp?.();
    snapshot.setDeserializeMainFunction(() => { void main(); });
  } else {
    void main();
  }
}
