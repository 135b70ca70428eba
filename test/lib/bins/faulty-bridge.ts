/**
 * Test-only entry point: the bridge plugin with its fault seam wired to
 * FLAX_FAULT_INJECT=<step>. Production binaries (dist/bin/bridge) have no
 * such hook; tests bundle this file with `buildFaultyBridge()`.
 */
import { about, pluginMain } from '../../../plugins/pkg/skel/skel';
import { faultAt } from '../../../plugins/pkg/rollback';
import { createBridgePlugin } from '../../../plugins/main/bridge/bridge';
import { InProcessExec } from '../../../plugins/pkg/invoke/inprocess';
import { hostLocalInProcess } from '../../../plugins/ipam/host-local/in-process';

// as dist/bin/bridge's entry point: our host-local in-process
const exec = new InProcessExec({ 'host-local': hostLocalInProcess });

pluginMain(createBridgePlugin({ exec, fault: faultAt(process.env.FLAX_FAULT_INJECT) }), about('bridge'));
