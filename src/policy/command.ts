import type { HttpMethod, SqlStatementClass } from '../api/types.ts';

/**
 * What a gateway asks the policy engine about: one command, described in protocol terms the
 * AccessPolicy rule matchers understand. Gateways build these from parsed traffic; the engine
 * never sees raw bytes. One SQL string with several statements is several commands.
 */
export type Command = SqlCommand | SshCommand | KubernetesCommand | HttpCommand;

export interface SqlCommand {
  protocol: 'postgres';
  /** The statement's text as sent (one statement of a multi-statement string). */
  text: string;
  statementClass: SqlStatementClass;
  /** Tables read or written, schema-qualified when the statement qualifies them (`public.orders`). */
  tables: string[];
  /** Facts a rule's message or a `when` condition may need, e.g. `updateWithoutWhere`, `copyProgram`. */
  flags: string[];
}

export type SshCommand =
  | { protocol: 'ssh'; kind: 'shell' }
  | { protocol: 'ssh'; kind: 'exec'; command: string }
  /** A command line typed at an interactive prompt (best-effort detection). */
  | { protocol: 'ssh'; kind: 'typed'; command: string }
  | { protocol: 'ssh'; kind: 'sftp'; operation: 'read' | 'write'; path: string }
  | { protocol: 'ssh'; kind: 'forward'; direction: 'local' | 'remote'; host: string; port: number };

export interface KubernetesCommand {
  protocol: 'kubernetes';
  verb: string;
  apiGroup: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** Set for non-resource requests (/healthz, /version, /api discovery). */
  nonResourceURL?: string;
  /** For exec/attach: the command the client asked to run. */
  execCommand?: string[];
}

export interface HttpCommand {
  protocol: 'http';
  method: HttpMethod | string;
  host: string;
  path: string;
}

/** The caller, as the token verifier mapped them. */
export interface PolicySubject {
  user: string;
  groups: string[];
}
