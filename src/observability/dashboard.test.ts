import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ControllerMetric, exportedSeriesNames, SidecarMetric } from './names.ts';

const DASHBOARD = new URL('../../config/grafana/warden-dashboard.json', import.meta.url);

interface Panel {
  title?: string;
  type: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[]; templating: { list: Array<{ definition?: string; query?: unknown }> } };

function expressions(): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  const walk = (panels: Panel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) if (target.expr !== undefined) out.push({ where: panel.title ?? panel.type, expr: target.expr });
      walk(panel.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const variable of dashboard.templating.list) {
    if (variable.definition) out.push({ where: 'templating', expr: variable.definition });
  }
  return out;
}

/** Labels the exporters write, plus `pod` which Prometheus' Kubernetes discovery adds. */
const KNOWN_LABELS = new Set(['protocol', 'connection', 'outcome', 'decision', 'state', 'direction', 'code', 'le', 'controller', 'result', 'kind', 'verb', 'pod']);

describe('config/grafana/warden-dashboard.json', () => {
  const all = expressions();

  it('has PromQL expressions', () => {
    expect(all.length).toBeGreaterThan(15);
  });

  it.each(all)('$where: every metric in `$expr` is one Warden exports', ({ expr }) => {
    const names = expr.match(/\bwarden_[a-z0-9_]+/g) ?? [];
    expect(names.length, 'an expression that reads no Warden metric').toBeGreaterThan(0);
    const exported = exportedSeriesNames();
    for (const name of names) expect(exported, `${name} is not exported (src/observability/names.ts)`).toContain(name);
  });

  it.each(all)('$where: grouping and matchers in `$expr` use labels Warden writes', ({ expr }) => {
    const labels = [
      ...[...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => (m[1] ?? '').split(',').map((s) => s.trim()).filter(Boolean)),
      ...[...expr.matchAll(/([a-z_]+)\s*(?:=~|!~|!=|=)\s*"/g)].map((m) => m[1] as string),
    ];
    for (const label of labels) expect(KNOWN_LABELS, `unknown label ${label}`).toContain(label);
  });

  it('shows every sidecar and controller metric somewhere', () => {
    const text = all.map((e) => e.expr).join('\n');
    for (const name of [...Object.values(SidecarMetric), ...Object.values(ControllerMetric)]) {
      expect(text, `${name} is on no panel`).toMatch(new RegExp(`\\b${name}(_bucket|_sum|_count)?\\b`));
    }
  });

  it('reads its data source from a variable, so it imports into any Grafana', () => {
    const raw = readFileSync(DASHBOARD, 'utf8');
    expect(raw).toContain('"uid": "${datasource}"');
    expect(raw).not.toMatch(/"uid": "(?!\$\{datasource\}|warden-overview)[^"]*"/);
  });
});
