import { defineConfig } from 'vitest/config';

// Two projects: `unit` (pure logic next to the code, no servers) and `integration` (everything
// under test/, run against the real servers the plane starts in its global setup).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          globalSetup: ['test/plane/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // The plane is shared; two cores. Files run in parallel workers, tests inside a file in order.
          maxWorkers: 2,
        },
      },
    ],
  },
});
