// HTTP and Kubernetes sessions: the requests with decision and status; bodies on demand.
import { useState } from 'preact/hooks';
import { formatOffset, payloadText, type RecEvent } from './types.ts';

export function HttpRequests({ events }: { events: RecEvent[] }) {
  const [open, setOpen] = useState<Set<number>>(new Set());
  const requests = events.filter((e) => e.k === 'http.request');
  const responses = new Map(events.filter((e) => e.k === 'http.response').map((e) => [e.id as number, e]));
  if (requests.length === 0) return <p class="empty">No requests recorded.</p>;
  const toggle = (n: number): void => {
    const next = new Set(open);
    if (next.has(n)) next.delete(n);
    else next.add(n);
    setOpen(next);
  };
  return (
    <ol class="requests" data-testid="http-requests">
      {requests.map((request) => {
        const response = responses.get(request.id as number);
        const decision = String(request.decision ?? 'allow');
        const k8s = request.k8s as { verb?: string; resource?: string; namespace?: string; name?: string } | undefined;
        return (
          <li key={request.n} class={`request decision-${decision}`}>
            <div class="line" onClick={() => toggle(request.n)}>
              <span class="t">{formatOffset(request.t)}</span> <span class={`badge ${decision}`}>{decision}</span> <strong>{String(request.method)}</strong>{' '}
              <code>{String(request.url)}</code> {response ? <span class="status">{String(response.status)}</span> : null}
              {k8s ? <span class="k8s"> {[k8s.verb, k8s.resource, k8s.namespace, k8s.name].filter(Boolean).join(' ')}</span> : null}
            </div>
            {open.has(request.n) ? (
              <div class="bodies">
                <h4>Request headers</h4>
                <pre>{JSON.stringify(request.headers ?? {}, null, 2)}</pre>
                {request.body ? (
                  <>
                    <h4>Request body</h4>
                    <pre>{payloadText(request.body)}</pre>
                  </>
                ) : null}
                {response ? (
                  <>
                    <h4>Response headers</h4>
                    <pre>{JSON.stringify(response.headers ?? {}, null, 2)}</pre>
                    {response.body ? (
                      <>
                        <h4>Response body</h4>
                        <pre>{payloadText(response.body)}</pre>
                      </>
                    ) : null}
                  </>
                ) : null}
              </div>
            ) : null}
          </li>
        );
      })}
    </ol>
  );
}
