/**
 * Controller metrics through the OpenTelemetry API. Until `bindControllerMetrics` is called with a
 * meter of a running SDK (`warden controller` does, src/observability/telemetry.ts) the
 * instruments are the API's no-ops and cost nothing. Callers use `controllerMetrics.x` at call
 * time, so rebinding replaces what every module records to.
 */
import { type Counter, type Histogram, type Meter, metrics, type Tracer, type UpDownCounter } from '@opentelemetry/api';
import { ControllerMetric } from '../observability/names.ts';

export interface ControllerInstruments {
  reconciles: Counter;
  reconcileErrors: Counter;
  reconcileDuration: Histogram;
  writes: Counter;
  writesSkipped: Counter;
  apiRequests: Counter;
  queueDepth: UpDownCounter;
  isLeader: UpDownCounter;
}

function instruments(meter: Meter): ControllerInstruments {
  return {
    reconciles: meter.createCounter(ControllerMetric.Reconciles, { description: 'Reconciles run, by controller and result' }),
    reconcileErrors: meter.createCounter(ControllerMetric.ReconcileErrors, { description: 'Reconciles that failed, by controller' }),
    reconcileDuration: meter.createHistogram(ControllerMetric.ReconcileDuration, {
      description: 'Time per reconcile',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] },
    }),
    writes: meter.createCounter(ControllerMetric.Writes, { description: 'Objects written (applied or patched), by kind' }),
    writesSkipped: meter.createCounter(ControllerMetric.WritesSkipped, { description: 'Writes skipped because nothing changed, by kind' }),
    apiRequests: meter.createCounter(ControllerMetric.ApiRequests, { description: 'Requests to the API server, by verb and code' }),
    queueDepth: meter.createUpDownCounter(ControllerMetric.QueueDepth, { description: 'Keys waiting in a work queue, by controller' }),
    isLeader: meter.createUpDownCounter(ControllerMetric.Leader, { description: '1 while this instance leads' }),
  };
}

export const controllerMetrics: ControllerInstruments = instruments(metrics.getMeter('warden-controller'));

/**
 * Where reconcile spans go: undefined (no spans, no cost) until `warden controller` binds the
 * tracer of a running trace SDK, which exists only when an OTLP endpoint is configured.
 */
export const controllerTracing: { tracer: Tracer | undefined } = { tracer: undefined };

export function bindControllerTracer(tracer: Tracer | undefined): void {
  controllerTracing.tracer = tracer;
}

/** Records the controller's metrics to `meter` from now on (call before starting the controller). */
export function bindControllerMetrics(meter: Meter): void {
  Object.assign(controllerMetrics, instruments(meter));
  // An up-down counter starts at 0 in the new meter; report "not leading" explicitly so the
  // series exists before the first election.
  controllerMetrics.isLeader.add(0);
}
