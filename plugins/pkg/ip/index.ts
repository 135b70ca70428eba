export * from './addr';
export * from './net';
export * from './subnet';
export * from './mac';
