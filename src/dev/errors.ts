// Errors of `warden dev`. Each one is printed as ONE line on stderr: what is wrong and what to do,
// never a stack trace. The `code` is stable (tests and scripts match on it).

export const DevErrorCode = {
  /** A manifest file is not valid YAML (message carries file:line). */
  YamlInvalid: 'WARDEN_DEV_YAML_INVALID',
  /** A document's apiVersion/kind is not one warden dev reads. */
  KindUnknown: 'WARDEN_DEV_KIND_UNKNOWN',
  /** A document does not match its CustomResourceDefinition's schema (or a Secret is malformed). */
  SchemaInvalid: 'WARDEN_DEV_SCHEMA_INVALID',
  /** A `${VAR}` reference in a manifest has no value. */
  VariableUnset: 'WARDEN_DEV_VARIABLE_UNSET',
  /** -f names nothing readable, or no Connection was found. */
  NoManifests: 'WARDEN_DEV_NO_MANIFESTS',
  /** The Connection could not be rendered (missing Secret or key, no policy…). */
  RenderFailed: 'WARDEN_DEV_RENDER_FAILED',
  /** The target (database, SSH host) does not answer or refuses the credentials. */
  TargetUnreachable: 'WARDEN_DEV_TARGET_UNREACHABLE',
  TargetAuthFailed: 'WARDEN_DEV_TARGET_AUTH_FAILED',
  /** The recording bucket is unreachable or refuses the credentials. */
  StorageUnreachable: 'WARDEN_DEV_STORAGE_UNREACHABLE',
  StorageAuthFailed: 'WARDEN_DEV_STORAGE_AUTH_FAILED',
  /** An external OIDC issuer named by a Connection does not answer discovery correctly. */
  IssuerInvalid: 'WARDEN_DEV_ISSUER_INVALID',
  /** A port warden dev needs is taken. */
  PortInUse: 'WARDEN_DEV_PORT_IN_USE',
  /** The state directory cannot be created or read, or holds a bad key. */
  StateInvalid: 'WARDEN_DEV_STATE_INVALID',
  /** A command-line value is wrong (e.g. --postgres-url). */
  OptionInvalid: 'WARDEN_DEV_OPTION_INVALID',
  /** Nothing could be started (every Connection failed). */
  NothingStarted: 'WARDEN_DEV_NOTHING_STARTED',
} as const;
export type DevErrorCode = (typeof DevErrorCode)[keyof typeof DevErrorCode];

export class DevError extends Error {
  readonly code: DevErrorCode;
  constructor(code: DevErrorCode, message: string) {
    super(message);
    this.name = 'DevError';
    this.code = code;
  }
}

/** A listen() failure as a DevError (EADDRINUSE and EACCES get their own advice). */
export function listenError(error: unknown, what: string, host: string, port: number, advice: string): DevError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') {
    return new DevError(DevErrorCode.PortInUse, `${what}: port ${port} on ${host} is already in use (another warden dev, or a server?): stop it or ${advice}`);
  }
  if (code === 'EACCES') {
    return new DevError(DevErrorCode.PortInUse, `${what}: not allowed to listen on port ${port} (ports below 1024 need privileges): ${advice}`);
  }
  return new DevError(DevErrorCode.PortInUse, `${what}: cannot listen on ${host}:${port}: ${(error as Error).message}`);
}
