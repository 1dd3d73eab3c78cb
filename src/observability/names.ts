// Every metric Warden exports, named once (docs/observability.md lists them with their labels;
// config/grafana/warden-dashboard.json uses exactly these names, which a unit test checks).
//
// Names follow the Prometheus conventions (https://prometheus.io/docs/practices/naming/): a
// `warden_` prefix, base units (seconds, bytes), `_total` on counters. The OpenTelemetry
// Prometheus exporter keeps them as written. Histograms add `_bucket`, `_sum` and `_count`.

/** Metrics of `warden sidecar` (one gateway process = one Connection, one protocol). */
export const SidecarMetric = {
  /** gauge {protocol, connection}: sessions open now. */
  SessionsActive: 'warden_sessions_active',
  /** counter {protocol, connection, outcome = closed | terminated | denied}: sessions ended. */
  SessionsTotal: 'warden_sessions_total',
  /** counter {protocol, connection}: clients whose token or admission was refused. */
  AuthFailures: 'warden_auth_failures_total',
  /** counter {protocol, connection, decision = allowed | denied | held}: commands policy decided. */
  Commands: 'warden_commands_total',
  /** counter {protocol, connection, state = approved | denied | expired}: approval outcomes. */
  Approvals: 'warden_approvals_total',
  /** counter {protocol, connection, direction = in | out}: payload bytes client → target (in) and back (out). */
  Bytes: 'warden_bytes_total',
  /** counter {protocol, connection}: results in which masking replaced at least one value. */
  MaskingHits: 'warden_masking_hits_total',
  /** histogram {protocol, connection}: time from forwarding a statement / request to the end of its result. */
  UpstreamDuration: 'warden_upstream_duration_seconds',
  /** gauge: bytes of sealed chunks in the local spool, not yet in the bucket. */
  SpoolBytes: 'warden_recording_spool_bytes',
  /** gauge: the spool's bound (past it sessions are told SPOOL_FULL). */
  SpoolLimitBytes: 'warden_recording_spool_limit_bytes',
  /** gauge: age of the oldest sealed chunk not yet in the bucket (0 when none waits). */
  RecordingLag: 'warden_recording_lag_seconds',
  /** counter: chunks that reached the bucket. */
  ChunksUploaded: 'warden_recording_chunks_uploaded_total',
  /** counter: bytes the uploader stored in the bucket (chunks and manifests). */
  UploadedBytes: 'warden_recording_uploaded_bytes_total',
  /** gauge: 1 while the last upload attempt succeeded, 0 during a store outage. */
  StoreAvailable: 'warden_recording_store_available',
  /** counter {code}: recording failures reported to sessions (SPOOL_FULL, SPOOL_WRITE_FAILED, …). */
  RecordingFailures: 'warden_recording_failures_total',
} as const;
export type SidecarMetric = (typeof SidecarMetric)[keyof typeof SidecarMetric];

/** Metrics of `warden controller` (src/controller/metrics.ts creates them). */
export const ControllerMetric = {
  /** counter {controller, result}. */
  Reconciles: 'warden_controller_reconciles_total',
  /** counter {controller}. */
  ReconcileErrors: 'warden_controller_reconcile_errors_total',
  /** histogram {controller}. */
  ReconcileDuration: 'warden_controller_reconcile_duration_seconds',
  /** counter {kind}. */
  Writes: 'warden_controller_writes_total',
  /** counter {kind}. */
  WritesSkipped: 'warden_controller_writes_skipped_total',
  /** counter {verb, code}. */
  ApiRequests: 'warden_controller_api_requests_total',
  /** gauge {controller}. */
  QueueDepth: 'warden_controller_queue_depth',
  /** gauge: 1 while this instance leads. */
  Leader: 'warden_controller_leader',
} as const;
export type ControllerMetric = (typeof ControllerMetric)[keyof typeof ControllerMetric];

/** Every exported series name, histograms with their `_bucket` / `_sum` / `_count` series. */
export function exportedSeriesNames(): Set<string> {
  const names = new Set<string>();
  const histograms = new Set<string>([SidecarMetric.UpstreamDuration, ControllerMetric.ReconcileDuration]);
  for (const name of [...Object.values(SidecarMetric), ...Object.values(ControllerMetric)]) {
    names.add(name);
    if (histograms.has(name)) for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
  }
  return names;
}

/** Span names and attribute keys of the traces (never tokens, credentials or statement text). */
export const SpanName = {
  Session: 'warden.session',
  Command: 'warden.command',
  Reconcile: 'warden.reconcile',
} as const;

export const SpanAttribute = {
  SessionId: 'warden.session.id',
  Protocol: 'warden.protocol',
  Connection: 'warden.connection',
  User: 'enduser.id',
  ClientAddress: 'client.address',
  ClientApplication: 'warden.client.application',
  Target: 'warden.target',
  Outcome: 'warden.session.outcome',
  EndReason: 'warden.session.end_reason',
  Commands: 'warden.session.commands',
  Denied: 'warden.session.denied',
  CommandKind: 'warden.command.kind',
  Decision: 'warden.decision',
  Rule: 'warden.rule',
  StatementClass: 'db.statement.class',
  Method: 'http.request.method',
  Status: 'http.response.status_code',
  K8sVerb: 'k8s.verb',
  K8sResource: 'k8s.resource',
  DurationMs: 'warden.duration_ms',
  Rows: 'db.response.returned_rows',
  ErrorCode: 'error.type',
  Controller: 'warden.controller',
  Namespace: 'k8s.namespace.name',
  ObjectName: 'warden.object.name',
  RetryInMs: 'warden.reconcile.retry_in_ms',
} as const;
