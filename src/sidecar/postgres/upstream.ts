// The gateway's connection to the real database: TCP, TLS per spec.target.tls, the startup
// packet with the Connection's user and database, and password authentication (SCRAM-SHA-256,
// md5, cleartext). The handshake's messages are decoded with pg-protocol's Parser; once the
// server is ready for queries the relay takes over the socket and its framer.

import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { serialize } from 'pg-protocol';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { Parser } from 'pg-protocol/dist/parser.js';
import type { UpstreamConfig } from './config.ts';
import { type BackendFrame, BackendFramer } from './protocol/backend.ts';
import { md5PasswordResponse, ScramClient } from './scram.ts';

export class UpstreamError extends Error {
  readonly code: 'WARDEN_PG_UPSTREAM_UNREACHABLE' | 'WARDEN_PG_UPSTREAM_AUTH' | 'WARDEN_PG_UPSTREAM_TLS';
  constructor(code: UpstreamError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpstreamError';
    this.code = code;
  }
}

export interface Upstream {
  socket: Socket | TLSSocket;
  framer: BackendFramer;
  /** Frames that arrived after ReadyForQuery in the same read (normally none). */
  pending: BackendFrame[];
  /** ParameterStatus frames, to relay to the client as they are. */
  parameterStatus: Buffer[];
  backendKey: { processId: number; secretKey: number };
}

/** Opens a TCP (and, per mode, TLS) connection to the upstream server. */
export async function openSocket(config: UpstreamConfig): Promise<Socket | TLSSocket> {
  const timeout = config.connectTimeoutMs ?? 10_000;
  const tcp = await new Promise<Socket>((resolve, reject) => {
    const socket = netConnect({ host: config.host, port: config.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new UpstreamError('WARDEN_PG_UPSTREAM_UNREACHABLE', `timed out connecting to ${config.host}:${config.port}`));
    }, timeout);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(new UpstreamError('WARDEN_PG_UPSTREAM_UNREACHABLE', `cannot connect to ${config.host}:${config.port}: ${error.message}`));
    });
  });
  tcp.setNoDelay(true);
  if (config.tls.mode === 'disable') return tcp;
  tcp.write(serialize.requestSsl());
  const answer = await readByte(tcp, timeout);
  if (answer !== 0x53) {
    tcp.destroy();
    throw new UpstreamError('WARDEN_PG_UPSTREAM_TLS', `the database at ${config.host}:${config.port} does not offer TLS (tls mode ${config.tls.mode})`);
  }
  const verify = config.tls.mode === 'verify-ca' || config.tls.mode === 'verify-full';
  const secure = tlsConnect({
    socket: tcp,
    servername: config.tls.serverName ?? config.host,
    ...(config.tls.ca ? { ca: config.tls.ca } : {}),
    rejectUnauthorized: verify,
    // verify-ca checks the chain only, like libpq's sslmode=verify-ca.
    ...(config.tls.mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', (error) =>
      reject(new UpstreamError('WARDEN_PG_UPSTREAM_TLS', `TLS to the database failed: ${error.message}`, { cause: error })),
    );
  });
  return secure;
}

async function readByte(socket: Socket, timeoutMs: number): Promise<number> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new UpstreamError('WARDEN_PG_UPSTREAM_TLS', 'no answer to SSLRequest')), timeoutMs);
    const onData = (chunk: Buffer): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      // The answer is one byte; anything after it would be unencrypted data injected before the
      // handshake (CVE-2021-23222), so it is refused.
      if (chunk.length !== 1) reject(new UpstreamError('WARDEN_PG_UPSTREAM_TLS', 'unexpected data after the SSLRequest answer'));
      else resolve(chunk[0]!);
    };
    socket.on('data', onData);
    socket.once('error', (e) => reject(new UpstreamError('WARDEN_PG_UPSTREAM_TLS', e.message)));
    socket.once('close', () => reject(new UpstreamError('WARDEN_PG_UPSTREAM_TLS', 'connection closed during SSLRequest')));
  });
}

/**
 * Connects and authenticates as the Connection's user. `params` are the client's relayed startup
 * parameters (application_name…); user and database always come from the configuration.
 */
