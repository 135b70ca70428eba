/** Names shared by the resident CNI server, its clients and `flax status` (no imports: safe in any bundle). */
export const DEFAULT_CNI_SOCKET = '/run/flax/cni.sock';
/** The request name on which the server answers with its CniServerInfo (no plugin has it: not a file name). */
export const STATUS_NAME = '.status';
/** The reply's exit code for "not served here: run the standalone plugin" (the server did nothing; never a process's code). */
export const RUN_STANDALONE = -1000;
