export * from './masq';
export * from './ruleset';
export * from './apply';
export * from './tools';
export * from './tombstone';
