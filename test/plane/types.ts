/**
 * What the test plane tells the tests: addresses and credentials of the real servers it started.
 * It is plain data (it crosses from vitest's global setup into the test workers through
 * `provide`/`inject`), so helpers that need behaviour (minting a token, running kubectl) live in
 * modules that take this data.
 */
export interface PlaneInfo {
  /** Scratch directory of this plane run; removed at teardown. */
  dir: string;
  kube: KubeInfo;
  minio: MinioInfo;
  postgres: PostgresInfo;
  ssh: SshInfo;
  nginx: { host: string; port: number };
  pgbouncer: { host: string; port: number };
  oidc: OidcInfo;
}

export interface KubeInfo {
  /** https://127.0.0.1:PORT */
  server: string;
  /** Admin kubeconfig (client certificate in group system:masters). */
  kubeconfig: string;
  /** Path of the kubectl binary built from the same k8s.io/kubernetes version. */
  kubectl: string;
  /** Version of kube-apiserver and kubectl, e.g. v1.36.3. */
  version: string;
  /** CA bundle (PEM file) that signed the API server's serving certificate. */
  caFile: string;
}

export interface MinioInfo {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  host: string;
  port: number;
  accessKey: string;
  secretKey: string;
  region: string;
}

export interface PostgresInfo {
  host: string;
  port: number;
  /** Superuser for test setup. */
  user: string;
  password: string;
  database: string;
  /** Directory holding psql, pgbench, pg_ctl of the server's major version. */
  binDir: string;
}

export interface SshInfo {
  host: string;
  port: number;
  /** Local account the tests log into. */
  user: string;
  /** Private key (OpenSSH format, ed25519) authorised for `user`. */
  privateKeyFile: string;
  /** The server's host public keys, one `type base64` per line, for pinning. */
  hostKeys: string[];
  /** known_hosts file with the server's keys for [host]:port. */
  knownHostsFile: string;
}

export interface OidcInfo {
  /** Issuer URL (http://127.0.0.1:PORT); serves /.well-known/openid-configuration and /jwks. */
  issuer: string;
  jwksUri: string;
  /** Audience the minted tokens carry by default. */
  audience: string;
  /** Private signing key as a JWK (test-only): lets workers mint tokens without a round trip. */
  privateJwk: Record<string, unknown>;
  /** Key id in the JWKS. */
  kid: string;
  alg: 'RS256' | 'ES256';
}
