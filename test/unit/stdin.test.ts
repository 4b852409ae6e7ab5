// Whether fd 0 blocks, told from /proc/self/fdinfo (lib/stdin.ts): the plugins read a blocking
// stdin with readFileSync and a non-blocking one with the loop that keeps partial reads. Pure
// parsing here; the integration tests run the built plugins with real pipes.
import t from 'tap';
import { stdinBlocks } from '../../lib/stdin';

t.test('stdinBlocks reads O_NONBLOCK from fdinfo flags (octal)', async (t) => {
  t.equal(stdinBlocks('pos:\t0\nflags:\t02000000\nmnt_id:\t15\nino:\t1234\n'), true, 'O_RDONLY|O_CLOEXEC: blocks');
  t.equal(stdinBlocks('pos:\t0\nflags:\t02004002\nmnt_id:\t15\n'), false, 'O_NONBLOCK set: does not');
  t.equal(stdinBlocks('pos:\t0\nflags:\t04000\n'), false, 'O_NONBLOCK alone');
  t.equal(stdinBlocks('pos:\t0\nflags:\t0100002\n'), true, 'O_RDWR|O_LARGEFILE');
  t.equal(stdinBlocks('pos:\t0\nmnt_id:\t15\n'), false, 'no flags line: unknown, so not assumed blocking');
  t.equal(stdinBlocks('flags:\tzz\n'), false, 'unreadable flags: unknown');
});
