import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { kubernetesCommand, parseRequestInfo, RequestInfoError, RequestInfoErrorCode } from './request-info.ts';

type Row = [method: string, target: string, expected: Record<string, unknown>];

// Expectations follow the apiserver's own table (requestinfo_test.go) and its rules.
const RESOURCE_REQUESTS: Row[] = [
  ['GET', '/api/v1/namespaces', { verb: 'list', apiGroup: '', apiVersion: 'v1', namespace: '', resource: 'namespaces', name: '' }],
  ['GET', '/api/v1/namespaces/other', { verb: 'get', namespace: 'other', resource: 'namespaces', name: 'other' }],
  ['GET', '/api/v1/namespaces/other/pods', { verb: 'list', namespace: 'other', resource: 'pods', name: '' }],
  ['GET', '/api/v1/namespaces/other/pods/foo', { verb: 'get', namespace: 'other', resource: 'pods', name: 'foo' }],
  ['HEAD', '/api/v1/namespaces/other/pods/foo', { verb: 'get', resource: 'pods', name: 'foo' }],
  ['GET', '/api/v1/pods', { verb: 'list', namespace: '', resource: 'pods' }],
  ['GET', '/api/v1/namespaces/other/pods/foo/log', { verb: 'get', resource: 'pods', name: 'foo', subresource: 'log' }],
  ['POST', '/api/v1/namespaces/other/pods/foo/exec?command=ls&command=-l', { verb: 'create', resource: 'pods', subresource: 'exec' }],
  ['GET', '/api/v1/namespaces/other/pods/foo/exec?command=sh', { verb: 'get', resource: 'pods', subresource: 'exec', name: 'foo' }],
  ['POST', '/api/v1/namespaces/other/pods', { verb: 'create', resource: 'pods', name: '' }],
  ['PUT', '/api/v1/namespaces/other/pods/foo', { verb: 'update', resource: 'pods', name: 'foo' }],
  ['PATCH', '/api/v1/namespaces/other/pods/foo', { verb: 'patch', resource: 'pods', name: 'foo' }],
  ['DELETE', '/api/v1/namespaces/other/pods/foo', { verb: 'delete', resource: 'pods', name: 'foo' }],
  ['DELETE', '/api/v1/namespaces/other/pods', { verb: 'deletecollection', resource: 'pods', name: '' }],
  ['OPTIONS', '/api/v1/namespaces/other/pods', { verb: '', resource: 'pods' }],
  // watch: the query parameter (strconv.ParseBool, with the apiserver's fallback) and the legacy path
  ['GET', '/api/v1/namespaces/other/pods?watch=true', { verb: 'watch', resource: 'pods' }],
  ['GET', '/api/v1/namespaces/other/pods?watch=1', { verb: 'watch', resource: 'pods' }],
  ['GET', '/api/v1/namespaces/other/pods?watch=false', { verb: 'list', resource: 'pods' }],
  ['GET', '/api/v1/namespaces/other/pods?watch=0', { verb: 'list', resource: 'pods' }],
  ['GET', '/api/v1/namespaces/other/pods?watch=yes', { verb: 'watch', resource: 'pods' }],
  ['GET', '/api/v1/namespaces/other/pods?watch=', { verb: 'watch', resource: 'pods' }],
  ['GET', '/api/v1/namespaces/other/pods/foo?watch=true', { verb: 'get', resource: 'pods', name: 'foo' }],
  ['GET', '/api/v1/watch/pods', { verb: 'watch', namespace: '', resource: 'pods' }],
  ['GET', '/api/v1/watch/namespaces/other/pods', { verb: 'watch', namespace: 'other', resource: 'pods' }],
  ['GET', '/api/v1/watch/namespaces/other/pods/foo', { verb: 'watch', namespace: 'other', resource: 'pods', name: 'foo' }],
  // field selector naming one object
  ['GET', '/api/v1/namespaces/other/pods?fieldSelector=metadata.name%3Dfoo', { verb: 'list', name: 'foo' }],
  ['GET', '/api/v1/namespaces/other/pods?watch=1&fieldSelector=metadata.name==foo', { verb: 'watch', name: 'foo' }],
  ['GET', '/api/v1/namespaces/other/pods?fieldSelector=spec.nodeName%3Dn1,metadata.name%3Dfoo', { verb: 'list', name: 'foo' }],
  ['GET', '/api/v1/namespaces/other/pods?fieldSelector=metadata.name!%3Dfoo', { verb: 'list', name: '' }],
  ['GET', '/api/v1/namespaces/other/pods?fieldSelector=metadata.name%3D..', { verb: 'list', name: '' }],
  ['GET', '/api/v1/namespaces/other/pods?fieldSelector=garbage&watch=true', { verb: 'watch', name: '' }],
  ['DELETE', '/api/v1/namespaces/other/pods?fieldSelector=metadata.name%3Dfoo', { verb: 'deletecollection', name: '' }],
  // proxy: the trailing path is not a subresource
  ['GET', '/api/v1/proxy/namespaces/other/pods/foo/some/path', { verb: 'proxy', resource: 'pods', name: 'foo', subresource: '' }],
  ['GET', '/api/v1/namespaces/other/pods/foo/proxy/some/path', { verb: 'get', resource: 'pods', name: 'foo', subresource: 'proxy' }],
  ['GET', '/api/v1/namespaces/other/services/http:svc:80/proxy/x', { resource: 'services', name: 'http:svc:80', subresource: 'proxy' }],
  // a namespace's own subresources
  ['PUT', '/api/v1/namespaces/other/status', { verb: 'update', namespace: 'other', resource: 'namespaces', name: 'other', subresource: 'status' }],
  ['PUT', '/api/v1/namespaces/other/finalize', { verb: 'update', namespace: 'other', resource: 'namespaces', name: 'other', subresource: 'finalize' }],
  ['PUT', '/api/v1/namespaces/other/pods/foo/status', { verb: 'update', resource: 'pods', name: 'foo', subresource: 'status' }],
  // groups
  ['GET', '/apis/apps/v1/namespaces/other/deployments', { verb: 'list', apiGroup: 'apps', apiVersion: 'v1', resource: 'deployments' }],
  ['PATCH', '/apis/apps/v1/namespaces/other/deployments/web/scale', { verb: 'patch', apiGroup: 'apps', name: 'web', subresource: 'scale' }],
  ['GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/admin', { verb: 'get', apiGroup: 'rbac.authorization.k8s.io', resource: 'clusterroles', name: 'admin', namespace: '' }],
  ['GET', '/apis/warden.dev/v1alpha1/watch/namespaces/ns/sessions', { verb: 'watch', apiGroup: 'warden.dev', resource: 'sessions', namespace: 'ns' }],
  ['GET', '/apis/apps/v1/deployments', { verb: 'list', apiGroup: 'apps', resource: 'deployments', namespace: '' }],
  ['GET', '/api/v1/nodes/n1/', { verb: 'get', resource: 'nodes', name: 'n1' }],
  ['GET', '/api/v1/namespaces/%6Fther/pods', { namespace: 'other', resource: 'pods' }],
  // a resource literally called "namespaces" below a namespace is a namespace's child object
  ['GET', '/api/v1/namespaces/other/namespaces/x', { namespace: 'other', resource: 'namespaces', name: 'x' }],
];

