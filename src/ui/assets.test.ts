import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assetsFresh, ensureAssets, sourceStamp } from './assets.ts';

const dir = mkdtempSync(join(tmpdir(), 'warden-ui-assets-'));
const out = join(dir, 'ui');

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ensureAssets', () => {
  it('builds the front-end with Vite when missing, saying so, and not again while the sources are unchanged', async () => {
    const lines: string[] = [];
    await ensureAssets({ outDir: out, log: (line) => lines.push(line) });
    expect(lines[0]).toMatch(/^building the web viewer's assets with Vite/);
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    const script = /src="\/assets\/(index-[\w-]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect(readdirSync(join(out, 'assets'))).toContain(script);
    // Preact and the player are bundled: nothing is fetched from a CDN at run time.
    expect(readFileSync(join(out, 'assets', script as string), 'utf8')).not.toMatch(/https?:\/\/(cdn|unpkg|esm\.sh|jsdelivr)/);
    expect(assetsFresh(out, sourceStamp())).toBe(true);

    const again: string[] = [];
    await ensureAssets({ outDir: out, log: (line) => again.push(line) });
    expect(again).toEqual([]);
  }, 60_000);

  it('rebuilds when the stamp does not match the sources', async () => {
    writeFileSync(join(out, '.build-stamp'), 'stale\n');
    expect(assetsFresh(out)).toBe(false);
    const lines: string[] = [];
    await ensureAssets({ outDir: out, log: (line) => lines.push(line) });
    expect(lines.length).toBeGreaterThan(0);
    expect(assetsFresh(out)).toBe(true);
  }, 60_000);

  it('uses a prebuilt directory as it is, and says plainly when it is empty', async () => {
    expect(await ensureAssets({ outDir: out, prebuilt: true })).toBe(out);
    await expect(ensureAssets({ outDir: join(dir, 'empty'), prebuilt: true })).rejects.toMatchObject({ code: 'ASSETS_MISSING' });
  });
});
