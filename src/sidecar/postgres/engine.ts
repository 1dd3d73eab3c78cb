// Wiring of the real policy and masking engines (src/policy/engine.ts, src/masking/masker.ts)
// into the gateway's seams (config.ts). The seams stay small so the gateway can be tested with
// hand-written policies too.

import type { Masker } from '../../masking/masker.ts';
import type { PolicySubject } from '../../policy/command.ts';
import type { PolicyEngine } from '../../policy/engine.ts';
import type { CellMasker, GatewayPolicy, PostgresGatewayConfig } from './config.ts';

/** A value no content detector matches: masking it tells whether a column rule applies by name. */
const PROBE = '\u0000warden-column-probe';

/**
 * Adapts the masking engine to the gateway's per-cell interface. A result column goes by several
 * names (alias and source columns); every name is offered to the engine in turn, so a rule on
 * `email` also masks `SELECT email AS contact`.
 */
export function cellMasker(masker: Masker): CellMasker | undefined {
  if (masker.empty) return undefined;
  const byName = new Map<string, boolean>();
  const masksName = (name: string): boolean => {
    let known = byName.get(name);
    if (known === undefined) {
      known = masker.maskValue(name, PROBE).value !== PROBE;
      if (byName.size < 10_000) byName.set(name, known);
    }
    return known;
  };
  return {
    masksColumn: (names) => names.some(masksName),
    mask: (names, value) => {
      let current: string | null = value;
      const named = names.filter(masksName);
      // Column rules first (they replace the whole value), then content rules once.
      for (const name of named) {
        current = masker.maskValue(name, current).value;
        if (current === null) return null;
      }
      if (named.length === 0) current = masker.maskValue(undefined, current).value;
      return current;
    },
  };
}

/** The policy engine and its per-subject maskers as gateway configuration. */
export function fromPolicyEngine(engine: PolicyEngine): Pick<PostgresGatewayConfig, 'policy' | 'masking'> {
  const policy: GatewayPolicy = engine;
  return {
    policy,
    masking: (subject: PolicySubject) => cellMasker(engine.masker(subject)),
  };
}
