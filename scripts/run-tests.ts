// The project's test command (`npm test`): static checks, then every vitest project (unit, and
// integration against the real test plane), ending with one line `N passed, N failed` that CI
// reads. Extra arguments go to vitest (`npm test -- test/crds.test.ts`) and skip static checks.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';

interface VitestJson {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  numTotalTestSuites: number;
  testResults: Array<{ name: string; status: string; message?: string }>;
}

const args = process.argv.slice(2);
let failedChecks = 0;
let passedChecks = 0;

const step = (title: string, command: string, commandArgs: string[]): boolean => {
  process.stdout.write(`\n== ${title}: ${command} ${commandArgs.join(' ')}\n`);
  const result = spawnSync(command, commandArgs, { stdio: 'inherit' });
  return result.status === 0;
};

if (args.length === 0) {
  for (const [title, command, commandArgs] of [
    ['typecheck', 'tsc', ['-p', 'tsconfig.json', '--noEmit']],
    ['lint', 'eslint', ['.']],
  ] as const) {
    if (step(title, command, [...commandArgs])) passedChecks++;
    else failedChecks++;
  }
}

mkdirSync('test-results', { recursive: true });
const report = 'test-results/vitest.json';
const ok = step('tests', 'vitest', [
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
  ...args,
]);

let passed = passedChecks;
let failed = failedChecks;
let skipped = 0;
try {
  const json = JSON.parse(readFileSync(report, 'utf8')) as VitestJson;
  passed += json.numPassedTests;
  failed += json.numFailedTests;
  skipped += json.numPendingTests + json.numTodoTests;
  // A file that fails to load (or a failed global setup) has no tests to count: count the file.
  for (const file of json.testResults) {
    if (file.status === 'failed' && file.message) failed++;
  }
} catch (error) {
  process.stdout.write(`could not read ${report}: ${String(error)}\n`);
  failed++;
}
if (!ok && failed === 0) failed = 1;
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`);
process.exit(failed > 0 ? 1 : 0);
