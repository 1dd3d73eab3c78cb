// hack/kind-e2e.sh where it cannot run: one clear line saying what is missing, exit 0 (or 1 with
// WARDEN_KIND_E2E_REQUIRED=1), nothing created. PATH holds only what the preflight may find.

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { capture } from '../../plane/proc.ts';

const SCRIPT = new URL('../../../hack/kind-e2e.sh', import.meta.url).pathname;
let bin: string;

function tools(fakes: Record<string, string>): string {
  bin = mkdtempSync(join(tmpdir(), 'kind-e2e-path-'));
  for (const tool of ['dirname', 'timeout']) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
  for (const [name, body] of Object.entries(fakes)) {
    writeFileSync(join(bin, name), `#!/bin/bash\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  return bin;
}

afterEach(() => {
  if (bin) rmSync(bin, { recursive: true, force: true });
});

const run = async (path: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  await capture('/bin/bash', [SCRIPT], { env: { PATH: path, ...env } });

describe('make kind-e2e where it cannot run', () => {
  it.each([
    ['docker is missing', {}, 'SKIPPED: docker is not installed'],
    ['the docker daemon is down', { docker: 'exit 1' }, 'SKIPPED: docker is installed but its daemon is not reachable'],
    ['kind is missing', { docker: 'exit 0' }, 'SKIPPED: kind is not installed'],
    ['kubectl is missing', { docker: 'exit 0', kind: 'exit 0' }, 'SKIPPED: kubectl is not installed'],
    ['psql is missing', { docker: 'exit 0', kind: 'exit 0', kubectl: 'exit 0' }, 'SKIPPED: psql (the PostgreSQL client) is not installed'],
  ] as Array<[string, Record<string, string>, string]>)('skips with exit 0 when %s', async (_, fakes, message) => {
    const result = await run(tools(fakes));
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`kind-e2e: ${message}`);
    expect(result.stderr).toContain('docs/kind-e2e.md');
  });

  it('fails instead when WARDEN_KIND_E2E_REQUIRED=1', async () => {
    const result = await run(tools({}), { WARDEN_KIND_E2E_REQUIRED: '1' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('failing instead of skipping');
  });
});

const kubectlOnPath = ((): string | undefined => {
  try {
    return execFileSync('/bin/sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
})();

describe.skipIf(!kubectlOnPath)('the kind overlay (test/e2e/kind/kustomization.yaml)', () => {
  it('installs config/default with the locally built image for controller and gateways, and the test issuer', async () => {
    const root = new URL('../../../', import.meta.url).pathname;
    const built = await capture(kubectlOnPath as string, ['kustomize', 'test/e2e/kind'], { cwd: root });
    expect(built.code, built.stderr).toBe(0);
    type Obj = { kind: string; metadata: { name: string }; data?: Record<string, string>; spec?: { replicas?: number; template: { spec: { containers: Array<{ image: string; imagePullPolicy?: string; args: string[]; env: Array<{ name: string; value?: string }> }> } } } };
    const objects = parseAllDocuments(built.stdout).map((d) => d.toJS() as Obj);
    const controller = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'warden-controller');
    const container = controller?.spec?.template.spec.containers[0];
    expect(controller?.spec?.replicas).toBe(1);
    expect(container?.image).toBe('warden:e2e');
    expect(container?.imagePullPolicy).toBe('Never');
    expect(container?.args).toContain('--image-pull-policy=Never');
    expect(container?.env.find((e) => e.name === 'WARDEN_IMAGE')?.value).toBe('warden:e2e');
    const settings = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('warden-controller-settings'));
    expect(settings?.data).toMatchObject({ WARDEN_OIDC_ISSUER: 'http://oidc.warden-e2e.svc.cluster.local', WARDEN_OIDC_AUDIENCE: 'warden' });
    expect(objects.filter((o) => o.kind === 'CustomResourceDefinition').length).toBeGreaterThanOrEqual(5);
  });
});

describe('the image entrypoint (Dockerfile: ENTRYPOINT ["warden"] → bin/warden.js)', () => {
  it('runs the CLI, not just loads it', async () => {
    const root = new URL('../../../', import.meta.url).pathname;
    const node = join(root, 'node_modules/.bin/node');
    const help = await capture(node, [join(root, 'bin/warden.js'), '--help'], { cwd: root });
    expect(help.code, help.stderr).toBe(0);
    for (const command of ['controller', 'sidecar', 'replay', 'verify']) expect(help.stdout).toContain(command);
    const version = await capture(node, [join(root, 'bin/warden.js'), '--version'], { cwd: root });
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
