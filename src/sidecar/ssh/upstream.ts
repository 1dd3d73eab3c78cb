import { Socket } from 'node:net';
import ssh2, { type ClientChannel, type ConnectConfig, type ExecOptions, type PseudoTtyOptions, type ShellOptions } from 'ssh2';
import type { SshUpstreamConfig } from './config.ts';
import { UPSTREAM_ALGORITHMS } from './config.ts';
import { SshGatewayError, SshGatewayErrorCode } from './errors.ts';
import { coalesceWrites } from './transport.ts';
import { checkHostKey, type HostKeyCheck, hostKeyAlgorithmsFor, type PinnedHostKey, parsePinnedHostKey } from './host-keys.ts';

// ssh2 is CommonJS without named exports Node can detect: take them from the default export.
const { Client } = ssh2;
type Client = InstanceType<typeof Client>;

/** Parses the pinned keys once at start; a malformed pin is a configuration error. */
export function parsePins(config: SshUpstreamConfig): PinnedHostKey[] {
  return config.hostKeys.map((line) => parsePinnedHostKey(line));
}

export interface UpstreamConnection {
  client: Client;
  hostKey: HostKeyCheck & { ok: true };
}

export interface ConnectOptions {
  /**
   * When given, the connection stops after key exchange (the host key checked against the pins)
   * and sends nothing about the account — no user name, no credential — until this resolves: the
   * gateway starts the connection while the caller's token is still being checked, and admits it
   * only once the caller is authenticated and admitted. If it rejects, the connection is closed
   * and the promise returned by connectUpstream rejects with {@link UPSTREAM_CANCELLED}.
   */
  admitted?: Promise<void>;
}

/** The message of the rejection when `admitted` rejected (the caller was refused or left). */
export const UPSTREAM_CANCELLED = 'cancelled before the caller was admitted';

/** Whether another attempt could succeed: not when the target's host key or its refusal of our credentials was the reason. */
export function upstreamRetryable(error: unknown): boolean {
  if (!(error instanceof SshGatewayError)) return true;
  if (error.code === SshGatewayErrorCode.HostKeyMismatch || error.code === SshGatewayErrorCode.ConfigInvalid) return false;
  return (error.cause as { level?: string } | undefined)?.level !== 'client-authentication';
}

/**
 * Opens the SSH connection to the target for one client connection: the Secret's key or password,
 * the host key checked against the pins (refused on mismatch before any credential is sent, since
 * host key verification happens during key exchange), keep-alives on.
 */
