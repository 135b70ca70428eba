export * from './addr';
export * from './prefix';
export * from './mac';
