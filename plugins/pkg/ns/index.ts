export * from './errors';
export * from './ns';
