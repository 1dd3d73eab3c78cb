// A recording process for the crash test: a real Recorder (spool, uploader, Session objects) in its
// own process, so the test can SIGKILL it mid-session and start another one over the same spool.
//
// Configuration is one JSON object in WARDEN_RECORD_CONFIG (see RecordConfig). Modes:
//   stream   start a session and append terminal output forever; print {"spooled":seq,"events":n}
//            on stdout each time a chunk is durable in the spool
//   recover  upload what the spool holds, mark unfinished Sessions Terminated, print the result, exit

import { KubeConfig } from '@kubernetes/client-node';
import { loadSigningKey } from '../../src/recorder/crypto.ts';
import { EventKind } from '../../src/recorder/events.ts';
import { Recorder } from '../../src/recorder/recorder.ts';
import { KubeSessionObjects } from '../../src/recorder/session-objects.ts';
import { S3Store } from '../../src/recorder/store-s3.ts';

export interface RecordConfig {
  mode: 'stream' | 'recover';
  endpoint: string;
  bucket: string;
  region: string;
  accessKey: string;
  secretKey: string;
  spoolDir: string;
  prefix: string;
  /** 64 hex digits. */
  signingSeed: string;
  sessionId: string;
  kubeconfig: string;
  namespace: string;
  maxChunkAgeMs: number;
}

const config = JSON.parse(process.env.WARDEN_RECORD_CONFIG ?? '{}') as RecordConfig;
const kube = new KubeConfig();
kube.loadFromFile(config.kubeconfig);
const recorder = await Recorder.open({
  store: new S3Store({ endpoint: config.endpoint, bucket: config.bucket, region: config.region, accessKey: config.accessKey, secretKey: config.secretKey }),
  spoolDir: config.spoolDir,
  prefix: config.prefix,
  signingKey: loadSigningKey(config.signingSeed),
  maxChunkBytes: 16 * 1024,
  maxChunkAgeMs: config.maxChunkAgeMs,
  retry: { baseMs: 50, maxMs: 500 },
  sessionObjects: { client: new KubeSessionObjects(kube), namespace: config.namespace, intervalMs: 200 },
  log: (message) => process.stderr.write(`${message}\n`),
});

if (config.mode === 'recover') {
  const result = await recorder.recover();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  recorder.stop();
} else {
  const session = recorder.startSession({
    sessionId: config.sessionId,
    protocol: 'ssh',
    connection: `${config.namespace}/bastion`,
    user: 'alice',
    groups: ['ops'],
    clientAddress: '127.0.0.1:50022',
    clientApplication: 'SSH-2.0-OpenSSH_9.2',
  });
  let events = 1;
  session.on('spooled', (seq) => process.stdout.write(`${JSON.stringify({ spooled: seq, events })}\n`));
  session.append({ t: session.t(), k: EventKind.TermResize, cols: 120, rows: 40 });
  events += 1;
  setInterval(() => {
    for (let i = 0; i < 20; i++) {
      session.append({ t: session.t(), k: EventKind.TermStdout, data: { text: `line ${events} ${'.'.repeat(events % 70)}\r\n` } });
      events += 1;
    }
  }, 5);
}
