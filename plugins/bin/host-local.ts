// dist/bin/host-local
import { about, pluginMain } from '../pkg/skel/skel';
import { warmHostLocal } from '../ipam/host-local/warm';
import { hostLocal } from '../suite';

pluginMain(hostLocal, about('host-local'), warmHostLocal);
