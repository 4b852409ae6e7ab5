import t from 'tap';
import { startEtcd } from '../helpers/etcd';
t.test('one member', async (t) => {
  const c = await startEtcd(t);
  t.equal(c.endpoints.length, 1);
  await c.kill(0); t.notOk(c.running(0));
  await c.restart(0); t.ok(c.running(0));
});
t.test('three members', async (t) => {
  const s = Date.now();
  const c = await startEtcd(t, { members: 3 });
  t.comment(`up in ${Date.now() - s} ms ${c.storeUrl}`);
  await c.kill(1);
  await c.restart(1);
  await c.kill(0); await c.kill(1);
  await c.restart(0);
  t.pass();
});
