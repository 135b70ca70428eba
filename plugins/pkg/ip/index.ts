export * from './addr';
export * from './net';
export * from './prefix';
export * from './mac';
