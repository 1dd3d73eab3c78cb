// Calls to the viewer's own /api. A 401 sends the browser to the login (and back here after it).

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let loggingIn = false;

/** Off to the issuer's login (once, however many requests saw the 401). */
export function login(): void {
  if (loggingIn) return;
  loggingIn = true;
  window.location.assign(`/auth/login?returnTo=${encodeURIComponent(window.location.pathname + window.location.search)}`);
}

export async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
  if (response.status === 401) {
    login();
    throw new ApiError(401, 'UNAUTHENTICATED', 'logging in…');
  }
  const body = (await response.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
  if (!response.ok) throw new ApiError(response.status, body.error?.code ?? 'ERROR', body.error?.message ?? `HTTP ${response.status}`);
  return body as T;
}

export const sessionPath = (namespace: string, name: string): string => `/api/sessions/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;
