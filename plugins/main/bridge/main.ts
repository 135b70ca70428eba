import { pluginMain, about } from '../../pkg/skel/skel';
import { bridgePlugin } from './bridge';

pluginMain(bridgePlugin, about('bridge'));
