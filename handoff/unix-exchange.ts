// One exchange over a unix stream socket for the hand-off client (./client.ts): connect, send a
// request, hand back the first line of the answer.
//
// Two transports with one behaviour. The fast one drives Node's own pipe handle (the
// `pipe_wrap` binding node:net is built on) directly: loading node:net and setting up a
// net.Socket costs about 4 ms here, in a call whose whole budget above Node's start-up is a
// few milliseconds (bench: a CNI ADD against `node -e 0`). process.binding is deprecated and
// unstable, so it is used only when the binding has exactly the shape this code knows (checked
// before anything is called: a wrong argument to it aborts the process instead of throwing);
// otherwise, or with VXNET_HANDOFF_TRANSPORT=net, node:net does the same exchange.
/** err set: nothing usable came back (refused, reset, closed before a whole line). */
export type ExchangeDone = (err: Error | undefined, line: string | undefined) => void;

interface PipeHandle {
  connect(req: object, path: string): number;
  writeUtf8String(req: object, text: string): number;
  readStart(): number;
  close(): void;
  onread: (arrayBuffer: ArrayBuffer | undefined) => void;
}

interface RawBindings {
  readonly Pipe: new (type: number) => PipeHandle;
  readonly PipeConnectWrap: new () => { oncomplete?: (status: number) => void };
  readonly WriteWrap: new () => { handle?: PipeHandle; oncomplete?: (status: number) => void };
  readonly socketType: number;
  readonly state: Int32Array;
  readonly kBytes: number;
  readonly kOffset: number;
}

/** Node's pipe and stream bindings, if they are the ones this code was written against. */
export function rawBindings(): RawBindings | undefined {
  try {
    const binding = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding;
    if (typeof binding !== 'function') return undefined;
    const pipe = binding('pipe_wrap');
    const stream = binding('stream_wrap');
    const Pipe = pipe.Pipe as RawBindings['Pipe'] | undefined;
    const constants = pipe.constants as { SOCKET?: unknown } | undefined;
    const proto = typeof Pipe === 'function' ? (Pipe.prototype as Partial<Record<keyof PipeHandle, unknown>>) : undefined;
    if (!Pipe || !proto || typeof constants?.SOCKET !== 'number') return undefined;
    if (typeof pipe.PipeConnectWrap !== 'function' || typeof stream.WriteWrap !== 'function') return undefined;
    if (typeof proto.connect !== 'function' || typeof proto.writeUtf8String !== 'function'
      || typeof proto.readStart !== 'function' || typeof proto.close !== 'function') return undefined;
    if (!(stream.streamBaseState instanceof Int32Array)) return undefined;
    if (typeof stream.kReadBytesOrError !== 'number' || typeof stream.kArrayBufferOffset !== 'number') return undefined;
    return {
      Pipe, PipeConnectWrap: pipe.PipeConnectWrap as RawBindings['PipeConnectWrap'], WriteWrap: stream.WriteWrap as RawBindings['WriteWrap'],
      socketType: constants.SOCKET, state: stream.streamBaseState, kBytes: stream.kReadBytesOrError, kOffset: stream.kArrayBufferOffset,
    };
  } catch {
    return undefined;
  }
}

/** Collects chunks until the first newline; `done` is called once. */
function firstLine(done: ExchangeDone): { chunk(b: Buffer): boolean; end(err: Error): void } {
  const chunks: Buffer[] = [];
  let finished = false;
  return {
    chunk(b) {
      if (finished) return true;
      chunks.push(b);
      const all = Buffer.concat(chunks);
      const nl = all.indexOf(10);
      if (nl < 0) return false;
      finished = true;
      done(undefined, all.subarray(0, nl).toString('utf8'));
      return true;
    },
    end(err) {
      if (finished) return;
      finished = true;
      done(err, undefined);
    },
  };
}

function exchangeRaw(b: RawBindings, path: string, request: string, done: ExchangeDone): void {
  const handle = new b.Pipe(b.socketType);
  const line = firstLine(done);
  let open = true;
  const close = (): void => { if (open) { open = false; handle.close(); } };
  const fail = (what: string, status: number): void => {
    close();
    line.end(new Error(`${what} ${path} failed (${status})`));
  };
  // Kept referenced until the binding calls back.
  const write = new b.WriteWrap();
  write.handle = handle;
  write.oncomplete = (status) => { if (status < 0) fail('writing to', status); };
  const connect = new b.PipeConnectWrap();
  connect.oncomplete = (status) => {
    if (status < 0) { fail('connecting to', status); return; }
    handle.onread = (arrayBuffer) => {
      const n = b.state[b.kBytes];
      if (n > 0 && arrayBuffer) {
        if (line.chunk(Buffer.from(arrayBuffer, b.state[b.kOffset], n))) close();
      } else if (n < 0) {
        fail('reading from', n);
      }
    };
    const w = handle.writeUtf8String(write, request);
    if (w < 0) { fail('writing to', w); return; }
    const r = handle.readStart();
    if (r < 0) fail('reading from', r);
  };
  const c = handle.connect(connect, path);
  if (c < 0) fail('connecting to', c);
}

function exchangeNet(path: string, request: string, done: ExchangeDone): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const net = require('node:net') as typeof import('node:net');
  const line = firstLine(done);
  const sock = net.connect(path);
  sock.on('error', (err) => line.end(err));
  sock.on('close', () => line.end(new Error(`${path} closed before answering`)));
  sock.on('data', (b: Buffer) => { if (line.chunk(b)) sock.destroy(); });
  sock.write(request);
}

/** Sends `request` to the unix socket at `path`; `done` gets the first line of the answer. */
export function exchange(path: string, request: string, done: ExchangeDone): void {
  const raw = process.env.VXNET_HANDOFF_TRANSPORT === 'net' ? undefined : rawBindings();
  if (raw) exchangeRaw(raw, path, request, done);
  else exchangeNet(path, request, done);
}
