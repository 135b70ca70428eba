import { describe, expect, it } from 'vitest';
import { type AttachmentFacts, blindView, containerMac, hostPeerCandidates, judgeAttachment, keptWhenBlind, recordedNetns } from './liveness';

const facts = (o: Partial<AttachmentFacts>): AttachmentFacts => ({ netns: '/run/netns/p', netnsFact: 'netns', hostPeers: [], ageMs: 3_600_000, ...o });
const MIN = 60_000;

describe('judgeAttachment', () => {
  it('keeps anything younger than --min-age, whatever else', () => {
    expect(judgeAttachment(facts({ netnsFact: 'gone', ageMs: 10 }), MIN)).toMatchObject({ dead: false, reason: 'younger than 60 s' });
  });
  it('alive while its netns exists', () => {
    expect(judgeAttachment(facts({}), MIN).dead).toBe(false);
    expect(judgeAttachment(facts({ netns: '/proc/9/ns/net', containerIfPresent: true }), MIN).dead).toBe(false);
    expect(judgeAttachment(facts({ netns: '/proc/9/ns/net', containerIfPresent: undefined }), MIN).dead).toBe(false);
  });
  it('a /proc path whose namespace lacks the container interface: pid reused → dead; a pin never', () => {
    expect(judgeAttachment(facts({ netns: '/proc/9/ns/net', containerIfPresent: false }), MIN)).toMatchObject({ dead: true, reason: expect.stringMatching(/pid reused/) });
    expect(judgeAttachment(facts({ netns: '/run/netns/p', containerIfPresent: false }), MIN).dead).toBe(false);
  });
  it('a path that is not a namespace: cannot tell', () => {
    expect(judgeAttachment(facts({ netnsFact: 'not-netns' }), MIN).dead).toBe(false);
  });
  it('netns gone: dead unless a host veth still exists', () => {
    expect(judgeAttachment(facts({ netnsFact: 'gone', hostPeers: [{ name: 'veth1', present: false }] }), MIN))
      .toEqual({ dead: true, reason: 'netns /run/netns/p is gone and host interface veth1 with it' });
    expect(judgeAttachment(facts({ netnsFact: 'gone', hostPeers: [{ name: 'veth1', present: true }] }), MIN).dead).toBe(false);
    expect(judgeAttachment(facts({ netnsFact: 'gone' }), MIN).dead).toBe(true);
  });
  it('no netns recorded: dead only when a host interface proves it', () => {
    expect(judgeAttachment(facts({ netns: '', netnsFact: 'none' }), MIN).dead).toBe(false);
    expect(judgeAttachment(facts({ netns: '', netnsFact: 'none', hostPeers: [{ name: 'veth1', present: false }] }), MIN).dead).toBe(true);
  });
});

describe('a view blind to the node\'s netns pins', () => {
  const live = facts({ netns: '/run/netns/a', netnsFact: 'gone', hostPeers: [{ name: 'veth1', present: true }] });
  const lo = facts({ netns: '/run/netns/a', netnsFact: 'gone' });
  it('is told by a host interface alive while its netns path is missing', () => {
    expect(blindView([{ label: 'n/lo', facts: lo }, { label: 'n/c1/eth0', facts: live }])).toBe('host interface veth1 of n/c1/eth0 is alive while its netns /run/netns/a is missing here');
    expect(blindView([{ label: 'x', facts: lo }, { label: 'y', facts: facts({ hostPeers: [{ name: 'veth1', present: true }] }) }])).toBeUndefined();
    expect(blindView([{ label: 'x', facts: facts({ netnsFact: 'gone', hostPeers: [{ name: 'veth1', present: false }] }) }])).toBeUndefined();
  });
  it('keeps a death that rests on a netns path alone; a host interface gone with it still proves it', () => {
    const blind = 'host interface veth1 …';
    const v = judgeAttachment(lo, MIN);
    expect(v.dead).toBe(true);
    expect(keptWhenBlind(lo, v, undefined)).toBe(v);
    expect(keptWhenBlind(lo, v, blind)).toEqual({ dead: false, reason: `netns /run/netns/a is gone, but this sweeper cannot see the node's netns pins (${blind}): kept` });
    const reused = facts({ netns: '/proc/9/ns/net', containerIfPresent: false });
    expect(keptWhenBlind(reused, judgeAttachment(reused, MIN), blind).dead).toBe(false);
    const vethGone = facts({ netnsFact: 'gone', hostPeers: [{ name: 'veth2', present: false }] });
    expect(keptWhenBlind(vethGone, judgeAttachment(vethGone, MIN), blind).dead).toBe(true);
    const alive = judgeAttachment(live, MIN);
    expect(keptWhenBlind(live, alive, blind)).toBe(alive);
  });
});

describe('facts from a cached result', () => {
  const result = {
    interfaces: [
      { name: 'cni0', mac: 'AA:00:00:00:00:01' },
      { name: 'veth1234', mac: 'aa:00:00:00:00:02' },
      { name: 'eth0', mac: 'AA:00:00:00:00:03', sandbox: '/run/netns/p1' },
    ],
  };
  it('the netns: the cache field, else the container interface sandbox', () => {
    expect(recordedNetns('/run/netns/x', result, 'eth0')).toBe('/run/netns/x');
    expect(recordedNetns('', result, 'eth0')).toBe('/run/netns/p1');
    expect(recordedNetns('', {}, 'eth0')).toBe('');
  });
  it('host peers exclude the bridge and sandboxed interfaces; MACs lowercased', () => {
    expect(hostPeerCandidates(result, new Set(['cni0']))).toEqual([{ name: 'veth1234', mac: 'aa:00:00:00:00:02' }]);
    expect(containerMac(result, 'eth0')).toBe('aa:00:00:00:00:03');
  });
});
