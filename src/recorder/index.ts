// Public API of the recording core: what gateways, the shipping layer and the CLI import.
// The byte-level format is specified in docs/recording-format.md.

export { type JsonValue, canonicalJson } from './canonical-json.ts';
export {
  CHUNK_MAGIC,
  type ChunkEncryption,
  type ChunkHeader,
  Compression,
  type DecodedChunk,
  decodeChunk,
  EncryptionAlgorithm,
  encodeChunk,
  FORMAT_VERSION,
  GENESIS_PREV,
  MAX_RAW_BYTES,
  type SealedChunk,
} from './chunk.ts';
export {
  Chunker,
  type ChunkerOptions,
  type ClosedRecording,
  DEFAULT_MAX_CHUNK_AGE_MS,
  DEFAULT_MAX_CHUNK_BYTES,
  DEFAULT_MAX_EVENT_BYTES,
} from './chunker.ts';
export {
  type EncryptionKey,
  exportSigningKey,
  generateEncryptionKey,
  generateSigningKey,
  loadEncryptionKey,
  loadSigningKey,
  loadVerifyKey,
  type SigningKey,
  type VerifyKey,
} from './crypto.ts';
export { RecorderError, RecorderErrorCode, type Result } from './errors.ts';
export * from './events.ts';
export {
  type Manifest,
  type ManifestChunk,
  type ManifestTotals,
  parseManifest,
  type SealedManifest,
  type SessionMeta,
} from './manifest.ts';
export {
  chunkObjectKey,
  chunkObjectName,
  MANIFEST_OBJECT_NAME,
  manifestObjectKey,
  parseChunkObjectName,
  sessionFolder,
} from './naming.ts';
export {
  type ChunkSource,
  type ReadEventsOptions,
  type RecordingInput,
  RecordingVerifier,
  readEvents,
  type VerifyOptions,
  type VerifyProblem,
  type VerifyReport,
  verifyRecording,
} from './verify.ts';

// Shipping: stores, spool, uploader, Session objects, the per-session recorder gateways use, and
// reading recordings back (replay, export, verification of a stored session).
export { listSessionFolder, readSessionEvents, readSessionManifest, type SessionFolderListing, verifySessionFolder } from './reader.ts';
export {
  type CloseOptions,
  DEFAULT_MEMORY_HIGH_WATER_BYTES,
  DEFAULT_SPOOL_MAX_BYTES,
  Recorder,
  type RecorderObserver,
  type RecorderOptions,
  type RecoveredSession,
  type SessionCloseResult,
  SessionRecorder,
  type SessionObserver,
  type SessionStartInfo,
} from './recorder.ts';
export { asciicastLines, isTerminalProtocol, playTerminal, printTimeline } from './replay.ts';
export { CSV_COLUMNS, ExportFormat, exportLines } from './export.ts';
export {
  KubeSessionObjects,
  type SessionObjectClient,
  type SessionRef,
  SessionStatusReporter,
} from './session-objects.ts';
export { Spool, type SpoolSessionInfo } from './spool.ts';
export { ObjectLockMode, type PutOptions, PutOutcome, type RecordingStore, type StoredObject } from './store.ts';
export { DirectoryStore } from './store-dir.ts';
export { S3Store, type S3StoreOptions, SseMode } from './store-s3.ts';
export { backoffDelay, DEFAULT_RETRY, type RetryPolicy, Uploader } from './uploader.ts';
