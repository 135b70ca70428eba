import { describe, expect, it } from 'vitest';
import { createLogger, klogHeader } from './log';

// a local time (klog prints local time)
const T = new Date(2024, 11, 7, 5, 48, 29, 123);

describe('flaxd log lines', () => {
  it("klog's header: severity, MMDD, time with microseconds, pid right-aligned in 7, file:line]", () => {
    expect(klogHeader('info', T, 12345)).toBe('I1207 05:48:29.123000   12345 flaxd:1] ');
    expect(klogHeader('warn', new Date(2025, 0, 2, 3, 4, 5, 6), 7)).toBe('W0102 03:04:05.006000       7 flaxd:1] ');
    expect(klogHeader('error', T, 1234567)).toBe('E1207 05:48:29.123000 1234567 flaxd:1] ');
  });

  it('is the default format: one line an event, debug (I) only with -v 1, newlines flattened', () => {
    const lines: string[] = [];
    for (const v of [0, 1]) {
      const log = createLogger(v, { write: (l) => lines.push(l), now: () => T, pid: 42 });
      log.info('lease 10.244.1.0/24\n  expires never');
      log.warn('w');
      log.error('e');
      log.debug(`debug at -v ${v}`);
    }
    expect(lines).toEqual([
      'I1207 05:48:29.123000      42 flaxd:1] lease 10.244.1.0/24 expires never\n', 'W1207 05:48:29.123000      42 flaxd:1] w\n', 'E1207 05:48:29.123000      42 flaxd:1] e\n',
      'I1207 05:48:29.123000      42 flaxd:1] lease 10.244.1.0/24 expires never\n', 'W1207 05:48:29.123000      42 flaxd:1] w\n', 'E1207 05:48:29.123000      42 flaxd:1] e\n',
      'I1207 05:48:29.123000      42 flaxd:1] debug at -v 1\n',
    ]);
    // what a klog parser reads
    const m = /^([IWEF])(\d\d)(\d\d) (\d\d:\d\d:\d\d\.\d{6}) +(\d+) ([^:\]]+):(\d+)\] (.*)$/.exec(lines[0].trimEnd());
    expect(m?.slice(1)).toEqual(['I', '12', '07', '05:48:29.123000', '42', 'flaxd', '1', 'lease 10.244.1.0/24 expires never']);
  });

  it('--log-format json: one object a line with ts, level, pid and msg', () => {
    const lines: string[] = [];
    const log = createLogger(1, { format: 'json', write: (l) => lines.push(l), now: () => T, pid: 42 });
    log.error('config: "x"\nbad');
    log.debug('d');
    expect(lines.every((l) => l.endsWith('}\n') && !l.slice(0, -1).includes('\n'))).toBe(true);
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { ts: T.toISOString(), level: 'error', pid: 42, msg: 'config: "x" bad' },
      { ts: T.toISOString(), level: 'debug', pid: 42, msg: 'd' },
    ]);
  });
});
