import { pluginMain, about } from '../../pkg/skel/skel';
import { warmNetlink } from '../../pkg/netlink/warm';
import { loopbackPlugin } from './loopback';

pluginMain(loopbackPlugin, about('loopback'), warmNetlink);
