import type { TestProject } from 'vitest/node';
import { startPlane } from './index.ts';
import type { PlaneInfo } from './types.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    plane: PlaneInfo;
  }
}

/** vitest global setup of the integration project: one plane for the whole run, torn down after. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const begin = Date.now();
  const log = (message: string): void => {
    process.stderr.write(`[plane] ${message}\n`);
  };
  const plane = await startPlane(log, { keepDir: process.env.WARDEN_KEEP_PLANE === '1' });
  log(`all servers ready in ${((Date.now() - begin) / 1000).toFixed(1)} s (scratch dir ${plane.info.dir})`);
  project.provide('plane', plane.info);
  return async () => {
    await plane.stop();
    log('stopped');
  };
}
