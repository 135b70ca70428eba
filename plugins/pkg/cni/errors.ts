/**
 * CNI error codes (SPEC.md "Error codes") and the one error class of the
 * suite: what a plugin throws (`pluginMain` turns it into the JSON error
 * object on stdout) and what running a plugin reports (pkg/invoke: the
 * plugin's error object, with its stderr and name).
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

export interface CniErrorSource {
  /** what the plugin wrote to stderr (for diagnostics) */
  stderr?: string;
  /** the plugin that failed */
  plugin?: string;
}

export class CniError extends Error {
  /** what the failed plugin wrote to stderr ('' when not from a plugin run) */
  readonly stderr: string;
  /** the plugin that failed ('' when not from a plugin run) */
  readonly plugin: string;
  constructor(public readonly code: ErrCodeValue, msg: string, public readonly details = '', src: CniErrorSource = {}) {
    super(msg);
    this.name = 'CniError';
    this.stderr = src.stderr ?? '';
    this.plugin = src.plugin ?? '';
  }
  get msg(): string { return this.message; }
  /** Go's types.Error.Error(): `msg; details` (libcni's text for a plugin's error). */
  get text(): string { return this.details ? `${this.message}; ${this.details}` : this.message; }
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

/** An error's text as libcni prints it (a CniError with its details). */
export const errorText = (e: unknown): string => (e instanceof CniError ? e.text : e instanceof Error ? e.message : String(e));
