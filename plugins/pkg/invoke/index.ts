/** libcni-equivalent: config loading, chain execution, attachment cache. */
export * from './conf';
export * from './plugin-exec';
export * from './cache';
export * from './api';
export { goMarshal, goMarshalIndent, goMarshalOrdered, goEscape, ordered } from './gojson';
export * from './inprocess';
export * from './delegation';
export { isFlaxBundle } from './bundle';
