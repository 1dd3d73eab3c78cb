// Test support for the HTTP gateway: an in-memory recorder, a real HTTP upstream that tells what
// it received (for header hygiene and smuggling tests, where nginx cannot say), and a raw socket
// client that sends exactly the bytes a test writes.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { AccessPolicySpec } from '../../api/types.ts';
import { bundlePolicies } from '../../policy/compile.ts';
import { compilePolicies, type PolicyEngine } from '../../policy/engine.ts';
import type { RecordingEvent } from '../../recorder/events.ts';
import type { HttpSessionRecorder } from './config.ts';
import { serializeWsFrame, websocketAccept, WsFrameParser, WsOpcode } from './websocket.ts';

export class MemoryRecorder implements HttpSessionRecorder {
  readonly events: RecordingEvent[] = [];
  closedWith: string | undefined;
  append(event: RecordingEvent): boolean {
    this.events.push(event);
    return true;
  }
  close(reason: string): void {
    this.closedWith = reason;
  }
  of<K extends RecordingEvent['k']>(kind: K): Array<Extract<RecordingEvent, { k: K }>> {
    return this.events.filter((e): e is Extract<RecordingEvent, { k: K }> => e.k === kind);
  }
}

/**
 * A gateway `recorder` factory for tests: each session's MemoryRecorder goes into the list `into()`
 * returns when the session starts (a getter, so a test may replace its list between gateways).
 */
export function recordingInto(into: () => MemoryRecorder[]): () => MemoryRecorder {
  return () => {
    const recorder = new MemoryRecorder();
    into().push(recorder);
    return recorder;
  };
}

/** A real policy engine from AccessPolicy specs (all for the Connection `conn`). */
export function engineOf(...policies: Array<{ name: string; spec: Omit<AccessPolicySpec, 'connections'> }>): PolicyEngine {
  const sources = policies.map((p) => ({ name: p.name, spec: { ...p.spec, connections: ['conn'] } }));
  return compilePolicies(bundlePolicies(sources).bundle, { hashKey: new Uint8Array(32).fill(7) });
}

export interface EchoUpstream {
  url: string;
  /** Requests received, with their headers and body sizes. */
  requests: Array<{ method: string; url: string; headers: IncomingMessage['headers']; bodyBytes: number }>;
  /** Bytes written by the endless endpoint so far. */
  endlessWritten: number;
  /** Responses of the endless endpoint that were closed (the gateway let go of them). */
  endlessClosed: number;
  close(): Promise<void>;
}

/**
 * A small real upstream: `/headers` answers with the request headers as JSON, `/endless` streams
 * bytes for as long as the client reads (honouring back-pressure), `/cut` promises 1000 bytes and
 * breaks the connection after 100, `/json` sends a JSON document with personal data, anything else
 * answers `ok`.
 */
export async function startEchoUpstream(): Promise<EchoUpstream> {
  const state: EchoUpstream = { url: '', requests: [], endlessWritten: 0, endlessClosed: 0, close: async () => undefined };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let bodyBytes = 0;
    req.on('data', (chunk: Buffer) => {
      bodyBytes += chunk.length;
    });
    req.on('end', () => {
      state.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes });
      if (req.url === '/headers') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ headers: req.headers, bodyBytes }));
      } else if (req.url === '/json') {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', etag: '"v1"' });
        res.end(JSON.stringify({ customer: { name: 'Alice', email: 'alice@example.com', card: '4111 1111 1111 1111' }, note: 'call bob@example.org' }));
      } else if (req.url === '/ndjson') {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write(`${JSON.stringify({ email: 'a@example.com' })}\n`);
        setTimeout(() => res.end(`${JSON.stringify({ email: 'b@example.com' })}\n`), 50);
      } else if (req.url === '/cut') {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
        res.write(Buffer.alloc(100, 0x62), () => setTimeout(() => res.socket?.destroy(), 20));
      } else if (req.url === '/endless') {
        res.once('close', () => {
          state.endlessClosed += 1;
        });
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const block = Buffer.alloc(64 * 1024, 0x61);
        const pump = (): void => {
          while (!res.destroyed) {
            state.endlessWritten += block.length;
            if (!res.write(block)) {
              res.once('drain', pump);
              return;
            }
          }
        };
        pump();
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok\n');
      }
    });
  });
  // WebSocket echo: every data frame comes back unmasked with the same opcode; close is answered.
  const upgraded = new Set<Socket>();
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    state.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes: 0 });
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const offered = req.headers['sec-websocket-protocol']?.split(',')[0]?.trim();
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${websocketAccept(key)}\r\n` +
        `${offered ? `Sec-WebSocket-Protocol: ${offered}\r\n` : ''}\r\n`,
    );
    const parser = new WsFrameParser({ maxPayloadBytes: 16 * 1024 * 1024 });
    const onData = (chunk: Buffer): void => {
      for (const frame of parser.push(chunk)) {
        if (frame.opcode === WsOpcode.Close) {
          socket.end(serializeWsFrame(WsOpcode.Close, frame.payload));
          return;
        }
        if (frame.opcode === WsOpcode.Ping) socket.write(serializeWsFrame(WsOpcode.Pong, frame.payload));
        else socket.write(serializeWsFrame(frame.opcode, frame.payload, { fin: frame.fin }));
      }
    };
    socket.on('error', () => socket.destroy());
    socket.on('data', onData);
    if (head.length > 0) onData(head);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = async () => {
    for (const socket of upgraded) socket.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return state;
}

/**
 * Sends `bytes` on a fresh TCP connection and resolves with everything the server sent until it
 * closed the connection (or `timeoutMs` passed, then `timedOut`).
 */
export async function rawExchange(port: number, bytes: string | Buffer, timeoutMs = 3_000): Promise<{ response: string; timedOut: boolean }> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ response: Buffer.concat(chunks).toString('latin1'), timedOut: true });
    }, timeoutMs);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      if (chunks.length > 0) resolve({ response: Buffer.concat(chunks).toString('latin1'), timedOut: false });
      else reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ response: Buffer.concat(chunks).toString('latin1'), timedOut: false });
    });
  });
}
