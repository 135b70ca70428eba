import { describe, expect, it } from 'vitest';
import { startAgentCniServer } from './flaxd';
import { parseFlags } from './flags';
import { createLogger } from './log';
import { AgentMetrics } from './metrics';

describe('flaxd CNI server flags', () => {
  it('--cni-socket: /run/flax/cni.sock by default, \'\' = off, FLANNELD_CNI_SOCKET as the other flags; --no-overlay', () => {
    expect(parseFlags([])).toMatchObject({ cniSocket: '/run/flax/cni.sock', noOverlay: false });
    expect(parseFlags(['--cni-socket', '']).cniSocket).toBe('');
    expect(parseFlags(['--cni-socket=']).cniSocket).toBe('');
    expect(parseFlags([], { FLANNELD_CNI_SOCKET: '/x/cni.sock' }).cniSocket).toBe('/x/cni.sock');
    expect(parseFlags([], { FLANNELD_CNI_SOCKET: '' }).cniSocket).toBe('');
    expect(parseFlags([], { FLANNELD_SUBNET_FILE: '' }).subnetFile).toBe('/run/flannel/subnet.env'); // the other flags: empty = unset
    expect(parseFlags(['--cni-socket', '/y.sock'], { FLANNELD_CNI_SOCKET: '/x/cni.sock' }).cniSocket).toBe('/y.sock');
    expect(parseFlags(['--no-overlay']).noOverlay).toBe(true);
    expect(parseFlags([], { FLANNELD_NO_OVERLAY: 'true' }).noOverlay).toBe(true);
  });

  it('--cni-socket \'\': no server, said once', async () => {
    const lines: string[] = [];
    const log = createLogger(0, (l) => { lines.push(l); });
    expect(await startAgentCniServer(parseFlags(['--cni-socket', '']), log, await AgentMetrics.create(), true)).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ flaxd:1\] cni server: off/);
  });
});