export async function connectUpstream(config: UpstreamConfig, params: Record<string, string>): Promise<Upstream> {
  const socket = await openSocket(config);
  try {
    return await handshake(socket, config, params);
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

async function handshake(socket: Socket | TLSSocket, config: UpstreamConfig, params: Record<string, string>): Promise<Upstream> {
  const framer = new BackendFramer();
  const parser = new Parser();
  const decode = (frame: BackendFrame): BackendMessage => {
    let message: BackendMessage | undefined;
    parser.parse(frame.raw, (m) => {
      message = m;
    });
    if (!message) throw new UpstreamError('WARDEN_PG_UPSTREAM_AUTH', 'undecodable message from the database');
    return message;
  };
  // The two settings that change how SQL text is read (classify.ts, LEXER_SETTINGS) are pinned to
  // what Warden's parser assumes. A startup value outranks database and role defaults, and RESET,
  // ROLLBACK, COMMIT and DISCARD ALL go back to it.
  socket.write(serialize.startup({ ...params, user: config.user, database: config.database, client_encoding: 'UTF8', standard_conforming_strings: 'on' }));
  const parameterStatus: Buffer[] = [];
  let backendKey = { processId: 0, secretKey: 0 };
  let scram: ScramClient | undefined;

  return await new Promise<Upstream>((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new UpstreamError('WARDEN_PG_UPSTREAM_AUTH', 'the database did not finish authentication in time')),
      config.connectTimeoutMs ?? 10_000,
    );
    const fail = (error: Error): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      reject(error);
    };
    const onClose = (): void => fail(new UpstreamError('WARDEN_PG_UPSTREAM_AUTH', 'the database closed the connection during authentication'));
    const onError = (e: Error): void => fail(new UpstreamError('WARDEN_PG_UPSTREAM_UNREACHABLE', e.message));
    socket.once('close', onClose);
    socket.once('error', onError);
    const onData = (chunk: Buffer): void => {
      try {
        const frames = framer.push(chunk);
        for (let i = 0; i < frames.length; i++) {
          const message = decode(frames[i]!);
          switch (message.name) {
            case 'authenticationCleartextPassword':
              socket.write(serialize.password(config.password));
              break;
            case 'authenticationMD5Password':
              socket.write(serialize.password(md5PasswordResponse(config.user, config.password, Buffer.from((message as unknown as { salt: Uint8Array }).salt))));
              break;
            case 'authenticationSASL': {
              const mechanisms = (message as unknown as { mechanisms: string[] }).mechanisms;
              if (!mechanisms.includes('SCRAM-SHA-256')) {
                throw new UpstreamError('WARDEN_PG_UPSTREAM_AUTH', `the database offers no supported SASL mechanism (${mechanisms.join(', ')})`);
              }
              scram = new ScramClient(config.password);
              socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.first()));
              break;
            }
            case 'authenticationSASLContinue':
              if (!scram) throw new UpstreamError('WARDEN_PG_UPSTREAM_AUTH', 'unexpected SASL continue');
              socket.write(serialize.sendSCRAMClientFinalMessage(scram.final((message as unknown as { data: string }).data)));
              break;
            case 'authenticationSASLFinal':
              if (!scram) throw new UpstreamError('WARDEN_PG_UPSTREAM_AUTH', 'unexpected SASL final');
              scram.verify((message as unknown as { data: string }).data);
              break;
            case 'authenticationOk':
              if (scram === undefined && config.tls.mode === 'disable') {
                // Fine: trust or cleartext/md5 over a link the operator chose not to encrypt.
              }
              break;
            case 'parameterStatus':
              parameterStatus.push(frames[i]!.raw);
              break;
            case 'backendKeyData': {
              const m = message as unknown as { processID: number; secretKey: number };
              backendKey = { processId: m.processID, secretKey: m.secretKey };
              break;
            }
            case 'notice':
            case 'negotiateProtocolVersion' as BackendMessage['name']:
              break;
            case 'error': {
              const m = message as unknown as { message: string; code?: string };
              // The server's text can name the upstream user, never the password.
              throw new UpstreamError('WARDEN_PG_UPSTREAM_AUTH', `the database refused the gateway's login: ${m.message} (${m.code ?? ''})`);
            }
            case 'readyForQuery':
              clearTimeout(timer);
              socket.off('data', onData);
              socket.off('close', onClose);
              socket.off('error', onError);
              socket.pause();
              resolve({ socket, framer, pending: frames.slice(i + 1), parameterStatus, backendKey });
              return;
            default:
              throw new UpstreamError('WARDEN_PG_UPSTREAM_AUTH', `unexpected ${message.name} during authentication`);
          }
        }
      } catch (error) {
        fail(error instanceof UpstreamError ? error : new UpstreamError('WARDEN_PG_UPSTREAM_AUTH', (error as Error).message, { cause: error }));
      }
    };
    socket.on('data', onData);
  });
}

/** Sends a CancelRequest for the upstream backend on a fresh connection (§55.2.8). */
export async function cancelUpstream(config: UpstreamConfig, key: { processId: number; secretKey: number }): Promise<void> {
  const socket = await openSocket(config);
  await new Promise<void>((resolve) => {
    socket.end(serialize.cancel(key.processId, key.secretKey), () => resolve());
    socket.once('error', () => resolve());
  });
  socket.destroy();
}
