// A self-signed ECDSA P-256 certificate made with node:crypto alone (the gateway image has no
// openssl): used when a Connection names no listener TLS Secret. Clients then connect with
// sslmode=require (no verification); a real deployment should mount a certificate.

import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';

// Minimal DER writer: only what a v3 certificate with a SAN needs.
function der(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else if (n < 0x100) len = Buffer.from([0x81, n]);
  else if (n < 0x10000) len = Buffer.from([0x82, n >> 8, n & 0xff]);
  else len = Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
const seq = (...parts: Buffer[]): Buffer => der(0x30, ...parts);

function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split('.').map(Number);
  const bytes = [40 * a + b];
  for (const value of rest) {
    const chunk = [value & 0x7f];
    for (let v = value >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return der(0x06, Buffer.from(bytes));
}

function utcTime(date: Date): Buffer {
  const p = (n: number): string => String(n).padStart(2, '0');
  const text = `${p(date.getUTCFullYear() % 100)}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}Z`;
  return der(0x17, Buffer.from(text, 'ascii'));
}

const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

export interface SelfSignedOptions {
  commonName?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Validity in days (default 365). */
  days?: number;
  now?: Date;
}

/** A fresh key pair and a self-signed certificate for it, both PEM. */
export function generateSelfSignedCertificate(options: SelfSignedOptions = {}): { cert: string; key: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - 60_000);
  const notAfter = new Date(now.getTime() + (options.days ?? 365) * 86_400_000);
  const name = seq(der(0x31, seq(oid('2.5.4.3'), der(0x0c, Buffer.from(options.commonName ?? 'warden-gateway', 'utf8')))));
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f; // positive INTEGER
  const altNames = [
    ...(options.dnsNames ?? ['localhost']).map((d) => der(0x82, Buffer.from(d, 'ascii'))),
    ...(options.ipAddresses ?? ['127.0.0.1']).map((ip) => der(0x87, Buffer.from(ip.split('.').map(Number)))),
  ];
  const extensions = der(
    0xa3,
    seq(
      seq(oid('2.5.29.17'), der(0x04, seq(...altNames))),
      // basicConstraints: not a CA
      seq(oid('2.5.29.19'), der(0x04, seq())),
    ),
  );
  const tbs = seq(
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, serial),
    ECDSA_SHA256,
    name,
    seq(utcTime(notBefore), utcTime(notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    extensions,
  );
  const signature = sign('sha256', tbs, privateKey);
  const cert = seq(tbs, ECDSA_SHA256, der(0x03, Buffer.from([0]), signature));
  const lines = cert.toString('base64').match(/.{1,64}/g) ?? [];
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
