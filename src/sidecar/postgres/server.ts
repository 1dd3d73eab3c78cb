// The PostgreSQL gateway's listener: accepts client connections and runs one PostgresSession
// per connection. Everything protocol-specific lives in session.ts and protocol/.

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import { SqlClassifier } from './classify.ts';
import type { PostgresGatewayConfig } from './config.ts';
import { SessionApprovalGate } from '../session-approval.ts';
import { CancelRegistry, type GatewayStats, PostgresSession } from './session.ts';

export class PostgresGateway {
  readonly config: PostgresGatewayConfig;
  readonly stats: GatewayStats = { sessions: 0, activeSessions: 0, peakBufferedBytes: 0, deniedStatements: 0 };
  readonly #server: Server;
  readonly #sessions = new Set<PostgresSession>();
  readonly #cancels = new CancelRegistry();
  readonly #classifier: SqlClassifier;
  readonly #secureContext: SecureContext | undefined;
  readonly #sessionGate: SessionApprovalGate;

  private constructor(config: PostgresGatewayConfig, classifier: SqlClassifier) {
    this.config = config;
    this.#classifier = classifier;
    this.#secureContext = config.tls ? createSecureContext({ cert: config.tls.cert, key: config.tls.key }) : undefined;
    this.#sessionGate = new SessionApprovalGate({ approvals: config.approvals, connection: config.connection });
    this.#server = createServer({ noDelay: true }, (socket) => this.#accept(socket));
  }

  /** Loads the SQL parser, binds the listener and resolves once it accepts connections. */
  static async start(config: PostgresGatewayConfig): Promise<PostgresGateway> {
    const gateway = new PostgresGateway(config, await SqlClassifier.create());
    await new Promise<void>((resolve, reject) => {
      gateway.#server.once('error', reject);
      gateway.#server.listen(config.listen.port, config.listen.host, () => {
        gateway.#server.off('error', reject);
        resolve();
      });
    });
    gateway.#server.on('error', (e) => config.logger?.('error', 'listener error', { error: e.message }));
    return gateway;
  }

  get address(): { host: string; port: number } {
    const a = this.#server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  #accept(socket: Socket): void {
    // A socket error must never become an uncaught exception: sessions handle their own.
    socket.on('error', () => undefined);
    const session = new PostgresSession(socket, {
      config: this.config,
      classifier: this.#classifier,
      secureContext: this.#secureContext,
      cancels: this.#cancels,
      stats: this.stats,
      sessionGate: this.#sessionGate,
    });
    this.#sessions.add(session);
    void session.run().finally(() => this.#sessions.delete(session));
  }

  /**
   * Stops accepting and waits up to `graceMs` (default 5 s) for sessions to end; the rest are
   * ended with 57P01 (admin shutdown), as PostgreSQL's fast shutdown does.
   */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const all = Promise.all([...this.#sessions].map((s) => s.closed));
    const timer = setTimeout(() => {
      for (const s of this.#sessions) s.terminate('gateway-shutdown', 'Warden: the gateway is shutting down');
    }, options.graceMs ?? 5_000);
    await all;
    clearTimeout(timer);
    await closed;
  }
}
