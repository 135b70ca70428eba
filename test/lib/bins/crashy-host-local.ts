/**
 * Test-only entry point: host-local that kills itself with SIGKILL at its
 * first write of a reservation's content (`<containerID>\r\n<ifname>`) — a
 * deterministic "kill -9 while reserving". Whatever the store writes first
 * (the reservation file itself, or a temporary file), the process dies
 * there with no cleanup, exactly as an OOM kill would leave it.
 */
import fs from 'node:fs';
import { about, pluginMain } from '../../../plugins/pkg/skel/skel';
import { hostLocal } from '../../../plugins/ipam/host-local/host-local';

const owner = `${process.env.CNI_CONTAINERID}\r\n${process.env.CNI_IFNAME}`;
const writeSync = fs.writeSync;
(fs as unknown as { writeSync: unknown }).writeSync = function (fd: number, data: unknown, ...rest: unknown[]) {
  if (typeof data === 'string' && data === owner) process.kill(process.pid, 'SIGKILL');
  return (writeSync as (...a: unknown[]) => number).call(fs, fd, data, ...rest);
};

pluginMain(hostLocal, about('host-local'));
