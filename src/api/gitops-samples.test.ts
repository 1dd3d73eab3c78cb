// The GitOps examples of config/samples/gitops/: they parse, have the kinds and API versions Argo CD
// and Flux serve, and point at folders that exist in this repository.

import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const ROOT = new URL('../../', import.meta.url);
const GITOPS = new URL('config/samples/gitops/', ROOT);

type Doc = { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string }; spec?: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any -- manifests are read field by field

function docs(file: string): Doc[] {
  const parsed = parseAllDocuments(readFileSync(new URL(file, GITOPS), 'utf8'));
  for (const d of parsed) expect(d.errors, `${file}: ${d.errors.map((e) => e.message).join('; ')}`).toEqual([]);
  return parsed.map((d) => d.toJS() as Doc);
}

const folderExists = (path: string): boolean => existsSync(new URL(`${path.replace(/^\.\//, '')}/`, ROOT));

describe('config/samples/gitops/argocd-application.yaml', () => {
  const apps = docs('argocd-application.yaml');

  it('holds two Argo CD Applications: the operator, then the samples', () => {
    expect(apps.map((a) => [a.apiVersion, a.kind, a.metadata?.name, a.metadata?.namespace])).toEqual([
      ['argoproj.io/v1alpha1', 'Application', 'warden', 'argocd'],
      ['argoproj.io/v1alpha1', 'Application', 'warden-samples', 'argocd'],
    ]);
  });

  it('points at config/default and config/samples of this repository', () => {
    const [operator, samples] = apps;
    expect(operator?.spec?.source.path).toBe('config/default');
    expect(samples?.spec?.source.path).toBe('config/samples');
    for (const app of apps) expect(folderExists(app.spec?.source.path as string)).toBe(true);
    expect(existsSync(new URL('config/default/kustomization.yaml', ROOT))).toBe(true);
    // Only the top-level sample manifests: not these GitOps files, not the `warden dev` samples.
    expect(samples?.spec?.source.directory).toEqual({ recurse: false });
    expect(operator?.spec?.syncPolicy.syncOptions).toContain('ServerSideApply=true');
    expect(samples?.spec?.syncPolicy.syncOptions).toContain('SkipDryRunOnMissingResource=true');
  });
});

describe('config/samples/gitops/flux-kustomization.yaml', () => {
  const objects = docs('flux-kustomization.yaml');

  it('holds a Flux GitRepository and two Kustomizations', () => {
    expect(objects.map((o) => [o.apiVersion, o.kind, o.metadata?.name, o.metadata?.namespace])).toEqual([
      ['source.toolkit.fluxcd.io/v1', 'GitRepository', 'warden', 'flux-system'],
      ['kustomize.toolkit.fluxcd.io/v1', 'Kustomization', 'warden', 'flux-system'],
      ['kustomize.toolkit.fluxcd.io/v1', 'Kustomization', 'warden-samples', 'flux-system'],
    ]);
  });

  it('applies config/default, then config/samples once the operator is ready', () => {
    const [, operator, samples] = objects;
    expect(operator?.spec?.path).toBe('./config/default');
    expect(operator?.spec?.wait).toBe(true);
    expect(samples?.spec?.path).toBe('./config/samples');
    expect(samples?.spec?.dependsOn).toEqual([{ name: 'warden' }]);
    for (const k of [operator, samples]) {
      expect(k?.spec?.sourceRef).toEqual({ kind: 'GitRepository', name: 'warden' });
      expect(folderExists(k?.spec?.path as string)).toBe(true);
    }
  });

  it('keeps the CRDs and config/ in the artifact and the GitOps and local samples out', () => {
    const ignore = (objects[0]?.spec?.ignore as string).split('\n').map((l) => l.trim());
    expect(ignore).toEqual(expect.arrayContaining(['/*', '!/crds/', '!/config/', '/config/samples/gitops/', '/config/samples/local/']));
  });
});
