// Runs the quickstart exactly as written: the marked blocks of README.md (or the file in
// QUICKSTART_FILE), with only the PostgreSQL URL
// replaced by the plane's. "Your database" is a fresh database on the plane's PostgreSQL.
//
// The server block starts `warden dev` on its default ports (15432, 15556): the test fails if
// another warden dev holds them.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import pg from 'pg';
import { documentPostgresUrl, type QuickstartBlock, quickstartBlocks } from './blocks.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const FILE = resolve(ROOT, process.env.QUICKSTART_FILE ?? 'README.md');

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runShell(script: string, env: NodeJS.ProcessEnv, stdin?: string): Promise<Outcome> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

describe(`the quickstart (${FILE.slice(ROOT.length + 1)})`, () => {
  const plane = inject('plane');
  const database = `quickstart_${randomBytes(4).toString('hex')}`;
  let blocks: QuickstartBlock[];
  let docUrl: string;
  let url: string;
  let env: NodeJS.ProcessEnv;
  let state: string;
  let server: ChildProcess | undefined;
  let serverOut = '';
  let serverErr = '';
  let serverExit: Promise<number | null> = Promise.resolve(null);
  const began = Date.now();

  const admin = (): pg.Client =>
    new pg.Client({ host: plane.postgres.host, port: plane.postgres.port, user: plane.postgres.user, password: plane.postgres.password, database: plane.postgres.database });

  beforeAll(async () => {
    blocks = quickstartBlocks(await readFile(FILE, 'utf8'));
    docUrl = documentPostgresUrl(blocks);
    const client = admin();
    await client.connect();
    await client.query(`CREATE DATABASE ${database}`);
    await client.end();
    const { user, password, host, port } = plane.postgres;
    url = `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/${database}`;
    state = await mkdtemp(join(tmpdir(), 'warden-quickstart-'));
    // A clean user environment: no libpq variables from the test run, the plane's psql on PATH,
    // and a private state directory.
    env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG') && !k.startsWith('WARDEN_')));
    env.PATH = `${plane.postgres.binDir}:${process.env.PATH ?? ''}`;
    env.WARDEN_DEV_HOME = state;
  });

  afterAll(async () => {
    if (server?.pid && server.exitCode === null && server.signalCode === null) {
      try {
        process.kill(-server.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await rm(state, { recursive: true, force: true });
    const client = admin();
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await client.end();
  });

  const substitute = (text: string): string => text.replaceAll(docUrl, url);
  const outputs = new Map<string, Outcome>();

  it('has the blocks a quickstart needs, with one PostgreSQL URL', () => {
    expect(blocks.filter((b) => b.kind === 'server')).toHaveLength(1);
    expect(blocks.filter((b) => b.kind === 'run').map((b) => b.name)).toEqual(['setup', 'psql', 'sessions', 'replay']);
    expect(docUrl).toMatch(/^postgres:\/\//);
  });

  it('runs every block in order, as a user would', { timeout: 180_000 }, async () => {
    for (const block of blocks) {
      if (block.kind === 'stdin') continue;
      const script = substitute(block.text);
      if (block.kind === 'server') {
        const startedAt = Date.now();
        server = spawn('bash', ['-c', `exec ${script}`], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
        server.stdout?.on('data', (d: Buffer) => (serverOut += d.toString()));
        server.stderr?.on('data', (d: Buffer) => (serverErr += d.toString()));
        const child = server;
        // 'close': every holder of its stdout (npm, and warden dev below it) has exited.
        serverExit = new Promise((r) => child.on('close', (code) => r(code)));
        const deadline = Date.now() + 60_000;
        while (!/ready in \d+ ms/.test(serverOut)) {
          if (child.exitCode !== null || Date.now() > deadline) throw new Error(`warden dev did not become ready (line ${block.line}):\n${serverOut}\n${serverErr}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        process.stderr.write(`quickstart: warden dev ready ${Date.now() - startedAt} ms after start (${/ready in (\d+) ms/.exec(serverOut)?.[1]} ms inside)\n`);
        continue;
      }
      const stdin = blocks.find((b) => b.kind === 'stdin' && b.name === block.name)?.text;
      const outcome = await runShell(script, env, stdin === undefined ? undefined : `${stdin}\n`);
      if (outcome.code !== 0) throw new Error(`block ${block.name ?? ''} (line ${block.line}) exited ${outcome.code}:\n${outcome.stdout}\n${outcome.stderr}`);
      outputs.set(block.name ?? '', outcome);
    }
  });

  it('prints the connect command and one line about the SSH Connection it could not start', () => {
    expect(serverOut).toContain('PGPASSWORD=$(npm run -s warden -- dev token --user alice --groups dba) psql "host=127.0.0.1 port=15432 user=alice');
    const lines = serverErr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^warden dev: Connection default\/local-ssh not started: config\/samples\/local\/ssh\.yaml:\d+: \$\{WARDEN_SSH_\w+\} is not set/);
  });

  it('shows the masked column and the denied statement in psql', () => {
    const psql = outputs.get('psql');
    expect(psql?.stdout).toContain('a***@example.com');
    expect(psql?.stdout).not.toContain('ada@example.com');
    expect(psql?.stderr).toContain('ERROR:  Warden: denied by policy dba rule no-schema-changes');
  });

  it('lists, replays and verifies the session', () => {
    expect(outputs.get('sessions')?.stdout).toMatch(/default\s+\S+\s+alice\s+local-postgres\s+postgres\s+Closed\s+1\s+1/);
    const replay = outputs.get('replay')?.stdout ?? '';
    expect(replay).toContain('DENIED: denied by policy dba rule no-schema-changes');
    expect(replay).toContain('a***@example.com');
    expect(replay).toMatch(/^OK file:\/\/.*closed, manifest verified/m);
  });

  it('stops cleanly on Ctrl-C', async () => {
    if (!server?.pid) throw new Error('no server');
    // Ctrl-C in a terminal signals the whole foreground process group (npm and warden dev).
    process.kill(-server.pid, 'SIGINT');
    await serverExit;
    expect(serverOut).toContain('warden dev: stopping');
    expect(serverOut).toContain('warden dev: stopped');
    expect(serverErr).not.toMatch(/unclean|not all written/);
    process.stderr.write(`quickstart: whole run ${Date.now() - began} ms\n`);
  });
});
