// The front-end (src/ui/web, Preact + asciinema-player) is compiled by Vite into static files the
// server sends. Build outputs are not committed: `warden ui` and the browser test build them on
// first use, and again when the sources or the front-end packages change (a content stamp). A
// container image builds them once at image build time and points WARDEN_UI_ASSETS at them.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Vite from 'vite';
import { UiError, UiErrorCode } from './errors.ts';

export const WEB_DIR = fileURLToPath(new URL('./web/', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Default output: under node_modules/.cache, which git and the linters already ignore. */
export const DEFAULT_ASSETS_DIR = join(REPO_ROOT, 'node_modules', '.cache', 'warden-ui');
const STAMP = '.build-stamp';
/** Packages whose version is part of the stamp. */
const FRONTEND_PACKAGES = ['vite', 'preact', 'asciinema-player'] as const;

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(path));
    else files.push(path);
  }
  return files.sort();
}

/** A digest of the front-end sources and the versions of the packages that compile them. */
export function sourceStamp(webDir: string = WEB_DIR): string {
  const hash = createHash('sha256');
  for (const file of sourceFiles(webDir)) hash.update(relative(webDir, file)).update('\0').update(readFileSync(file)).update('\0');
  for (const name of FRONTEND_PACKAGES) {
    let version = 'absent';
    try {
      version = (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      // Absent in a production install: a prebuilt directory is then required.
    }
    hash.update(`${name}@${version}\0`);
  }
  return hash.digest('hex');
}

export function assetsFresh(outDir: string, stamp: string = sourceStamp()): boolean {
  try {
    return readFileSync(join(outDir, STAMP), 'utf8').trim() === stamp && existsSync(join(outDir, 'index.html'));
  } catch {
    return false;
  }
}

export interface EnsureAssetsOptions {
  readonly outDir?: string;
  /** Progress lines ("building the web viewer…"). */
  readonly log?: (line: string) => void;
  /** Use what is in outDir without checking the stamp (a prebuilt image directory). */
  readonly prebuilt?: boolean;
}

/** Returns the assets directory, building it first when it is missing or stale. */
export async function ensureAssets(options: EnsureAssetsOptions = {}): Promise<string> {
  const outDir = options.outDir ?? DEFAULT_ASSETS_DIR;
  if (options.prebuilt) {
    if (!existsSync(join(outDir, 'index.html'))) throw new UiError(UiErrorCode.AssetsMissing, `no built web viewer in ${outDir} (index.html missing)`);
    return outDir;
  }
  const stamp = sourceStamp();
  if (assetsFresh(outDir, stamp)) return outDir;
  const log = options.log ?? (() => undefined);
  let vite: typeof Vite;
  try {
    vite = await import('vite');
  } catch (cause) {
    throw new UiError(
      UiErrorCode.AssetsMissing,
      `the web viewer's assets in ${outDir} are missing or out of date, and Vite is not installed here to build them (npm ci with dev dependencies, or set WARDEN_UI_ASSETS to a prebuilt directory)`,
      { cause },
    );
  }
  const began = Date.now();
  log(`building the web viewer's assets with Vite into ${outDir} (first start or sources changed)…`);
  // Build next to the target and swap it in, so a concurrent reader never sees half a build.
  const staging = `${outDir}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(dirname(outDir), { recursive: true });
  try {
    await vite.build({
      configFile: false,
      root: WEB_DIR,
      base: '/',
      logLevel: 'warn',
      clearScreen: false,
      oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
      build: { outDir: staging, emptyOutDir: true, assetsDir: 'assets', sourcemap: false, reportCompressedSize: false, chunkSizeWarningLimit: 2048 },
    });
    writeFileSync(join(staging, STAMP), `${stamp}\n`);
    if (assetsFresh(outDir, stamp)) {
      // Another process (a parallel test file, a second `warden ui`) finished the same build first: keep its files in place.
      rmSync(staging, { recursive: true, force: true });
    } else {
      rmSync(outDir, { recursive: true, force: true });
      renameSync(staging, outDir);
    }
  } catch (cause) {
    rmSync(staging, { recursive: true, force: true });
    if (assetsFresh(outDir, stamp)) return outDir; // another process finished the same build first
    throw new UiError(UiErrorCode.AssetsMissing, `building the web viewer failed: ${(cause as Error).message}`, { cause });
  }
  log(`built the web viewer in ${Date.now() - began} ms`);
  return outDir;
}
