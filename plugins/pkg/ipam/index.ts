export * from './run-ipam';
