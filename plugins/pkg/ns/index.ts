export * from './errors';
export * from './ns';
export * from './pod';
