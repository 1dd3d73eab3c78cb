// Errors of the web viewer, each with a stable code and the HTTP status it answers with. Messages
// are written for the person at the browser (or the script with a bearer token).

export const UiErrorCode = {
  /** No or an invalid token / login: 401. */
  Unauthenticated: 'UNAUTHENTICATED',
  /** Authenticated, but not a viewer of what was asked for: 403. */
  Forbidden: 'FORBIDDEN',
  NotFound: 'NOT_FOUND',
  BadRequest: 'BAD_REQUEST',
  /** The recording could not be read or is not there (yet). */
  RecordingUnavailable: 'RECORDING_UNAVAILABLE',
  /** The API server's list moved on (continue token expired): start from the first page. */
  ListExpired: 'LIST_EXPIRED',
  /** The front-end assets are missing and cannot be built here. */
  AssetsMissing: 'ASSETS_MISSING',
} as const;
export type UiErrorCode = (typeof UiErrorCode)[keyof typeof UiErrorCode];

const STATUS: Record<UiErrorCode, number> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  BAD_REQUEST: 400,
  RECORDING_UNAVAILABLE: 502,
  LIST_EXPIRED: 410,
  ASSETS_MISSING: 500,
};

export class UiError extends Error {
  readonly code: UiErrorCode;
  readonly status: number;
  constructor(code: UiErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UiError';
    this.code = code;
    this.status = STATUS[code];
  }
}
