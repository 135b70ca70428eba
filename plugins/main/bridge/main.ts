import { pluginMain, about } from '../../pkg/skel/skel';
import { registerInProcess } from '../../pkg/ipam/delegate';
import { hostLocalInProcess } from '../../ipam/host-local/in-process';
import { bridgePlugin } from './bridge';

// The entry point chooses what runs in-process: our host-local, when
// CNI_PATH resolves the IPAM type to our executable.
registerInProcess('host-local', hostLocalInProcess);
pluginMain(bridgePlugin, about('bridge'));
