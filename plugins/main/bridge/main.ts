import { pluginMain, about } from '../../pkg/skel/skel';
import { InProcessExec } from '../../pkg/invoke/inprocess';
import { hostLocalInProcess } from '../../ipam/host-local/in-process';
import { createBridgePlugin } from './bridge';
import { warmBridge } from './warm';

// The entry point chooses what runs in-process: our host-local, when
// CNI_PATH resolves the IPAM type to our executable.
pluginMain(createBridgePlugin({ exec: new InProcessExec({ 'host-local': hostLocalInProcess }) }), about('bridge'), warmBridge);
