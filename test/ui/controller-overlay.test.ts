// The overlay docs/ui.md gives for running the viewer in the controller Deployment ("In the
// controller Deployment"), taken from the document itself: kustomize renders it over
// config/default, the result turns the viewer on and exposes it, and the real API server accepts
// the changed objects (server-side dry run, strict field validation).

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { kubectlOk } from '../plane/kubectl.ts';

const plane = inject('plane');
const ROOT = resolve(import.meta.dirname, '../..');
const ns = `ui-overlay-${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const dir = mkdtempSync(join(tmpdir(), 'warden-ui-overlay-'));

interface Obj {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  spec?: {
    selector?: Record<string, string>;
    sessionAffinity?: string;
    ports?: Array<{ port: number; targetPort: string }>;
    template?: {
      metadata: { labels: Record<string, string> };
      spec: { containers: Array<{ name: string; ports: Array<{ name: string; containerPort: number }>; envFrom: Array<{ configMapRef: { name: string } }> }> };
    };
  };
}

let rendered: Obj[];
const find = (kind: string, name: string): Obj => {
  const found = rendered.find((o) => o.kind === kind && o.metadata.name.startsWith(name));
  if (!found) throw new Error(`the overlay renders no ${kind} ${name}`);
  return found;
};

beforeAll(async () => {
  // The overlay's files, exactly as the document shows them, in my-warden/ beside config/.
  const doc = readFileSync(join(ROOT, 'docs/ui.md'), 'utf8');
  const files = [...doc.matchAll(/<!-- ui-overlay: (\S+) -->\n```yaml\n(.*?)```/gs)];
  expect(files.map((m) => m[1])).toEqual(['kustomization.yaml', 'ui-service.yaml']);
  mkdirSync(join(dir, 'my-warden'));
  symlinkSync(join(ROOT, 'config'), join(dir, 'config'));
  for (const [, name, body] of files) writeFileSync(join(dir, 'my-warden', name as string), body as string);
  const out = await kubectlOk(plane.kube, ['kustomize', join(dir, 'my-warden')]);
  rendered = parseAllDocuments(out).map((d) => d.toJS() as Obj);
  await kubectlOk(plane.kube, ['create', 'namespace', ns]);
});

afterAll(async () => {
  await kubectlOk(plane.kube, ['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

describe('the overlay in docs/ui.md', () => {
  it('turns the viewer on in the settings ConfigMap the controller reads, keeping the OIDC settings', () => {
    const deployment = find('Deployment', 'warden-controller');
    const container = deployment.spec?.template?.spec.containers.find((c) => c.name === 'controller');
    const settings = find('ConfigMap', 'warden-controller-settings');
    expect(container?.envFrom.map((e) => e.configMapRef.name)).toEqual([settings.metadata.name]);
    expect(settings.data).toMatchObject({ WARDEN_UI: 'true', WARDEN_UI_PUBLIC_URL: 'https://warden.example.com', WARDEN_OIDC_USERNAME_CLAIM: 'email' });
  });

  it("adds the port `ui` (the controller's default 8080) and a sticky Service that reaches it", () => {
    const deployment = find('Deployment', 'warden-controller');
    const container = deployment.spec?.template?.spec.containers.find((c) => c.name === 'controller');
    expect(container?.ports).toEqual([
      { name: 'health', containerPort: 8081 },
      { name: 'ui', containerPort: 8080 },
    ]);
    const service = find('Service', 'warden-ui');
    expect(service.metadata.namespace).toBe('warden-system');
    expect(service.spec?.sessionAffinity).toBe('ClientIP');
    expect(service.spec?.ports?.[0]?.targetPort).toBe('ui');
    const podLabels = deployment.spec?.template?.metadata.labels ?? {};
    for (const [key, value] of Object.entries(service.spec?.selector ?? {})) expect(podLabels[key]).toBe(value);
  });

  it('is accepted by the real API server (server-side dry run)', async () => {
    const objects = [find('ConfigMap', 'warden-controller-settings'), find('Deployment', 'warden-controller'), find('Service', 'warden-ui')].map((o) => ({
      ...o,
      metadata: { ...o.metadata, namespace: ns },
    }));
    const out = await kubectlOk(plane.kube, ['apply', '--server-side', '--dry-run=server', '--field-manager=ui-overlay-test', '-f', '-'], {
      input: objects.map((o) => stringify(o)).join('---\n'),
    });
    expect(out).toMatch(/deployment\.apps\/warden-controller serverside-applied \(server dry run\)/);
    expect(out).toMatch(/service\/warden-ui serverside-applied \(server dry run\)/);
  });
});
