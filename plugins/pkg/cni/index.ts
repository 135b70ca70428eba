export * from './errors';
export * from './types';
export * from './version';
export * from './convert';
export * from './args';
export * from './validate';
export * from './conf';
