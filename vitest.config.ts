import { defineConfig } from 'vitest/config';

// Two projects: `unit` (pure logic next to the code, no servers) and `integration` (run against
// the real servers the plane starts in its global setup).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts'],
          exclude: ['src/**/*.int.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          // Integration tests sit next to their code as *.int.test.ts; whole-system ones under test/.
          include: ['test/**/*.test.ts', 'src/**/*.int.test.ts'],
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
