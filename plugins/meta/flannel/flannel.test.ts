/**
 * flannel's verbs with the delegate behind a fake Exec (no kernel, no
 * exec): what the delegate is handed, what is kept in <dataDir>/<id> and
 * what a failed ADD leaves.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FuncExec, type PluginFunc } from '../../pkg/invoke/plugin-exec';
import { processHost } from '../../pkg/host/process';
import { about, handle } from '../../pkg/skel/skel';
import { createFlannelPlugin } from './flannel';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'flax-flannel-'));
  writeFileSync(path.join(dir, 'subnet.env'), 'FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const conf = () => JSON.stringify({
  cniVersion: '1.0.0', name: 'cbr0', type: 'flannel', subnetFile: path.join(dir, 'subnet.env'), dataDir: path.join(dir, 'data'),
  delegate: { hairpinMode: true, isDefaultGateway: true },
});
const RESULT = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/run/netns/p' }], ips: [{ address: '10.1.17.2/24', gateway: '10.1.17.1', interface: 0 }] };
const call = (exec: FuncExec, command: string) => handle(createFlannelPlugin({ exec }), about('flannel'), {
  command, containerId: 'ctr1', netns: '/run/netns/p', ifname: 'eth0', path: '/opt/cni/bin', stdin: conf(),
}, processHost());
const stored = () => path.join(dir, 'data', 'ctr1');

describe('flannel delegates through the Exec of its context', () => {
  it('ADD hands the delegate the rendered config it keeps for DEL, and answers with its result; DEL hands it back and forgets it', async () => {
    const bridge: PluginFunc = async (env) => ({ stdout: env.CNI_COMMAND === 'ADD' ? JSON.stringify(RESULT) : '', exitCode: 0 });
    const exec = new FuncExec({ bridge });
    const add = await call(exec, 'ADD');
    expect(add.exitCode).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ ips: [{ address: '10.1.17.2/24', gateway: '10.1.17.1' }] });
    const kept = readFileSync(stored(), 'utf8');
    expect(exec.calls[0]).toMatchObject({ plugin: 'bridge', stdin: kept, env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr1', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' } });
    expect(JSON.parse(kept)).toMatchObject({ name: 'cbr0', type: 'bridge', mtu: 1472, hairpinMode: true, ipam: { type: 'host-local' } });
    const del = await call(exec, 'DEL');
    expect(del.exitCode).toBe(0);
    expect(exec.calls[1]).toMatchObject({ plugin: 'bridge', stdin: kept, env: { CNI_COMMAND: 'DEL' } });
    expect(existsSync(stored())).toBe(false);
  });
  it('a failed delegate ADD is flannel\'s error and leaves no stored config', async () => {
    const exec = new FuncExec({ bridge: async () => ({ stdout: JSON.stringify({ code: 11, msg: 'busy', details: 'try later' }), exitCode: 1 }) });
    const add = await call(exec, 'ADD');
    expect(JSON.parse(add.stdout)).toMatchObject({ code: 11, msg: 'busy', details: 'try later' });
    expect(existsSync(stored())).toBe(false);
  });
  it('a delegate type missing from CNI_PATH is an invalid config (7)', async () => {
    const add = await call(new FuncExec({}), 'ADD');
    expect(JSON.parse(add.stdout)).toMatchObject({ code: 7, msg: 'failed to find plugin "bridge" in path [/opt/cni/bin]' });
  });
});
