// Gateway metrics and traces, derived from what every gateway already hands the recorder: the
// session opens, its events (decisions, durations, payload sizes, masking) and its close. The
// gateways themselves are not instrumented; `SidecarTelemetry` is the Recorder's observer
// (RecorderOptions.observer) and watches the Recorder's spool and uploader.
//
// Hot-path cost: per event one `switch` and an addition on a plain object. Counters are
// asynchronous instruments of the OpenTelemetry API, read at scrape time from those tallies with
// attribute objects built once per (protocol, connection). The upstream-duration histogram is
// aggregated here in fixed buckets and appended to the scrape in the Prometheus format: the SDK's
// synchronous Histogram.record hashes its attributes on every call (measured ≈ 2.7 µs per record
// with two attributes on the 2-core test machine, against ≈ 0.1 ms for a whole statement round
// trip), which is too much for every statement. Spans exist only when a tracer is given (an OTLP
// endpoint is configured).

import { type Attributes, type Context, type Meter, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import type { SessionPhase } from '../api/types.ts';
import { ApprovalState, Decision, EventKind, K8sExecChannel, MessageDirection, payloadLength, type RecordingEvent } from '../recorder/events.ts';
import type { Recorder, RecorderObserver, SessionObserver, SessionRecorder } from '../recorder/recorder.ts';
import { SidecarMetric, SpanAttribute, SpanName } from './names.ts';

/** Upstream-duration buckets in seconds: loopback statements take ~0.1 ms, slow reports seconds. */
export const UPSTREAM_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

/** Running counts for one (protocol, connection): what the asynchronous instruments report. */
interface Tally {
  readonly base: Attributes;
  readonly byOutcome: { readonly closed: Attributes; readonly terminated: Attributes; readonly denied: Attributes };
  readonly byDecision: { readonly allowed: Attributes; readonly denied: Attributes; readonly held: Attributes };
  readonly byState: { readonly approved: Attributes; readonly denied: Attributes; readonly expired: Attributes };
  readonly byDirection: { readonly in: Attributes; readonly out: Attributes };
  /** `{protocol="…",connection="…"` for the histogram's exposition (closed per series). */
  readonly labelText: string;
  /** Upstream durations per bucket of UPSTREAM_DURATION_BUCKETS (not cumulative), then +Inf. */
  readonly durations: Float64Array;
  durationSum: number;
  durationCount: number;
  active: number;
  closed: number;
  terminated: number;
  deniedSessions: number;
  authFailures: number;
  allowed: number;
  denied: number;
  held: number;
  approved: number;
  approvalDenied: number;
  approvalExpired: number;
  bytesIn: number;
  bytesOut: number;
  maskingHits: number;
}

function newTally(protocol: string, connection: string): Tally {
  const base = { protocol, connection };
  return {
    base,
    byOutcome: { closed: { ...base, outcome: 'closed' }, terminated: { ...base, outcome: 'terminated' }, denied: { ...base, outcome: 'denied' } },
    byDecision: { allowed: { ...base, decision: 'allowed' }, denied: { ...base, decision: 'denied' }, held: { ...base, decision: 'held' } },
    byState: { approved: { ...base, state: 'approved' }, denied: { ...base, state: 'denied' }, expired: { ...base, state: 'expired' } },
    byDirection: { in: { ...base, direction: 'in' }, out: { ...base, direction: 'out' } },
    labelText: `{protocol="${escapeLabel(protocol)}",connection="${escapeLabel(connection)}"`,
    durations: new Float64Array(UPSTREAM_DURATION_BUCKETS.length + 1),
    durationSum: 0,
    durationCount: 0,
    active: 0,
    closed: 0,
    terminated: 0,
    deniedSessions: 0,
    authFailures: 0,
    allowed: 0,
    denied: 0,
    held: 0,
    approved: 0,
    approvalDenied: 0,
    approvalExpired: 0,
    bytesIn: 0,
    bytesOut: 0,
    maskingHits: 0,
  };
}

export interface SidecarTelemetryOptions {
  readonly meter: Meter;
  /** Spans per session and per command; without it no span is made. */
  readonly tracer?: Tracer;
  /** Monotonic clock in ms (default `performance.now`). */
  readonly now?: () => number;
  /** Where the upstream histogram's Prometheus text goes (Telemetry.addExposition). */
  readonly exposition?: (produce: () => string) => void;
}

export class SidecarTelemetry implements RecorderObserver {
  readonly #tallies = new Map<string, Tally>();
  readonly #watches = new Set<SessionWatch>();
  readonly #failures = new Map<string, number>();
  readonly #recorders = new Set<Recorder>();
  readonly tracer: Tracer | undefined;
  readonly now: () => number;
  chunksUploaded = 0;

  constructor(options: SidecarTelemetryOptions) {
    const { meter } = options;
    this.tracer = options.tracer;
    this.now = options.now ?? (() => performance.now());
    options.exposition?.(() => this.prometheusText());
    const each = (observe: (t: Tally) => void): void => {
      for (const t of this.#tallies.values()) observe(t);
    };
    meter
      .createObservableUpDownCounter(SidecarMetric.SessionsActive, { description: 'Sessions open now' })
      .addCallback((r) => each((t) => r.observe(t.active, t.base)));
    meter.createObservableCounter(SidecarMetric.SessionsTotal, { description: 'Sessions ended, by outcome' }).addCallback((r) =>
      each((t) => {
        r.observe(t.closed, t.byOutcome.closed);
        r.observe(t.terminated, t.byOutcome.terminated);
        r.observe(t.deniedSessions, t.byOutcome.denied);
      }),
    );
    meter
      .createObservableCounter(SidecarMetric.AuthFailures, { description: 'Clients refused at authentication or admission' })
      .addCallback((r) => each((t) => r.observe(t.authFailures, t.base)));
    meter.createObservableCounter(SidecarMetric.Commands, { description: 'Commands (statements, requests, exec, typed commands) by policy decision' }).addCallback((r) =>
      each((t) => {
        r.observe(t.allowed, t.byDecision.allowed);
        r.observe(t.denied, t.byDecision.denied);
        r.observe(t.held, t.byDecision.held);
      }),
    );
    meter.createObservableCounter(SidecarMetric.Approvals, { description: 'Approval outcomes of held commands' }).addCallback((r) =>
      each((t) => {
        r.observe(t.approved, t.byState.approved);
        r.observe(t.approvalDenied, t.byState.denied);
        r.observe(t.approvalExpired, t.byState.expired);
      }),
    );
    meter.createObservableCounter(SidecarMetric.Bytes, { description: 'Payload bytes client to target (in) and target to client (out), as recorded', unit: 'By' }).addCallback((r) =>
      each((t) => {
        r.observe(t.bytesIn, t.byDirection.in);
        r.observe(t.bytesOut, t.byDirection.out);
      }),
    );
    meter
      .createObservableCounter(SidecarMetric.MaskingHits, { description: 'Results in which masking replaced at least one value' })
      .addCallback((r) => each((t) => r.observe(t.maskingHits, t.base)));

    const recorders = (observe: (recorder: Recorder) => void): void => {
      for (const recorder of this.#recorders) observe(recorder);
    };
    meter
      .createObservableGauge(SidecarMetric.SpoolBytes, { description: 'Bytes of sealed chunks in the local spool, not yet in the bucket', unit: 'By' })
      .addCallback((r) => recorders((rec) => r.observe(rec.spool.usedBytes)));
    meter
      .createObservableGauge(SidecarMetric.SpoolLimitBytes, { description: 'Bound of the local spool', unit: 'By' })
      .addCallback((r) => recorders((rec) => r.observe(rec.spool.maxBytes)));
    meter
      .createObservableGauge(SidecarMetric.StoreAvailable, { description: '1 while uploads to the bucket succeed, 0 during an outage' })
      .addCallback((r) => recorders((rec) => r.observe(rec.uploader.available ? 1 : 0)));
    meter
      .createObservableCounter(SidecarMetric.UploadedBytes, { description: 'Bytes stored in the bucket (chunks and manifests)', unit: 'By' })
      .addCallback((r) => recorders((rec) => r.observe(rec.uploader.uploadedBytes)));
    meter
      .createObservableGauge(SidecarMetric.RecordingLag, { description: 'Age of the oldest sealed chunk not yet in the bucket', unit: 's' })
      .addCallback((r) => {
        if (this.#recorders.size > 0 || this.#watches.size > 0) r.observe(this.lagSeconds());
      });
    meter
      .createObservableCounter(SidecarMetric.ChunksUploaded, { description: 'Recording chunks that reached the bucket' })
      .addCallback((r) => {
        if (this.#recorders.size > 0 || this.chunksUploaded > 0) r.observe(this.chunksUploaded);
      });
    meter.createObservableCounter(SidecarMetric.RecordingFailures, { description: 'Recording failures reported to sessions, by code' }).addCallback((r) => {
      for (const [code, n] of this.#failures) r.observe(n, { code });
    });
  }

  /** The upstream-duration histogram in the Prometheus text format (empty before any session). */
  prometheusText(): string {
    if (this.#tallies.size === 0) return '';
    const name = SidecarMetric.UpstreamDuration;
    let text = `# HELP ${name} Time from forwarding a statement or request to the end of its result\n# TYPE ${name} histogram\n`;
    for (const t of this.#tallies.values()) {
      let cumulative = 0;
      for (let i = 0; i < UPSTREAM_DURATION_BUCKETS.length; i++) {
        cumulative += t.durations[i] as number;
        text += `${name}_bucket${t.labelText},le="${UPSTREAM_DURATION_BUCKETS[i]}"} ${cumulative}\n`;
      }
      text += `${name}_bucket${t.labelText},le="+Inf"} ${t.durationCount}\n`;
      text += `${name}_sum${t.labelText}} ${t.durationSum}\n`;
      text += `${name}_count${t.labelText}} ${t.durationCount}\n`;
    }
    return text;
  }

  /** Reports the Recorder's spool and uploader (gauges are read at scrape time). */
  watchRecorder(recorder: Recorder): void {
    this.#recorders.add(recorder);
  }

  /** Seconds since the oldest chunk still waiting for the bucket was spooled; 0 when none waits. */
  lagSeconds(): number {
    let oldest = Infinity;
    for (const watch of this.#watches) {
      const first = watch.oldestPending();
      if (first !== undefined && first < oldest) oldest = first;
    }
    return oldest === Infinity ? 0 : Math.max(0, this.now() - oldest) / 1000;
  }

  /** The tallies of one (protocol, connection), for tests and `warden dev`. */
  tally(protocol: string, connection: string): Readonly<Tally> | undefined {
    return this.#tallies.get(`${protocol}\u0000${connection}`);
  }

  sessionStarted(session: SessionRecorder): SessionObserver | undefined {
    try {
      const key = `${session.info.protocol}\u0000${session.info.connection}`;
      let tally = this.#tallies.get(key);
      if (!tally) {
        tally = newTally(session.info.protocol, session.info.connection);
        this.#tallies.set(key, tally);
      }
      const watch = new SessionWatch(this, tally, session);
      this.#watches.add(watch);
      return watch;
    } catch {
      // Telemetry never stops a session from being recorded: this one just goes unobserved.
      return undefined;
    }
  }

  /** @internal */
  forget(watch: SessionWatch): void {
    this.#watches.delete(watch);
  }

  /** @internal */
  failed(code: string): void {
    this.#failures.set(code, (this.#failures.get(code) ?? 0) + 1);
  }
}

const PHASE_OUTCOME: Partial<Record<SessionPhase, 'closed' | 'terminated' | 'denied'>> = { Closed: 'closed', Terminated: 'terminated', Denied: 'denied' };

/** One session's observer: counts into its tally, keeps its spans and its chunks in flight. */
class SessionWatch implements SessionObserver {
  readonly #owner: SidecarTelemetry;
  readonly #tally: Tally;
  readonly #session: SessionRecorder;
  /** Chunk seq → when it reached the spool (ms); removed when shipped. */
  readonly #pending = new Map<number, number>();
  /** http.request id → when it was recorded (ms), for the upstream duration of HTTP. */
  #requests: Map<number, number> | undefined;
  #span: Span | undefined;
  #context: Context | undefined;
  #commandSpans: Map<number, Span> | undefined;
  #commands = 0;
  #denied = 0;
  #closed = false;

  constructor(owner: SidecarTelemetry, tally: Tally, session: SessionRecorder) {
    this.#owner = owner;
    this.#tally = tally;
    this.#session = session;
    tally.active += 1;
    session.on('spooled', (seq) => this.#pending.set(seq, owner.now()));
    session.on('shipped', (seq) => {
      this.#pending.delete(seq);
      owner.chunksUploaded += 1;
    });
    session.on('failure', (error) => owner.failed(error.code));
    const tracer = owner.tracer;
    if (tracer) {
      const info = session.info;
      this.#span = tracer.startSpan(SpanName.Session, {
        kind: SpanKind.SERVER,
        attributes: {
          [SpanAttribute.SessionId]: session.sessionId,
          [SpanAttribute.Protocol]: info.protocol,
          [SpanAttribute.Connection]: info.connection,
          ...(info.user === undefined ? {} : { [SpanAttribute.User]: info.user }),
          ...(info.clientAddress === undefined ? {} : { [SpanAttribute.ClientAddress]: info.clientAddress }),
          ...(info.clientApplication === undefined ? {} : { [SpanAttribute.ClientApplication]: info.clientApplication }),
          ...(info.target === undefined ? {} : { [SpanAttribute.Target]: info.target }),
        },
      });
      this.#context = trace.setSpan(ROOT_CONTEXT, this.#span);
    }
  }

  oldestPending(): number | undefined {
    // Chunks are spooled in seq order and Maps iterate in insertion order: the first is the oldest.
    for (const at of this.#pending.values()) return at;
    return undefined;
  }

  event(event: RecordingEvent): void {
    const t = this.#tally;
    try {
      switch (event.k) {
        case EventKind.Auth:
          if (!event.ok) t.authFailures += 1;
          else if (this.#span && event.user !== undefined) this.#span.setAttribute(SpanAttribute.User, event.user);
          break;
        case EventKind.SqlQuery:
          t.bytesIn += payloadLength(event.text);
          this.#decided(event.decision, event.id, event.rule, EventKind.SqlQuery, event.class);
          break;
        case EventKind.SqlResult:
          if (event.bytes !== undefined) t.bytesOut += event.bytes;
          if (event.masked) t.maskingHits += 1;
          if (event.durationMs !== undefined) observeDuration(t, event.durationMs / 1000);
          if (this.#commandSpans && event.id !== undefined) {
            const span = this.#commandSpans.get(event.id);
            if (span) {
              this.#commandSpans.delete(event.id);
              span.setAttribute(SpanAttribute.Rows, event.rowCount);
              if (event.durationMs !== undefined) span.setAttribute(SpanAttribute.DurationMs, event.durationMs);
              span.end();
            }
          }
          break;
        case EventKind.HttpRequest:
          if (event.body) t.bytesIn += payloadLength(event.body);
          if (event.decision === undefined || event.decision === Decision.Allow) (this.#requests ??= new Map()).set(event.id, this.#owner.now());
          this.#decided(event.decision ?? Decision.Allow, event.id, event.rule, EventKind.HttpRequest, undefined, event);
          break;
        case EventKind.HttpResponse: {
          if (event.body) t.bytesOut += payloadLength(event.body);
          if (event.masked) t.maskingHits += 1;
          const started = this.#requests?.get(event.id);
          let ms: number | undefined;
          if (started !== undefined) {
            this.#requests?.delete(event.id);
            ms = this.#owner.now() - started;
            observeDuration(t, ms / 1000);
          }
          const span = this.#commandSpans?.get(event.id);
          if (span) {
            this.#commandSpans?.delete(event.id);
            span.setAttribute(SpanAttribute.Status, event.status);
            if (ms !== undefined) span.setAttribute(SpanAttribute.DurationMs, Math.round(ms * 1000) / 1000);
            if (event.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
            span.end();
          }
          break;
        }
        case EventKind.Exec:
        case EventKind.Command:
          this.#decided(event.decision, undefined, event.rule, event.k);
          break;
        case EventKind.Sftp:
        case EventKind.Forward:
          // Allowed transfers are not commands; a refused one is a denial (as in the Session status).
          if (event.decision === Decision.Deny) this.#decided(Decision.Deny, undefined, undefined, event.k);
          if (event.k === EventKind.Forward) {
            t.bytesIn += event.bytesOut;
            t.bytesOut += event.bytesIn;
          }
          break;
        case EventKind.Approval:
          if (event.state === ApprovalState.Approved) t.approved += 1;
          else if (event.state === ApprovalState.Denied) t.approvalDenied += 1;
          else if (event.state === ApprovalState.Expired) t.approvalExpired += 1;
          break;
        case EventKind.Error:
          if (this.#commandSpans && event.id !== undefined) {
            const span = this.#commandSpans.get(event.id);
            if (span) {
              this.#commandSpans.delete(event.id);
              span.setStatus({ code: SpanStatusCode.ERROR });
              if (event.code) span.setAttribute(SpanAttribute.ErrorCode, event.code);
              span.end();
            }
          }
          break;
        case EventKind.TermStdin:
          t.bytesIn += payloadLength(event.data);
          break;
        case EventKind.TermStdout:
        case EventKind.TermStderr:
          t.bytesOut += payloadLength(event.data);
          if (event.masked) t.maskingHits += 1;
          break;
        case EventKind.WsMessage:
          if (event.direction === MessageDirection.ToTarget) t.bytesIn += payloadLength(event.data);
          else t.bytesOut += payloadLength(event.data);
          break;
        case EventKind.K8sExec:
          if (event.masked) t.maskingHits += 1;
          if (event.ch === K8sExecChannel.Stdin) t.bytesIn += payloadLength(event.data);
          else if (event.ch === K8sExecChannel.Stdout || event.ch === K8sExecChannel.Stderr) t.bytesOut += payloadLength(event.data);
          break;
        default:
          break;
      }
    } catch {
      // Telemetry must never disturb a session: a malformed event only goes uncounted.
    }
  }

  #decided(
    decision: Decision,
    id: number | undefined,
    rule: string | undefined,
    kind: string,
    statementClass?: string,
    http?: Extract<RecordingEvent, { k: typeof EventKind.HttpRequest }>,
  ): void {
    const t = this.#tally;
    if (decision === Decision.Deny) {
      t.denied += 1;
      this.#denied += 1;
    } else if (decision === Decision.RequireApproval) t.held += 1;
    else {
      t.allowed += 1;
      this.#commands += 1;
    }
    const tracer = this.#owner.tracer;
    if (!tracer || !this.#context) return;
    // Never the statement text, URL or command line: they can carry secrets. Kind, class, verb,
    // decision and rule say what happened; the recording holds the rest.
    const attributes: Attributes = {
      [SpanAttribute.CommandKind]: kind,
      [SpanAttribute.Decision]: decision,
      ...(rule === undefined ? {} : { [SpanAttribute.Rule]: rule }),
      ...(statementClass === undefined ? {} : { [SpanAttribute.StatementClass]: statementClass }),
      ...(http ? { [SpanAttribute.Method]: http.method } : {}),
      ...(http?.k8s ? { [SpanAttribute.K8sVerb]: http.k8s.verb, ...(http.k8s.resource ? { [SpanAttribute.K8sResource]: http.k8s.resource } : {}) } : {}),
    };
    const span = tracer.startSpan(SpanName.Command, { kind: SpanKind.INTERNAL, attributes }, this.#context);
    if (decision === Decision.Deny) span.setStatus({ code: SpanStatusCode.ERROR, message: 'denied by policy' });
    // An allowed statement or request ends with its result; everything else is a point in time.
    if (decision === Decision.Allow && id !== undefined && (kind === EventKind.SqlQuery || kind === EventKind.HttpRequest)) {
      const spans = (this.#commandSpans ??= new Map());
      spans.get(id)?.end();
      spans.set(id, span);
    } else {
      span.end();
    }
  }

  closed(reason: string, phase: SessionPhase): void {
    if (this.#closed) return;
    this.#closed = true;
    const t = this.#tally;
    t.active -= 1;
    const outcome = PHASE_OUTCOME[phase] ?? 'terminated';
    if (outcome === 'closed') t.closed += 1;
    else if (outcome === 'denied') t.deniedSessions += 1;
    else t.terminated += 1;
    if (this.#commandSpans) {
      for (const span of this.#commandSpans.values()) span.end();
      this.#commandSpans = undefined;
    }
    this.#requests = undefined;
    if (this.#span) {
      this.#span.setAttributes({
        [SpanAttribute.Outcome]: outcome,
        [SpanAttribute.EndReason]: reason,
        [SpanAttribute.Commands]: this.#commands,
        [SpanAttribute.Denied]: this.#denied,
      });
      if (reason === 'error' || this.#session.failure) this.#span.setStatus({ code: SpanStatusCode.ERROR, message: this.#session.failure?.code ?? reason });
      this.#span.end();
      this.#span = undefined;
    }
    // Keep watching the chunks still on their way to the bucket (recording lag) until the close
    // has shipped them. The recorder calls this before its close promise exists: look next tick.
    queueMicrotask(() => {
      const done = this.#session.closed;
      if (!done) {
        this.#owner.forget(this);
        return;
      }
      void done.finally(() => {
        this.#pending.clear();
        this.#owner.forget(this);
      });
    });
  }
}

function observeDuration(t: Tally, seconds: number): void {
  if (!(seconds >= 0)) return;
  let i = 0;
  while (i < UPSTREAM_DURATION_BUCKETS.length && seconds > (UPSTREAM_DURATION_BUCKETS[i] as number)) i++;
  (t.durations as Float64Array)[i] = (t.durations[i] as number) + 1;
  t.durationSum += seconds;
  t.durationCount += 1;
}

/** A Prometheus label value: backslash, double quote and newline escaped. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

