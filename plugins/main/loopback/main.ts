import { pluginMain, about } from '../../pkg/skel/skel';
import { loopbackPlugin } from './loopback';

pluginMain(loopbackPlugin, about('loopback'));
