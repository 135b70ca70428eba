export * from './delegate';
