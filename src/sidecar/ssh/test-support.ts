// Helpers for the SSH gateway's integration tests: a gateway in front of the plane's sshd with the
// real token verifier and policy engine, an in-memory recording sink that checks every event's
// shape with the recorder's own validator, and the real OpenSSH client driven with SSH_ASKPASS.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { utils as sshUtils } from 'ssh2';
import type { AccessPolicySpec } from '../../api/types.ts';
import { bundlePolicies } from '../../policy/compile.ts';
import { compilePolicies } from '../../policy/engine.ts';
import { eventShapeProblem } from '../../recorder/chunk.ts';
import { capture, type Captured, waitUntil } from '../../../test/plane/proc.ts';
import type { PlaneInfo } from '../../../test/plane/types.ts';
import { TokenVerifier } from '../auth/oidc.ts';
import type { SshGatewayConfig, SshPolicy, SshRecordingEvent, SshSessionInfo } from './config.ts';
import { generateHostKey, SshGateway } from './gateway.ts';

export interface RecordedSession {
  info: SshSessionInfo;
  events: SshRecordingEvent[];
  closed: boolean;
}

export interface TestGateway {
  gateway: SshGateway;
  port: number;
  dir: string;
  knownHosts: string;
  /** The gateway's host public key, `ssh-ed25519 AAAA…`. */
  publicKey: string;
  sessions: RecordedSession[];
  /** The most recent session, once its recording is closed (the client may exit before the gateway sees the close). */
  settled(): Promise<RecordedSession>;
  /** Runs the OpenSSH client `program` (ssh, scp, sftp) with the gateway options and a token. */
  client(program: 'ssh' | 'scp' | 'sftp', token: string, args: string[], options?: { input?: string }): Promise<Captured>;
  /** Common OpenSSH options for the gateway (port excluded: ssh takes -p, scp/sftp -P). */
  options: string[];
  env(token: string): Promise<NodeJS.ProcessEnv>;
  close(): Promise<void>;
}

export function sshPolicy(specs: Array<{ name: string; spec: AccessPolicySpec }>, sessionLimits?: { maxDuration?: string; idleTimeout?: string }): SshPolicy {
  const { bundle } = bundlePolicies(specs, { name: 'ssh-test', protocol: 'ssh', ...(sessionLimits ? { sessionLimits } : {}) });
  // The real engine, typed through the gateway's seam (this line checks the seam fits).
  const engine: SshPolicy = compilePolicies(bundle);
  return engine;
}

export async function startTestGateway(
  plane: PlaneInfo,
  policy: SshPolicy,
  overrides: Partial<Omit<SshGatewayConfig, 'upstream'>> & { upstream?: Partial<SshGatewayConfig['upstream']> } = {},
): Promise<TestGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-ssh-gw-'));
  const hostKey = generateHostKey();
  const sessions: RecordedSession[] = [];
  const { upstream: upstreamOverrides, ...rest } = overrides;
  const gateway = new SshGateway({
    connection: 'test/ssh',
    listen: { host: '127.0.0.1', port: 0 },
    hostKey,
    upstream: {
      host: plane.ssh.host,
      port: plane.ssh.port,
      user: plane.ssh.user,
      privateKey: await readFile(plane.ssh.privateKeyFile, 'utf8'),
      hostKeys: plane.ssh.hostKeys,
      ...upstreamOverrides,
    },
    verifier: new TokenVerifier({ issuer: plane.oidc.issuer, audience: plane.oidc.audience, jwksUri: plane.oidc.jwksUri }),
    policy,
    recorder: (info) => {
      const session: RecordedSession = { info, events: [], closed: false };
      sessions.push(session);
      return {
        append: (event) => {
          const problem = eventShapeProblem(event);
          if (problem !== undefined) throw new Error(`bad ${event.k} event: ${problem}`);
          session.events.push(structuredClone(event));
          return true;
        },
        close: async () => {
          session.closed = true;
        },
      };
    },
    log: () => {},
    ...rest,
  });
  const { port } = await gateway.listen();
  const parsed = sshUtils.parseKey(hostKey);
  if (parsed instanceof Error) throw parsed;
  const knownHosts = join(dir, 'known_hosts');
  const publicKey = `ssh-ed25519 ${parsed.getPublicSSH().toString('base64')}`;
  await writeFile(knownHosts, `[127.0.0.1]:${port} ${publicKey}\n`);
  const askpass = join(dir, 'askpass.sh');
  await writeFile(askpass, '#!/bin/sh\ncat "$WARDEN_TOKEN_FILE"\n');
  await chmod(askpass, 0o755);
  const options = [
    '-F',
    '/dev/null',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'PreferredAuthentications=keyboard-interactive,password',
    '-o',
    'PubkeyAuthentication=no',
    '-o',
    'NumberOfPasswordPrompts=1',
    '-o',
    'ConnectTimeout=10',
  ];
  let tokens = 0;
  const env = async (token: string): Promise<NodeJS.ProcessEnv> => {
    const file = join(dir, `token-${tokens++}`);
    await writeFile(file, token, { mode: 0o600 });
    return { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', WARDEN_TOKEN_FILE: file, DISPLAY: ':0' };
  };
  return {
    gateway,
    port,
    dir,
    knownHosts,
    publicKey,
    sessions,
    options,
    env,
    async settled() {
      await waitUntil('the session recording to close', async () => sessions.at(-1)?.closed === true, { timeoutMs: 10_000 });
      return sessions.at(-1) as RecordedSession;
    },
    async client(program, token, args, opts = {}) {
      const portFlag = program === 'ssh' ? ['-p', String(port)] : ['-P', String(port)];
      return await capture(program, [...options, ...portFlag, ...args], { env: await env(token), ...(opts.input ? { input: opts.input } : {}) });
    },
    async close() {
      await gateway.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
