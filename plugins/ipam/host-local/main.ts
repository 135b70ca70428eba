import { about, pluginMain } from '../../pkg/skel/skel';
import { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus } from './host-local';
import { warmHostLocal } from './warm';

pluginMain({ add: cmdAdd, del: cmdDel, check: cmdCheck, status: cmdStatus, gc: cmdGc }, about('host-local'), warmHostLocal);
