// The OpenTelemetry SDK behind `warden sidecar` and `warden controller`: a MeterProvider whose
// only reader is the Prometheus exporter (served on the process's health port as /metrics, not on
// a server of its own), and — only when an OTLP endpoint is configured — a TracerProvider that
// batches spans to it over OTLP/HTTP.
//
// Tracing follows the standard SDK environment (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/):
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or OTEL_EXPORTER_OTLP_ENDPOINT (+ `/v1/traces`),
// OTEL_EXPORTER_OTLP_HEADERS / _TRACES_HEADERS (read by the exporter), OTEL_SERVICE_NAME,
// OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED=true to switch it off, OTEL_BSP_SCHEDULE_DELAY.
// Without an endpoint the trace SDK and exporter are not even loaded: gateways get no tracer and
// skip every span call.
//
// The providers are not registered as the process-wide globals of @opentelemetry/api: Warden's
// instruments are created from `telemetry.meter` explicitly, which keeps several instances in one
// process (tests, `warden dev`) independent.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Meter, Tracer } from '@opentelemetry/api';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { VERSION } from '../version.ts';

export interface TelemetryOptions {
  /** `service.name` unless OTEL_SERVICE_NAME says otherwise, e.g. `warden-sidecar`. */
  readonly service: string;
  /** Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /** More resource attributes (e.g. the Connection); never secrets. */
  readonly attributes?: Readonly<Record<string, string>>;
}

export interface Telemetry {
  /** Where Warden's instruments come from. */
  readonly meter: Meter;
  /** Present only when an OTLP traces endpoint is configured. */
  readonly tracer: Tracer | undefined;
  /** The OTLP URL spans go to, when tracing. */
  readonly tracesUrl: string | undefined;
  /** Answers `GET /metrics` in the Prometheus text format. */
  handleMetrics(req: IncomingMessage, res: ServerResponse): void;
  /**
   * Adds text in the Prometheus exposition format to every scrape, after the SDK's metrics: for
   * series Warden aggregates itself on a hot path (see SidecarTelemetry's upstream histogram).
   */
  addExposition(produce: () => string): void;
  /** Flushes pending spans and stops the providers. Never rejects. */
  shutdown(): Promise<void>;
}

/** The OTLP/HTTP traces URL the environment asks for, or undefined when tracing is off. */
export function otlpTracesUrl(env: NodeJS.ProcessEnv): string | undefined {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return undefined;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim().toLowerCase());
  if (exporters.includes('none')) return undefined;
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return traces;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!base) return undefined;
  return `${base.replace(/\/+$/, '')}/v1/traces`;
}

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

/** Starts the metrics SDK (and the trace SDK when configured). */
export async function startTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  const env = options.env ?? process.env;
  const resource = resourceFromAttributes({
    'service.name': env.OTEL_SERVICE_NAME?.trim() || options.service,
    'service.version': VERSION,
    ...(env.POD_NAME ? { 'service.instance.id': env.POD_NAME } : {}),
    ...(env.POD_NAMESPACE ? { 'k8s.namespace.name': env.POD_NAMESPACE } : {}),
    ...options.attributes,
  });
  // preventServerStart: /metrics is a route of the health server the process already runs.
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  // The exporter's own handler cannot append Warden's series: collect and serialize here, as it does.
  const serializer = new PrometheusSerializer(undefined, false, undefined, false, true);
  const expositions: Array<() => string> = [];
  const meterProvider = new MeterProvider({ resource, readers: [exporter] });
  const meter = meterProvider.getMeter('warden', VERSION);

  const tracesUrl = otlpTracesUrl(env);
  let tracer: Tracer | undefined;
  let stopTracing: () => Promise<void> = () => Promise.resolve();
  if (tracesUrl) {
    const [{ TracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }] = await Promise.all([
      import('@opentelemetry/sdk-trace'),
      import('@opentelemetry/exporter-trace-otlp-http'),
    ]);
    const processor = new BatchSpanProcessor({
      exporter: new OTLPTraceExporter({ url: tracesUrl }),
      scheduledDelayMillis: positiveInt(env.OTEL_BSP_SCHEDULE_DELAY, 5_000),
      maxQueueSize: positiveInt(env.OTEL_BSP_MAX_QUEUE_SIZE, 2_048),
    });
    const tracerProvider = new TracerProvider({ resource, spanProcessors: [processor] });
    tracer = tracerProvider.getTracer('warden', VERSION);
    stopTracing = () => tracerProvider.shutdown();
  }

  let stopped: Promise<void> | undefined;
  return {
    meter,
    tracer,
    tracesUrl,
    handleMetrics: (_req, res) => {
      exporter.collect().then(
        ({ resourceMetrics }) => {
          let text = serializer.serialize(resourceMetrics);
          for (const produce of expositions) {
            try {
              text += produce();
            } catch (error) {
              text += `# warden: an exposition failed: ${(error as Error).message.replace(/\n/g, ' ')}\n`;
            }
          }
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text);
        },
        (error: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`# failed to collect metrics: ${String(error)}\n`);
        },
      );
    },
    addExposition: (produce) => {
      expositions.push(produce);
    },
    shutdown: () =>
      (stopped ??= Promise.allSettled([stopTracing(), meterProvider.shutdown()]).then(() => undefined)),
  };
}
