// Object names of a recording in the bucket (docs/recording-format.md, "Object names"):
//   <prefix>/<yyyy>/<mm>/<dd>/<sessionId>/chunk-<seq, 8 digits or more>
//   <prefix>/<yyyy>/<mm>/<dd>/<sessionId>/manifest.json
// The date is the session's start in UTC, so every object of a session shares one folder and a
// listing of that folder in lexicographic order is the chunk order.

import { RecorderError, RecorderErrorCode } from './errors.ts';

/** Session ids are single path segments: a Kubernetes object name or a UUID fits. */
export const SESSION_ID_PATTERN: RegExp = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
export const MANIFEST_OBJECT_NAME = 'manifest.json';
export const CHUNK_OBJECT_PREFIX = 'chunk-';
const SEQ_DIGITS = 8;
const CHUNK_NAME_PATTERN = /^chunk-(\d{8,})$/;

export function isValidSessionId(sessionId: string): boolean {
  return SESSION_ID_PATTERN.test(sessionId);
}

export function assertValidSessionId(sessionId: string): void {
  if (!isValidSessionId(sessionId)) {
    throw new RecorderError(
      RecorderErrorCode.SessionIdInvalid,
      `session id ${JSON.stringify(sessionId)} is not usable in object names: use 1-253 characters from ` +
        'A-Z a-z 0-9 . _ - starting with a letter or digit',
    );
  }
}

/** `chunk-00000042`. */
export function chunkObjectName(seq: number): string {
  if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new RecorderError(
      RecorderErrorCode.OptionInvalid,
      `chunk sequence number must be a non-negative integer, got ${seq}`,
    );
  }
  return `${CHUNK_OBJECT_PREFIX}${String(seq).padStart(SEQ_DIGITS, '0')}`;
}

/**
 * The sequence number in a chunk object's name (a bare name or a full key); `undefined` when the
 * last path segment is not `chunk-` followed by at least 8 digits without superfluous leading zeros
 * (so each seq has exactly one name).
 */
export function parseChunkObjectName(nameOrKey: string): number | undefined {
  const base = nameOrKey.slice(nameOrKey.lastIndexOf('/') + 1);
  const digits = CHUNK_NAME_PATTERN.exec(base)?.[1];
  if (digits === undefined) return undefined;
  const seq = Number(digits);
  if (!Number.isSafeInteger(seq) || chunkObjectName(seq) !== base) return undefined;
  return seq;
}

/** `<prefix>/<yyyy>/<mm>/<dd>/<sessionId>/`; an empty prefix gives `<yyyy>/...`. */
export function sessionFolder(prefix: string, startedAt: Date, sessionId: string): string {
  assertValidSessionId(sessionId);
  if (Number.isNaN(startedAt.getTime())) {
    throw new RecorderError(RecorderErrorCode.OptionInvalid, 'session start time is not a valid date');
  }
  const yyyy = String(startedAt.getUTCFullYear()).padStart(4, '0');
  const mm = String(startedAt.getUTCMonth() + 1).padStart(2, '0');
  const dd = String(startedAt.getUTCDate()).padStart(2, '0');
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  return `${trimmed === '' ? '' : `${trimmed}/`}${yyyy}/${mm}/${dd}/${sessionId}/`;
}

export function chunkObjectKey(prefix: string, startedAt: Date, sessionId: string, seq: number): string {
  return sessionFolder(prefix, startedAt, sessionId) + chunkObjectName(seq);
}

export function manifestObjectKey(prefix: string, startedAt: Date, sessionId: string): string {
  return sessionFolder(prefix, startedAt, sessionId) + MANIFEST_OBJECT_NAME;
}
