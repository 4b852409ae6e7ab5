// The hand-off client's exchange over a unix socket (handoff/unix-exchange.ts), both transports
// against a real local server: the first line of the answer, or an error when none comes.
import t from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { exchange, rawBindings } from '../../handoff/unix-exchange';

const run = (socket: string, request: string, transport: 'pipe_wrap' | 'net'): Promise<{ err?: string; line?: string }> => {
  const before = process.env.VXNET_HANDOFF_TRANSPORT;
  process.env.VXNET_HANDOFF_TRANSPORT = transport === 'net' ? 'net' : '';
  try {
    return new Promise((resolve) => exchange(socket, request, (err, line) => resolve(err ? { err: err.message } : { line })));
  } finally {
    if (before === undefined) delete process.env.VXNET_HANDOFF_TRANSPORT;
    else process.env.VXNET_HANDOFF_TRANSPORT = before;
  }
};

t.test('Node 20\'s pipe binding has the shape the fast transport needs', async (t) => {
  t.ok(rawBindings(), 'pipe_wrap usable (else every hand-off silently takes the slower node:net path)');
});

for (const transport of ['pipe_wrap', 'net'] as const) {
  t.test(`${transport}: request in, first answer line out; errors when no line comes`, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vxnet-exchange-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const socket = path.join(dir, 's.sock');
    const received: string[] = [];
    const server = net.createServer((s) => {
      let got = '';
      s.on('data', (b) => {
        got += b.toString();
        if (!got.endsWith('\n')) return;
        received.push(got);
        if (got.startsWith('close')) { s.destroy(); return; }
        if (got.startsWith('split')) {
          // The answer in three pieces, then a second line that must not be returned.
          s.write('{"a":');
          setTimeout(() => s.write('1,"b":"é"'), 5);
          setTimeout(() => s.end('}\n{"second":true}\n'), 10);
          return;
        }
        s.end(`echo ${got.length}\n`);
      });
    });
    await new Promise<void>((r) => server.listen(socket, () => r()));
    t.teardown(() => server.close());

    const big = `x${'y'.repeat(200_000)}\n`;
    t.same(await run(socket, 'hello\n', transport), { line: 'echo 6' });
    t.same(await run(socket, big, transport), { line: `echo ${big.length}` }, 'a 200 kB request arrives whole');
    t.same(await run(socket, 'split\n', transport), { line: '{"a":1,"b":"é"}' }, 'a line across chunks; only the first line');
    t.match(await run(socket, 'close\n', transport), { err: /./ }, 'closed without an answer: an error');
    t.match(await run(path.join(dir, 'missing.sock'), 'x\n', transport), { err: /./ }, 'no socket: an error');
    t.equal(received.length, 4, 'the server saw the four requests that reached it');
  });
}
