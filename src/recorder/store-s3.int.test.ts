import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RecorderErrorCode } from './errors.ts';
import { listAll, ObjectLockMode, PutOutcome } from './store.ts';
import { S3Store, SseMode } from './store-s3.ts';

const minio = inject('plane').minio;
const suffix = randomBytes(4).toString('hex');

function store(bucket: string, sse: SseMode = SseMode.None): S3Store {
  return new S3Store({ endpoint: minio.endpoint, bucket, region: minio.region, accessKey: minio.accessKey, secretKey: minio.secretKey, sse });
}

describe('S3Store against MinIO', () => {
  const plain = store(`rec-store-${suffix}`);
  const locked = store(`rec-lock-${suffix}`, SseMode.S3);

  beforeAll(async () => {
    await plain.ensureBucket();
    await locked.ensureBucket({ objectLock: true });
  });

  afterAll(async () => {
    for await (const object of plain.list('')) await plain.client.removeObject(plain.bucket, object.key);
    await plain.client.removeBucket(plain.bucket);
    // The locked bucket cannot be emptied before its retention ends; it dies with the plane.
  });

  it('writes an object once, accepts the identical retry and refuses different bytes', async () => {
    const bytes = randomBytes(1000);
    expect(await plain.putOnce('a/b/chunk-00000000', bytes)).toBe(PutOutcome.Created);
    expect(await plain.putOnce('a/b/chunk-00000000', bytes)).toBe(PutOutcome.AlreadyStored);
    await expect(plain.putOnce('a/b/chunk-00000000', randomBytes(1000))).rejects.toMatchObject({
      code: RecorderErrorCode.ObjectExists,
    });
    expect(Buffer.from((await plain.get('a/b/chunk-00000000'))!)).toEqual(bytes);
  });

  it('lets exactly one of two concurrent writers of a key win', async () => {
    const [a, b] = [randomBytes(64), randomBytes(64)];
    const results = await Promise.allSettled([plain.putOnce('race/x', a), plain.putOnce('race/x', b)]);
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    const stored = Buffer.from((await plain.get('race/x'))!);
    expect(stored.equals(a) || stored.equals(b)).toBe(true);
  });

  it('lists by prefix in key order and returns undefined for a missing key', async () => {
    await plain.putOnce('list/s/chunk-00000001', Buffer.from('1'));
    await plain.putOnce('list/s/chunk-00000000', Buffer.from('0'));
    await plain.putOnce('list/t/chunk-00000000', Buffer.from('x'));
    expect((await listAll(plain, 'list/s/')).map((o) => o.key)).toEqual(['list/s/chunk-00000000', 'list/s/chunk-00000001']);
    expect(await plain.get('list/s/nope')).toBeUndefined();
  });

  it('applies COMPLIANCE retention and SSE-S3: deleting the object through the S3 API is refused', async () => {
    const key = 'locked/chunk-00000000';
    await locked.putOnce(key, randomBytes(100), {
      retention: { mode: ObjectLockMode.Compliance, retainUntil: new Date(Date.now() + 86_400_000) },
    });
    const stat = await locked.client.statObject(locked.bucket, key);
    expect(stat.metaData['x-amz-server-side-encryption'] ?? stat.metaData['X-Amz-Server-Side-Encryption']).toBe('AES256');
    const retention = await locked.client.getObjectRetention(locked.bucket, key, { versionId: stat.versionId ?? '' });
    expect(retention).toMatchObject({ mode: 'COMPLIANCE' });
    await expect(
      locked.client.removeObject(locked.bucket, key, { versionId: stat.versionId ?? '', governanceBypass: true }),
    ).rejects.toThrow(/protected|retention|WORM|locked/i);
    // Still there.
    expect(await locked.get(key)).toBeDefined();
  });

  it('reports an unreachable endpoint as STORE_UNAVAILABLE and bad credentials as STORE_DENIED', async () => {
    const down = new S3Store({ endpoint: 'http://127.0.0.1:1', bucket: 'x', accessKey: 'a', secretKey: 'b' });
    await expect(down.putOnce('k', Buffer.from('x'))).rejects.toMatchObject({ code: RecorderErrorCode.StoreUnavailable });
    const wrong = new S3Store({ endpoint: minio.endpoint, bucket: plain.bucket, accessKey: minio.accessKey, secretKey: 'wrong-secret' });
    const error = await wrong.putOnce('k', Buffer.from('x')).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: RecorderErrorCode.StoreDenied });
    expect(String((error as Error).message)).not.toContain(minio.secretKey);
  });
});
