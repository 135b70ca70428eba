import { pluginMain, about } from '../../pkg/skel/skel';
import { portmapPlugin } from './portmap';

pluginMain(portmapPlugin, about('portmap'));
