import { about, pluginMain } from '../../pkg/skel/skel';
import { registerInProcess } from '../../pkg/ipam/delegate';
import { bridgePlugin } from '../../main/bridge/bridge';
import { hostLocalInProcess } from '../../ipam/host-local/in-process';
import { flannelPlugin } from './flannel';

// The entry point chooses what runs in-process: our bridge (and, through
// it, host-local) when CNI_PATH resolves the delegate to our executable.
registerInProcess('bridge', { plugin: bridgePlugin, about: about('bridge') });
registerInProcess('host-local', hostLocalInProcess);
pluginMain(flannelPlugin, about('flannel'));
