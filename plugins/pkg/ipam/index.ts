export * from './cidr';
export * from './delegate';
