import { describe, expect, it } from 'vitest';
import { md5PasswordResponse, ScramClient, ScramError } from './scram.ts';

describe('ScramClient', () => {
  // Messages from the RFC 7677 §3 example.
  it('builds the client-final-message and refuses a wrong server signature', () => {
    const client = new ScramClient('pencil', 'rOprNGfwEbeRWgbNEkqO');
    // PostgreSQL's client-first-message-bare names no user (n=*), so the vector's proof differs;
    // the real exchange is proven against PostgreSQL in the integration tests.
    expect(client.first()).toBe('n,,n=*,r=rOprNGfwEbeRWgbNEkqO');
    const final = client.final('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096');
    expect(final).toMatch(/^c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj\)hNlF\$k0,p=[A-Za-z0-9+/]{43}=$/);
    expect(() => client.verify('v=AAAA')).toThrow(ScramError);
  });

  it('refuses a server nonce that does not extend the client nonce', () => {
    const client = new ScramClient('pw', 'abc');
    client.first();
    expect(() => client.final('r=xyz123,s=AAAA,i=4096')).toThrow(/nonce/);
  });

  it('refuses an error from the server', () => {
    const client = new ScramClient('pw', 'abc');
    client.first();
    client.final('r=abcdef,s=AAAA,i=1');
    expect(() => client.verify('e=invalid-proof')).toThrow(/invalid-proof/);
  });
});

describe('md5PasswordResponse', () => {
  it('matches libpq (md5 of md5(password+user) hex + salt)', () => {
    // Computed independently (Python hashlib) for user "alice", password "secret", salt 01020304.
    expect(md5PasswordResponse('alice', 'secret', Buffer.from([1, 2, 3, 4]))).toBe('md598a0412b9c31436fc53776e863350083');
    expect(md5PasswordResponse('alice', 'secret', Buffer.from([1, 2, 3, 4]))).not.toBe(
      md5PasswordResponse('alice', 'secret', Buffer.from([1, 2, 3, 5])),
    );
  });
});
