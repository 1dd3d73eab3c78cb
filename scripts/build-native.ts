// Builds ssh2's optional crypto binding (AES-GCM, chacha20-poly1305 and generic ciphers in C++
// over OpenSSL) against the headers of the Node that runs Warden (`npm ci` runs this as the
// project's postinstall; the Dockerfile runs it in its build stage). Why and how: docs/adr/0013.
//
// ssh2's own install script is not allowed (package.json allowScripts): it would compile against
// the headers npm is configured with (here Node 20's), and a binding built for another Node ABI
// does not load. This script finds Node 24's own headers instead — the `node` devDependency's
// platform package ships them, as does every official Node distribution next to its binary.
//
// Without the binding ssh2 still works (its JavaScript ciphers over node:crypto), at about half
// the SSH gateway's throughput; so a failed build warns loudly and does not fail the install
// unless WARDEN_REQUIRE_NATIVE=1. `ssh2-native.test.ts` fails when the binding is missing, so CI
// notices.
//
//   node scripts/build-native.ts            # build if missing or built for another Node
//   node scripts/build-native.ts --force    # rebuild
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

const require = createRequire(import.meta.url);
const force = process.argv.includes('--force');
const required = process.env.WARDEN_REQUIRE_NATIVE === '1';
const log = (line: string): void => {
  process.stderr.write(`[native] ${line}\n`);
};

/** The directory holding include/node of exactly this Node version, if one is at hand. */
function findNodeHeaders(): string | undefined {
  const candidates: string[] = [];
  try {
    // The `node` npm package (devDependency) installs node-<os>-<arch> with the full distribution.
    const nodePackage = dirname(require.resolve('node/package.json'));
    candidates.push(join(nodePackage, 'node_modules', `node-${process.platform}-${process.arch}`));
  } catch {
    // not installed (e.g. npm ci --omit=dev in the image): the distribution's own headers below
  }
  candidates.push(resolve(dirname(process.execPath), '..'));
  for (const dir of candidates) {
    const header = join(dir, 'include', 'node', 'node_version.h');
    if (!existsSync(header)) continue;
    const text = readFileSync(header, 'utf8');
    const part = (name: string): string | undefined => new RegExp(`#define ${name} (\\d+)`).exec(text)?.[1];
    const version = `v${part('NODE_MAJOR_VERSION')}.${part('NODE_MINOR_VERSION')}.${part('NODE_PATCH_VERSION')}`;
    if (version === process.version) return dir;
  }
  return undefined;
}

const usable = (path: string | undefined): path is string => path !== undefined && path !== '' && existsSync(path);

/**
 * npm's own node-gyp: the path npm hands its scripts, else next to the running npm (npm_execpath),
 * else beside the npm found on a PATH without node_modules/.bin (see `safePath`).
 */
function nodeGyp(): string | undefined {
  if (usable(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  const execpath = process.env.npm_execpath; // …/npm/bin/npm-cli.js
  if (execpath) {
    const beside = join(dirname(execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (usable(beside)) return beside;
  }
  const npm = spawnSync('npm', ['root', '-g'], { encoding: 'utf8', env: { ...process.env, PATH: safePath() } });
  const global = npm.status === 0 ? join(npm.stdout.trim(), 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js') : undefined;
  return usable(global) ? global : undefined;
}

/**
 * PATH for the build: the running Node's directory first (binding.gyp runs `node`), without any
 * node_modules/.bin (npm puts ours first for scripts; a dependency's `bin` named python3, make or
 * g++ must not run here).
 */
function safePath(): string {
  const entries = (process.env.PATH ?? '').split(':').filter((p) => p !== '' && !/(^|\/)node_modules\/\.bin\/?$/.test(p));
  return [dirname(process.execPath), ...entries].join(':');
}

function bindingLoads(path: string): boolean {
  if (!existsSync(path)) return false;
  try {
    require(path);
    return true;
  } catch {
    return false;
  }
}

function fail(reason: string): never {
  log(`ssh2's crypto binding was NOT built: ${reason}`);
  log('the SSH gateway still works, with ssh2\'s JavaScript ciphers, at about half the throughput.');
  log('to build it later: install python3, make and a C++ compiler (Debian: apt-get install python3 make g++), then run `node scripts/build-native.ts`.');
  process.exit(required ? 1 : 0);
}

const ssh2 = dirname(require.resolve('ssh2/package.json'));
const cryptoDir = join(ssh2, 'lib', 'protocol', 'crypto');
const binding = join(cryptoDir, 'build', 'Release', 'sshcrypto.node');
if (!force && bindingLoads(binding)) {
  log(`ssh2's crypto binding is built for Node ${process.version}`);
  process.exit(0);
}
const headers = findNodeHeaders();
if (headers === undefined) fail(`no headers of Node ${process.version} found (neither the node package nor next to ${process.execPath})`);
const gyp = nodeGyp();
if (gyp === undefined) fail('node-gyp not found (it comes with npm)');
const opensslMajor = /^\d+/.exec(process.versions.openssl)?.[0] ?? '3';
log(`building ssh2's crypto binding against the headers of Node ${process.version} in ${headers} (about 10 s)`);
const started = Date.now();
const result = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${headers}`, `--real_openssl_major=${opensslMajor}`], {
  cwd: cryptoDir,
  encoding: 'utf8',
  env: {
    ...process.env,
    PATH: safePath(),
    // npm passes its own `nodedir` setting down as this variable, and node-gyp lets it win over
    // --nodedir: a build against the machine's other Node loads with "did not self-register".
    npm_config_nodedir: headers,
  },
});
if (result.status !== 0) {
  process.stderr.write(`${result.stdout}\n${result.stderr}\n`);
  fail(`node-gyp exited with ${result.status ?? result.signal}`);
}
if (!bindingLoads(binding)) fail(`${binding} was built but does not load`);
log(`built ${binding} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
