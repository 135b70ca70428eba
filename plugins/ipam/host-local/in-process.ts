/**
 * host-local as an in-process delegate: what the composition root
 * (plugins/suite.ts) puts in the InProcessExec it gives a plugin
 * so that IPAM runs through handle() in the same process when CNI_PATH
 * resolves host-local to our executable. Plugins never register each other.
 */
import { about } from '../../pkg/skel/skel';
import type { InProcessPlugin } from '../../pkg/ipam/run-ipam';
import { hostLocal, validateAdd } from './host-local';

export const hostLocalInProcess: InProcessPlugin = { plugin: hostLocal, about: about('host-local'), validateAdd };
