import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `make kind-e2e` runs this (hack/kind-e2e.sh): the tests of test/e2e/kind/ against the kind
// cluster named by WARDEN_E2E_KUBECONFIG. No test plane: the cluster provides the API server,
// PostgreSQL, MinIO and the OIDC issuer (deps.yaml).
export default defineConfig({
  root: fileURLToPath(new URL('../../..', import.meta.url)),
  test: {
    name: 'kind',
    include: ['test/e2e/kind/**/*.test.ts'],
    testTimeout: 360_000,
    hookTimeout: 360_000,
    fileParallelism: false,
  },
});
