// `npm run plane`: starts the test plane and keeps it running until Ctrl-C, printing how to reach
// each server. Handy for poking at the real API server with kubectl while developing.
import { startPlane } from './index.ts';

const plane = await startPlane((message) => process.stderr.write(`[plane] ${message}\n`));
const { kube, minio, postgres, ssh, nginx, pgbouncer, oidc } = plane.info;
process.stdout.write(`
Test plane is up (Ctrl-C stops it and removes ${plane.info.dir}).

  kubernetes  ${kube.server} (${kube.version})
              ${kube.kubectl} --kubeconfig ${kube.kubeconfig} get crd
  minio       ${minio.endpoint}  access key ${minio.accessKey}
  postgres    PGPASSWORD=${postgres.password} ${postgres.binDir}/psql -h ${postgres.host} -p ${postgres.port} -U ${postgres.user} ${postgres.database}
  pgbouncer   ${pgbouncer.host}:${pgbouncer.port}
  sshd        ssh -i ${ssh.privateKeyFile} -o UserKnownHostsFile=${ssh.knownHostsFile} -p ${ssh.port} ${ssh.user}@${ssh.host}
  nginx       http://${nginx.host}:${nginx.port}/
  oidc        ${oidc.issuer}
`);
let stopping = false;
const shutdown = (): void => {
  if (stopping) return;
  stopping = true;
  process.stderr.write('[plane] stopping…\n');
  plane.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`[plane] stop failed: ${String(error)}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
