// vxnetctl in-process for tests: main() with captured stdout/stderr and a given environment.
import { main } from '../../ctl/main';
import type { Io } from '../../ctl/context';

export interface CtlRun { code: number; stdout: string; stderr: string }

export async function ctl(argv: string[], env: Record<string, string> = {}, over: Partial<Io> = {}): Promise<CtlRun> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (s) => { stdout += s; }, stderr: (s) => { stderr += s; }, env, now: Date.now, distDir: '/nonexistent', ...over,
  } satisfies Io);
  return { code, stdout, stderr };
}
