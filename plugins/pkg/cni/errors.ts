/**
 * CNI error codes (SPEC.md "Error codes") and the typed error every plugin
 * throws. `pluginMain` turns a CniError into the JSON error object on stdout.
 */
export const ErrCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironmentVariables: 4,
  IOFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  Internal: 999,
} as const;
export type ErrCodeValue = (typeof ErrCode)[keyof typeof ErrCode] | number;

export class CniError extends Error {
  constructor(public readonly code: ErrCodeValue, msg: string, public readonly details = '') {
    super(msg);
    this.name = 'CniError';
  }
  get msg(): string { return this.message; }
  /** The error object as the spec prints it (cniVersion filled by the caller). */
  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    const o: { cniVersion: string; code: number; msg: string; details?: string } = { cniVersion, code: this.code, msg: this.message };
    if (this.details) o.details = this.details;
    return o;
  }
}

/** Wraps anything thrown into a CniError (unknown errors become 999 with the message). */
export function asCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  if (e instanceof Error) return new CniError(ErrCode.Internal, e.message);
  return new CniError(ErrCode.Internal, String(e));
}
