import { describe, expect, it } from 'vitest';
import {
  bearerToken,
  clientResponseHeaders,
  FramingProblem,
  framingProblem,
  impersonationHeader,
  isJsonStreamType,
  isJsonType,
  isTextType,
  recordedHeaders,
  upstreamRequestHeaders,
  type UpstreamRequestContext,
} from './headers.ts';

const raw = (...pairs: string[]): string[] => pairs;

describe('framingProblem (request smuggling defence)', () => {
  it.each([
    [raw('Host', 'x'), undefined],
    [raw('Host', 'x', 'Content-Length', '12'), undefined],
    [raw('Host', 'x', 'Transfer-Encoding', 'chunked'), undefined],
    [raw('Host', 'x', 'transfer-encoding', 'Chunked'), undefined],
    [raw('Content-Length', '4', 'Transfer-Encoding', 'chunked'), FramingProblem.ContentLengthAndTransferEncoding],
    [raw('Transfer-Encoding', 'chunked', 'content-length', '0'), FramingProblem.ContentLengthAndTransferEncoding],
    [raw('Content-Length', '4', 'Content-Length', '4'), FramingProblem.DuplicateContentLength],
    [raw('Content-Length', '4', 'CONTENT-LENGTH', '5'), FramingProblem.DuplicateContentLength],
    [raw('Content-Length', '+4'), FramingProblem.InvalidContentLength],
    [raw('Content-Length', '4, 4'), FramingProblem.InvalidContentLength],
    [raw('Content-Length', '0x10'), FramingProblem.InvalidContentLength],
    [raw('Content-Length', ''), FramingProblem.InvalidContentLength],
    [raw('Content-Length', '9999999999999999'), FramingProblem.InvalidContentLength],
    [raw('Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'), FramingProblem.DuplicateTransferEncoding],
    [raw('Transfer-Encoding', 'gzip, chunked'), FramingProblem.UnsupportedTransferEncoding],
    [raw('Transfer-Encoding', 'identity'), FramingProblem.UnsupportedTransferEncoding],
    [raw('Transfer-Encoding', 'chunked, chunked'), FramingProblem.UnsupportedTransferEncoding],
    [raw('Host', 'a', 'Host', 'b'), FramingProblem.DuplicateHost],
  ])('%j → %s', (headers, problem) => {
    expect(framingProblem(headers)).toBe(problem);
  });
});

describe('bearerToken', () => {
  it.each([
    ['Bearer abc.def.ghi', 'abc.def.ghi'],
    ['bearer abc-_.~+/=', 'abc-_.~+/='],
    ['Bearer   spaced  ', 'spaced'],
    ['Basic YWxpY2U6cHc=', undefined],
    ['Bearer', undefined],
    ['Bearer a b', undefined],
    ['Bearer a,b', undefined],
    [undefined, undefined],
  ])('%j → %j', (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });
});

const context = (over: Partial<UpstreamRequestContext> = {}): UpstreamRequestContext => ({
  flavour: 'http',
  upstreamHost: 'billing.internal:8080',
  credentials: { kind: 'none' },
  clientAddress: '10.0.0.7',
  clientHost: 'billing.warden.svc',
  secure: true,
  needsReadableBody: false,
  ...over,
});

