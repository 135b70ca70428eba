// dist/bin/bridge
import { about, pluginMain } from '../pkg/skel/skel';
import { warmBridge } from '../main/bridge/warm';
import { bridge } from '../suite';

pluginMain(bridge(), about('bridge'), warmBridge);
