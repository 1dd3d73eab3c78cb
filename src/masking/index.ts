// The masking stage shared by the gateways (see masker.ts for which rules apply where).
export { DETECTOR_MAX_LENGTH, DETECTORS, type DetectorMatch } from './detectors.ts';
export { JsonPathError, parseJsonPath } from './jsonpath.ts';
export {
  type ColumnRef,
  compileMasker,
  compileMaskingRules,
  type CompiledMaskingRule,
  createMasker,
  type MaskedJson,
  type MaskedText,
  type MaskedValue,
  type Masker,
  type MaskerOptions,
  MaskingError,
  type MaskingProblem,
  type MaskHit,
  type MaskSource,
} from './masker.ts';
export { HASH_PREFIX, hashed, MIN_HASH_KEY_BYTES, partial, redacted } from './strategies.ts';
export {
  DEFAULT_HOLD_BACK,
  DEFAULT_MAX_HELD,
  type MaskedBytes,
  MIN_HOLD_BACK,
  type TerminalMaskStream,
  type TerminalStreamOptions,
} from './terminal.ts';
