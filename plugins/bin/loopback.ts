// dist/bin/loopback
import { about, pluginMain } from '../pkg/skel/skel';
import { warmNetlink } from '../pkg/netlink/warm';
import { loopback } from '../suite';

pluginMain(loopback, about('loopback'), warmNetlink);
