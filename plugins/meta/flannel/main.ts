import { about, pluginMain } from '../../pkg/skel/skel';
import { InProcessExec } from '../../pkg/invoke/inprocess';
import { createBridgePlugin } from '../../main/bridge/bridge';
import { hostLocalInProcess } from '../../ipam/host-local/in-process';
import { createFlannelPlugin } from './flannel';
import { warmBridge } from '../../main/bridge/warm';

// The entry point chooses what runs in-process: our bridge (and, through
// it, host-local) when CNI_PATH resolves the delegate to our executable.
const ipam = new InProcessExec({ 'host-local': hostLocalInProcess });
const bridge = createBridgePlugin({ exec: ipam });
pluginMain(createFlannelPlugin({ exec: new InProcessExec({ bridge: { plugin: bridge, about: about('bridge') }, 'host-local': hostLocalInProcess }) }), about('flannel'), warmBridge);
