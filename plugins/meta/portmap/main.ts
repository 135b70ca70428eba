import { pluginMain, about } from '../../pkg/skel/skel';
import { portmapPlugin } from './portmap';
import { warmPortmap } from './warm';

pluginMain(portmapPlugin, about('portmap'), warmPortmap);
