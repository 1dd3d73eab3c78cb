// The target side of ordinary requests, on undici's low-level dispatcher (`Pool.dispatch`) rather
// than node:http's ClientRequest: no ClientRequest/IncomingMessage streams, agent bookkeeping or
// per-request socket listeners: the gateway's CPU per small request fell by 34–45 % with it
// (bench/README.md, http.ts, 2026-12-03 evening).
// Upgrades (WebSocket) still use node:http (gateway.ts #upgrade), which hands over both sockets.
//
// One UpstreamExchange per request is undici's handler: it hands the response start to the
// gateway, which answers with where the body goes — a ClientSink (straight to the client, with
// back-pressure by pausing the target) or a BodyStream (a Readable for the masking code).

import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { HttpUpstream } from './config.ts';
import type { HeaderMap } from './headers.ts';

/** Where a response body goes once its head arrived. */
export interface ResponseSink {
  onData(chunk: Buffer, controller: Dispatcher.DispatchController): void;
  onEnd(): void;
  /** The target broke off (or the request was aborted) after the response began. */
  onError(error: Error): void;
  /** The client's response closed; `finished` when it was sent whole. */
  onClientClosed(finished: boolean): void;
}

/**
 * A connection pool to the target. Keep-alive as the node:http agent had it; no body timeout
 * (watch streams and downloads may be endless; the client's idle timeout bounds stalled ones); the
 * response timeout is the per-request `headersTimeout`, and connecting is bounded by the same time.
 */
export function createUpstreamPool(upstream: URL, config: HttpUpstream, responseTimeoutMs: number): Pool {
  const common = { pipelining: 1, bodyTimeout: 0, headersTimeout: 0, connectTimeout: responseTimeoutMs };
  if (upstream.protocol === 'http:') return new Pool(upstream.origin, common);
  return new Pool(upstream.origin, { ...common, connect: upstreamTlsOptions(config) });
}

/**
 * Node TLS options towards an https:// target from its TLS mode (verify-full by default): for the
 * undici pool and for the node:http agent that carries upgrades alike.
 */
export function upstreamTlsOptions(config: HttpUpstream): {
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  rejectUnauthorized: boolean;
  checkServerIdentity?: () => undefined;
} {
  const tls = config.tls ?? { mode: 'verify-full' as const };
  if (tls.mode === 'disable') throw new Error('the upstream URL is https:// but its TLS mode is disable; use an http:// URL or another mode');
  return {
    ...(tls.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls.key === undefined ? {} : { key: tls.key }),
    ...(tls.serverName === undefined ? {} : { servername: tls.serverName }),
    rejectUnauthorized: tls.mode !== 'require',
    ...(tls.mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
  };
}

/**
 * undici's handler for one request. `start` gets the final response head (1xx informational
 * answers are skipped, as node:http's client did) and returns the body's sink; what it throws, and
 * any failure before the response began, goes to `fail` (answered 502/504 by the gateway).
 */
export class UpstreamExchange implements Dispatcher.DispatchHandler {
  readonly #start: (controller: Dispatcher.DispatchController, status: number, headers: HeaderMap) => ResponseSink;
  readonly #fail: (error: unknown) => void;
  #controller: Dispatcher.DispatchController | undefined;
  #abortReason: Error | undefined;
  #sink: ResponseSink | undefined;
  #over = false;

  constructor(start: (controller: Dispatcher.DispatchController, status: number, headers: HeaderMap) => ResponseSink, fail: (error: unknown) => void) {
    this.#start = start;
    this.#fail = fail;
  }

  /** Stops the request (the client went away): now, or as soon as undici starts writing it. */
  abort(reason: Error): void {
    if (this.#controller !== undefined) this.#controller.abort(reason);
    else this.#abortReason ??= reason;
  }

  /** The client's response closed; a request still running is aborted. */
  clientClosed(finished: boolean): void {
    if (!finished) this.abort(new Error('the client went away'));
    this.#sink?.onClientClosed(finished);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#abortReason !== undefined) controller.abort(this.#abortReason);
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    if (status < 200 || this.#over) return;
    try {
      this.#sink = this.#start(controller, status, headers as HeaderMap);
    } catch (error) {
      this.#over = true;
      this.#fail(error);
      controller.abort(error instanceof Error ? error : new Error(String(error)));
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#sink?.onData(chunk, controller);
  }

  onResponseEnd(): void {
    this.#over = true;
    this.#sink?.onEnd();
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error): void {
    if (this.#over) return;
    this.#over = true;
    if (this.#sink !== undefined) this.#sink.onError(error);
    else this.#fail(error);
  }
}

/**
 * The body straight to the client. `done` is called once: true when the client was sent the whole
 * body, false when either side broke off (a body cut by the target cuts the client's too: a short
 * body must not look complete).
 */
export class ClientSink implements ResponseSink {
  readonly #res: ServerResponse;
  readonly #capture: (chunk: Buffer) => void;
  readonly #done: (complete: boolean) => void;
  #settled = false;

  constructor(res: ServerResponse, capture: (chunk: Buffer) => void, done: (complete: boolean) => void) {
    this.#res = res;
    this.#capture = capture;
    this.#done = done;
  }

  onData(chunk: Buffer, controller: Dispatcher.DispatchController): void {
    this.#capture(chunk);
    if (!this.#res.write(chunk)) {
      controller.pause();
      this.#res.once('drain', () => controller.resume());
    }
  }

  onEnd(): void {
    this.#res.end();
  }

  onError(): void {
    this.#res.destroy();
    this.#settle(false);
  }

  onClientClosed(finished: boolean): void {
    this.#settle(finished);
  }

  #settle(complete: boolean): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#done(complete);
  }
}

/** The body as a Readable (for masking): reading resumes the target, a full buffer pauses it. */
export class BodyStream extends Readable implements ResponseSink {
  readonly #controller: Dispatcher.DispatchController;
  #ended = false;

  constructor(controller: Dispatcher.DispatchController) {
    super();
    this.#controller = controller;
  }

  override _read(): void {
    this.#controller.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#ended) this.#controller.abort(error ?? new Error('the response body was not read to its end'));
    callback(error);
  }

  onData(chunk: Buffer): void {
    if (!this.push(chunk)) this.#controller.pause();
  }

  onEnd(): void {
    this.#ended = true;
    this.push(null);
  }

  onError(error: Error): void {
    this.#ended = true;
    this.destroy(error);
  }

  onClientClosed(): void {}
}