const NON_RESOURCE_REQUESTS: Array<[string, string, string]> = [
  ['GET', '/', 'get'],
  ['GET', '/healthz', 'get'],
  ['GET', '/version', 'get'],
  ['GET', '/api', 'get'],
  ['GET', '/api/v1', 'get'],
  ['GET', '/apis', 'get'],
  ['GET', '/apis/apps', 'get'],
  ['GET', '/apis/apps/v1', 'get'],
  ['GET', '/openapi/v3/apis/apps/v1', 'get'],
  ['POST', '/logs/x', 'post'],
  ['GET', '/other/v1/namespaces/ns/pods', 'get'],
];

describe('parseRequestInfo (the apiserver RequestInfoFactory rules)', () => {
  it.each(RESOURCE_REQUESTS)('%s %s', (method, target, expected) => {
    const info = parseRequestInfo(method, target);
    expect(info.isResourceRequest).toBe(true);
    expect(info).toMatchObject(expected);
  });

  it.each(NON_RESOURCE_REQUESTS)('%s %s is a non-resource request with verb %s', (method, target, verb) => {
    const info = parseRequestInfo(method, target);
    expect(info).toMatchObject({ isResourceRequest: false, verb, resource: '', name: '' });
    expect(info.path).toBe(target.split('?')[0]);
  });

  it.each([
    ['/api/v1/namespaces/a%2Fb/pods'],
    ['/api/v1/namespaces/a%2fb/pods'],
    ['/api/v1/namespaces/a%5Cb/pods'],
    ['/api/v1/namespaces/x/../kube-system/secrets'],
    ['/api/v1/namespaces/x/%2E%2E/kube-system/secrets'],
    ['/api/v1/namespaces/./secrets'],
    ['/api/v1//secrets'],
    ['/api/v1/namespaces/x/pods/%zz'],
    ['/api/v1/namespaces/x/pods/%ff'],
    ['/api/v1/namespaces/x/pods/a\\b'],
    ['/api/v1/namespaces/x/pods/a%00b'],
    ['/api/v1/namespaces/my%20ns/pods'],
    ['api/v1/pods'],
  ])('refuses the ambiguous path %s', (target) => {
    expect(() => parseRequestInfo('GET', target)).toThrow(RequestInfoError);
    try {
      parseRequestInfo('GET', target);
    } catch (error) {
      expect((error as RequestInfoError).code).toBe(RequestInfoErrorCode.AmbiguousPath);
    }
  });

  it.each([['/api/v1/watch'], ['/apis/apps/v1/proxy']])('refuses a special verb with nothing after it: %s', (target) => {
    expect(() => parseRequestInfo('GET', target)).toThrow(expect.objectContaining({ code: RequestInfoErrorCode.IncompletePath }));
  });

  it('never throws anything but RequestInfoError, whatever the request target', () => {
    fc.assert(
      fc.property(fc.constantFrom('GET', 'POST', 'DELETE', 'PATCH', 'PUT', 'HEAD', 'BREW'), fc.string({ maxLength: 80 }), (method, tail) => {
        try {
          const info = parseRequestInfo(method, `/${tail}`);
          if (info.isResourceRequest) expect(info.resource).not.toContain('/');
        } catch (error) {
          expect(error).toBeInstanceOf(RequestInfoError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('kubernetesCommand (what the policy engine sees)', () => {
  it('carries the exec argv of pods/exec', () => {
    const { command } = kubernetesCommand('POST', '/api/v1/namespaces/prod/pods/web-0/exec?command=sh&command=-c&command=id&stdin=true');
    expect(command).toEqual({
      protocol: 'kubernetes',
      verb: 'create',
      apiGroup: '',
      resource: 'pods',
      subresource: 'exec',
      namespace: 'prod',
      name: 'web-0',
      execCommand: ['sh', '-c', 'id'],
    });
  });

  it('describes non-resource requests by their URL', () => {
    expect(kubernetesCommand('GET', '/version?timeout=32s').command).toEqual({
      protocol: 'kubernetes',
      verb: 'get',
      apiGroup: '',
      resource: '',
      nonResourceURL: '/version',
    });
  });

  it('leaves namespace and name out of cluster-wide lists', () => {
    expect(kubernetesCommand('GET', '/apis/apps/v1/deployments').command).toEqual({
      protocol: 'kubernetes',
      verb: 'list',
      apiGroup: 'apps',
      resource: 'deployments',
    });
  });
});
