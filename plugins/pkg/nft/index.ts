export * from './masq';
export * from './apply';
export * from './tools';
export * from './tombstone';
