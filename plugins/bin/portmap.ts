// dist/bin/portmap
import { about, pluginMain } from '../pkg/skel/skel';
import { warmPortmap } from '../meta/portmap/warm';
import { portmap } from '../suite';

pluginMain(portmap, about('portmap'), warmPortmap);
