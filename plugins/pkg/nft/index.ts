export * from './masq';
export * from './apply';
export * from './exec';
export * from './tombstone';
