// dist/bin/flannel
import { about, pluginMain } from '../pkg/skel/skel';
import { warmBridge } from '../main/bridge/warm';
import { flannel } from '../suite';

pluginMain(flannel(), about('flannel'), warmBridge);
