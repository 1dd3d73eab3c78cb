import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveRecording, UsageError, withDevDefaults } from './recording-access.ts';

describe('recordings of warden dev (--dev, --state-dir)', () => {
  let state: string;
  beforeAll(async () => {
    state = await mkdtemp(join(tmpdir(), 'warden-dev-access-'));
    await mkdir(join(state, 'recordings/default/pg/2026/11/22/sess-1'), { recursive: true });
    await writeFile(join(state, 'recordings/default/pg/2026/11/22/sess-1/chunk-00000000'), 'x');
  });
  afterAll(async () => {
    await rm(state, { recursive: true, force: true });
  });

  it('reads the state directory\'s recordings with its public key, unless told otherwise', () => {
    expect(withDevDefaults({ dev: true }, { WARDEN_DEV_HOME: state })).toMatchObject({
      dir: join(state, 'recordings'),
      publicKey: [join(state, 'recording-signing-key.pub.pem')],
    });
    expect(withDevDefaults({ stateDir: state, publicKey: ['/k.pem'] }, {})).toMatchObject({ dir: join(state, 'recordings'), publicKey: ['/k.pem'] });
    expect(withDevDefaults({ dir: '/elsewhere' }, { WARDEN_DEV_HOME: state })).toEqual({ dir: '/elsewhere' });
  });

  it('finds a session by its id alone', async () => {
    const { store, folder } = await resolveRecording('sess-1', { dev: true }, { WARDEN_DEV_HOME: state });
    expect(store.url(folder)).toBe(`file://${state}/recordings/default/pg/2026/11/22/sess-1/`);
  });

  it('says how to list sessions when the id is unknown', async () => {
    await expect(resolveRecording('nope', { dev: true }, { WARDEN_DEV_HOME: state })).rejects.toThrow(UsageError);
    await expect(resolveRecording('nope', { dev: true }, { WARDEN_DEV_HOME: state })).rejects.toThrow(/no session nope in file:\/\/.*; list them with `warden sessions --dev`/);
  });
});