describe('upstreamRequestHeaders', () => {
  const client = {
    host: 'billing.warden.svc',
    authorization: 'Bearer caller-token',
    'proxy-authorization': 'Basic x',
    connection: 'keep-alive, X-Secret-Hop',
    'x-secret-hop': '1',
    'keep-alive': 'timeout=5',
    te: 'trailers',
    'transfer-encoding': 'chunked',
    upgrade: 'h2c',
    'x-forwarded-for': '6.6.6.6',
    forwarded: 'for=6.6.6.6',
    expect: '100-continue',
    accept: 'application/vnd.kubernetes.protobuf, application/json',
    'accept-encoding': 'gzip',
    'content-type': 'application/json',
    'content-length': '12',
  };

  it('drops hop-by-hop headers, the caller token and forged forwarding headers; sets its own', () => {
    expect(upstreamRequestHeaders(client, context())).toEqual({
      host: 'billing.internal:8080',
      accept: 'application/vnd.kubernetes.protobuf, application/json',
      'accept-encoding': 'gzip',
      'content-type': 'application/json',
      'content-length': '12',
      'x-forwarded-for': '10.0.0.7',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'billing.warden.svc',
    });
  });

  it.each([
    [{ kind: 'bearer', token: 't0k' } as const, { authorization: 'Bearer t0k' }],
    [{ kind: 'basic', username: 'u', password: 'p:w' } as const, { authorization: `Basic ${Buffer.from('u:p:w').toString('base64')}` }],
    [{ kind: 'headers', headers: { 'X-Api-Key': 'k', 'X-Tenant': 't' } } as const, { 'x-api-key': 'k', 'x-tenant': 't' }],
  ])('injects %j', (credentials, expected) => {
    expect(upstreamRequestHeaders({ ...client, 'x-api-key': 'mine' }, context({ credentials }))).toMatchObject(expected);
  });

  it('asks for a readable body when masking, and JSON from an API server', () => {
    const headers = upstreamRequestHeaders(client, context({ flavour: 'kubernetes', needsReadableBody: true }));
    expect(headers['accept-encoding']).toBe('identity');
    expect(headers.accept).toBe('application/json');
  });

  it('adds Impersonate-User and one Impersonate-Group per group when impersonating the caller', () => {
    const headers = upstreamRequestHeaders(client, { ...context(), impersonate: { user: 'kim', groups: ['a', 'b'] } });
    expect(headers['impersonate-user']).toBe('kim');
    expect(headers['impersonate-group']).toEqual(['a', 'b']);
    expect(upstreamRequestHeaders(client, context())['impersonate-user']).toBeUndefined();
  });

  it('re-adds Connection/Upgrade for a relayed upgrade only', () => {
    const headers = upstreamRequestHeaders({ ...client, 'sec-websocket-key': 'k' }, context({ upgrade: 'websocket' }));
    expect(headers).toMatchObject({ connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'k' });
  });
});

describe('response and recording headers', () => {
  it('drops hop-by-hop headers from responses', () => {
    expect(clientResponseHeaders({ connection: 'close, x-a', 'x-a': '1', 'transfer-encoding': 'chunked', 'content-type': 'text/plain' })).toEqual({
      'content-type': 'text/plain',
    });
  });

  it('redacts secrets and injected credential headers in recordings', () => {
    expect(
      recordedHeaders(
        { authorization: 'Bearer t', cookie: 'c', 'x-tenant': 't', accept: '*/*' },
        { kind: 'headers', headers: { 'X-Tenant': 'secret' } },
      ),
    ).toEqual({ authorization: '[redacted]', cookie: '[redacted]', 'x-tenant': '[redacted]', accept: '*/*' });
  });

  it('finds impersonation headers', () => {
    expect(impersonationHeader({ 'impersonate-user': 'a' })).toBe('impersonate-user');
    expect(impersonationHeader({ 'Impersonate-Extra-scopes': 'a' })).toBe('Impersonate-Extra-scopes');
    expect(impersonationHeader({ 'x-remote-user': 'a' })).toBe('x-remote-user');
    expect(impersonationHeader({ accept: 'a' })).toBeUndefined();
  });

  it.each([
    ['application/json', true, false, false],
    ['application/json; charset=utf-8', true, false, false],
    ['application/merge-patch+json', true, false, false],
    ['application/json;stream=watch', true, true, false],
    ['application/x-ndjson', false, true, false],
    ['text/plain', false, false, true],
    ['application/octet-stream', false, false, false],
    [undefined, false, false, false],
  ])('classifies %s', (type, json, stream, text) => {
    expect([isJsonType(type), isJsonStreamType(type), isTextType(type)]).toEqual([json, stream, text]);
  });
});