export function connectUpstream(config: SshUpstreamConfig, pins: readonly PinnedHostKey[], account: string, connectOptions: ConnectOptions = {}): Promise<UpstreamConnection> {
  const target = `${config.host}:${config.port}`;
  return new Promise((resolve, reject) => {
    const client = new Client();
    let check: HostKeyCheck | undefined;
    let settled = false;
    const fail = (error: SshGatewayError): void => {
      if (settled) return;
      settled = true;
      client.end();
      reject(error);
    };
    const options: ConnectConfig = {
      host: config.host,
      port: config.port,
      username: account,
      readyTimeout: config.readyTimeoutMs ?? 10_000,
      keepaliveInterval: config.keepaliveIntervalMs ?? 15_000,
      keepaliveCountMax: config.keepaliveCountMax ?? 3,
      algorithms: {
        kex: [...UPSTREAM_ALGORITHMS.kex],
        serverHostKey: hostKeyAlgorithmsFor(
          config.insecureSkipHostKeyVerification === true ? [] : pins,
          UPSTREAM_ALGORITHMS.serverHostKey,
        ) as ConnectConfig['algorithms'] extends { serverHostKey?: infer T } ? T : never,
        cipher: [...UPSTREAM_ALGORITHMS.cipher],
        hmac: [...UPSTREAM_ALGORITHMS.hmac],
        compress: [...UPSTREAM_ALGORITHMS.compress],
      },
      hostVerifier: (key: Buffer) => {
        check = checkHostKey(key, pins, {
          insecureSkipVerification: config.insecureSkipHostKeyVerification === true,
          target,
        });
        return check.ok;
      },
      // Agent forwarding towards the target is never requested.
      agentForward: false,
    };
    if (config.privateKey !== undefined) options.privateKey = config.privateKey;
    if (config.passphrase !== undefined) options.passphrase = config.passphrase;
    if (config.password !== undefined) {
      options.password = config.password;
      options.tryKeyboard = true;
      client.on('keyboard-interactive', (_name, _instructions, _lang, prompts, finish) => {
        finish(prompts.map(() => config.password ?? ''));
      });
    }
    // ssh2's default order without its leading `none` probe (one round trip less): the methods
    // are tried in turn whatever the target lists, as ssh2 does by default.
    const methods = [
      ...(config.password !== undefined ? (['password'] as const) : []),
      ...(config.privateKey !== undefined ? (['publickey'] as const) : []),
      ...(config.password !== undefined ? (['keyboard-interactive'] as const) : []),
    ];
    let tried = 0;
    const admitted = connectOptions.admitted;
    let waiting = admitted !== undefined;
    options.authHandler = (_methodsLeft, _partialSuccess, next) => {
      // ssh2 calls this once key exchange is done and the host key was accepted.
      const go = (): void => (next as (method: string | false) => void)(tried < methods.length ? (methods[tried++] as string) : false);
      if (!waiting) return go();
      admitted?.then(
        () => {
          waiting = false;
          if (!settled) go();
        },
        () => fail(new SshGatewayError(SshGatewayErrorCode.UpstreamFailed, UPSTREAM_CANCELLED)),
      );
      return undefined;
    };
    // Refused or gone before key exchange finished: close at once rather than after it.
    admitted?.catch(() => fail(new SshGatewayError(SshGatewayErrorCode.UpstreamFailed, UPSTREAM_CANCELLED)));
    client.once('ready', () => {
      if (settled) return;
      settled = true;
      if (check === undefined || !check.ok) {
        client.end();
        reject(new SshGatewayError(SshGatewayErrorCode.HostKeyMismatch, `${target} was not verified`));
        return;
      }
      resolve({ client, hostKey: check });
    });
    client.on('error', (error: Error & { level?: string }) => {
      if (check !== undefined && !check.ok) {
        fail(new SshGatewayError(SshGatewayErrorCode.HostKeyMismatch, check.message));
        return;
      }
      // Authentication failures are the Secret's fault, not the user's: say so without detail.
      const auth = error.level === 'client-authentication';
      fail(
        new SshGatewayError(
          SshGatewayErrorCode.UpstreamFailed,
          auth
            ? `the target ${target} refused the gateway's credentials for account '${account}' (check the Connection's Secret and that the account exists)`
            : `cannot reach the target ${target}: ${error.message}`,
          { cause: error },
        ),
      );
    });
    client.on('close', () => {
      fail(new SshGatewayError(SshGatewayErrorCode.UpstreamFailed, `the target ${target} closed the connection during setup`));
    });
    let sock: Socket | undefined;
    try {
      // Our own socket, so that ssh2's packet writes are coalesced (transport.ts); ssh2 waits for
      // its 'connect' and runs the ready timeout as with a socket of its own.
      sock = new Socket();
      coalesceWrites(sock);
      options.sock = sock;
      sock.connect({ host: config.host, port: config.port });
      client.connect(options);
    } catch (error) {
      sock?.destroy();
      fail(new SshGatewayError(SshGatewayErrorCode.ConfigInvalid, `cannot connect to ${target}: ${(error as Error).message}`, { cause: error }));
    }
  });
}

export type ExitInfo = { code: number } | { signal: string; dump: boolean; desc: string };

/**
 * A channel on the target with its exit and close captured from the moment it opened. ssh2 parses
 * every packet of a TCP read in one go, so a fast command's data, exit-status and close can all be
 * emitted before a promise continuation runs: listeners attached later would miss them.
 */
export interface TargetChannel {
  stream: ClientChannel;
  /** exit-status / exit-signal (RFC 4254 §6.10), once received. */
  exit: { value: ExitInfo | undefined };
  /** Resolves when the target closed the channel. */
  closed: Promise<void>;
}

function capture(stream: ClientChannel): TargetChannel {
  const target: TargetChannel = { stream, exit: { value: undefined }, closed: new Promise((resolve) => stream.once('close', () => resolve())) };
  stream.on('exit', (code: number | null, signal?: string, dump?: boolean, desc?: string) => {
    target.exit.value =
      code !== null && code !== undefined ? { code } : { signal: signal ?? 'SIGKILL', dump: dump === true, desc: desc ?? '' };
  });
  // Until a relay takes over, errors are only logged by it; never unhandled.
  stream.on('error', () => {});
  stream.stderr.on('error', () => {});
  return target;
}

type Opener = (callback: (error: Error | undefined, channel: ClientChannel) => void) => void;

function open(opener: Opener): Promise<TargetChannel> {
  return new Promise((resolve, reject) => {
    opener((error, channel) => (error ? reject(error) : resolve(capture(channel))));
  });
}

export function openExec(client: Client, command: string, options: ExecOptions): Promise<TargetChannel> {
  return open((cb) => client.exec(command, options, cb));
}

export function openShell(client: Client, window: PseudoTtyOptions | false, options: ShellOptions): Promise<TargetChannel> {
  return open((cb) => client.shell(window, options, cb));
}

export function openSubsystem(client: Client, name: string): Promise<TargetChannel> {
  return open((cb) => client.subsys(name, cb));
}

export function openForwardOut(client: Client, srcIP: string, srcPort: number, dstIP: string, dstPort: number): Promise<TargetChannel> {
  return open((cb) => client.forwardOut(srcIP, srcPort, dstIP, dstPort, cb));
}
