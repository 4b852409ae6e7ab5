// vxnetctl install --docker-dns: daemon.json gets vxnetd's three DNS addresses, its other keys
// kept; a malformed file is an error and left as it was; a missing one is created.
import t from 'tap';
import * as fs from 'node:fs';
import { DOCKER_DNS, mergeDockerDns, writeDockerDns } from '../../ctl/install';

t.test('mergeDockerDns', async (t) => {
  t.same(JSON.parse(mergeDockerDns('{"log-driver":"local","dns":["8.8.8.8"]}', 'f')), { 'log-driver': 'local', dns: [...DOCKER_DNS] }, 'other keys kept, dns replaced');
  t.same(JSON.parse(mergeDockerDns(undefined, 'f')), { dns: ['198.51.100.1', '198.51.100.2', '198.51.100.3'] }, 'no file: just dns');
  t.throws(() => mergeDockerDns('{"a":', '/etc/docker/daemon.json'), { name: 'IoFailure', message: /daemon.json is not valid JSON/ });
  t.throws(() => mergeDockerDns('[1]', 'f'), { name: 'IoFailure', message: /not a JSON object/ });
});

t.test('writeDockerDns', async (t) => {
  const dir = t.testdir({ 'daemon.json': '{"debug":true}', 'bad.json': '{nope' });
  writeDockerDns(`${dir}/daemon.json`);
  t.same(JSON.parse(fs.readFileSync(`${dir}/daemon.json`, 'utf8')), { debug: true, dns: [...DOCKER_DNS] });
  t.throws(() => writeDockerDns(`${dir}/bad.json`), { name: 'IoFailure' });
  t.equal(fs.readFileSync(`${dir}/bad.json`, 'utf8'), '{nope', 'a malformed file is not overwritten');
  writeDockerDns(`${dir}/new/daemon.json`);
  t.same(JSON.parse(fs.readFileSync(`${dir}/new/daemon.json`, 'utf8')), { dns: [...DOCKER_DNS] }, 'missing: created');
});
