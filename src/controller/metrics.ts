/**
 * Controller metrics through the OpenTelemetry API. Without an SDK registered (none is, yet) the
 * API hands out no-op instruments, so this costs nothing; a deployment that registers a
 * MeterProvider (e.g. with a Prometheus exporter) gets them all without code changes here.
 */
import { metrics } from '@opentelemetry/api';

const meter = metrics.getMeter('warden-controller');

export const controllerMetrics = {
  reconciles: meter.createCounter('warden_controller_reconciles_total', { description: 'Reconciles run, by controller and result' }),
  reconcileErrors: meter.createCounter('warden_controller_reconcile_errors_total', { description: 'Reconciles that failed, by controller' }),
  reconcileDuration: meter.createHistogram('warden_controller_reconcile_duration_seconds', { description: 'Time per reconcile', unit: 's' }),
  writes: meter.createCounter('warden_controller_writes_total', { description: 'Objects written (applied or patched), by kind' }),
  writesSkipped: meter.createCounter('warden_controller_writes_skipped_total', { description: 'Writes skipped because nothing changed, by kind' }),
  apiRequests: meter.createCounter('warden_controller_api_requests_total', { description: 'Requests to the API server, by verb and code' }),
  queueDepth: meter.createUpDownCounter('warden_controller_queue_depth', { description: 'Keys waiting in a work queue, by controller' }),
  isLeader: meter.createUpDownCounter('warden_controller_leader', { description: '1 while this instance leads' }),
};
