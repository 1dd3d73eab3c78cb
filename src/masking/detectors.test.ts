import { describe, expect, it } from 'vitest';
import type { MaskingDetector } from '../api/types.ts';
import { DETECTORS, germanTaxIdValid, ibanValid, luhnValid } from './detectors.ts';

const found = (detector: MaskingDetector, text: string): string[] =>
  DETECTORS[detector](text).map((m) => text.slice(m.start, m.end));

const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
// Header {"typ":"JWT"} without alg.
const JWT_NO_ALG = 'eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.c2ln';
const PEM = '-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END RSA PRIVATE KEY-----';

describe('detectors find what they should', () => {
  it.each<[MaskingDetector, string, string[]]>([
    ['email', 'write to alice@example.com today', ['alice@example.com']],
    ['email', 'a.b+tag@mail.sub.example.co.uk, x', ['a.b+tag@mail.sub.example.co.uk']],
    ['email', '<bob_1@EXAMPLE.ORG>', ['bob_1@EXAMPLE.ORG']],
    ['creditCard', 'visa 4111111111111111 end', ['4111111111111111']],
    ['creditCard', 'spaced 4111 1111 1111 1111.', ['4111 1111 1111 1111']],
    ['creditCard', 'dashed 5500-0000-0000-0004', ['5500-0000-0000-0004']],
    ['creditCard', 'amex 3782 822463 10005', ['3782 822463 10005']],
    ['creditCard', 'card then year 4111 1111 1111 1111 2024', ['4111 1111 1111 1111']],
    ['creditCard', 'after a digit 5 4111111111111111', ['4111111111111111']],
    ['iban', 'DE89 3704 0044 0532 0130 00', ['DE89 3704 0044 0532 0130 00']],
    ['iban', 'pay GB82WEST12345698765432 now', ['GB82WEST12345698765432']],
    ['iban', 'NL91ABNA0417164300 EUR', ['NL91ABNA0417164300']],
    ['phone', 'call +1 (415) 555-2671', ['+1 (415) 555-2671']],
    ['phone', 'uk +44 20 7946 0958.', ['+44 20 7946 0958']],
    ['phone', 'e164 +4915112345678', ['+4915112345678']],
    ['phone', 'us 415-555-2671 or (415) 555-2671 or 415.555.2671', ['415-555-2671', '(415) 555-2671', '415.555.2671']],
    ['nationalId', 'ssn 123-45-6789', ['123-45-6789']],
    ['nationalId', 'nino AB 12 34 56 C and QQ123456C', ['AB 12 34 56 C']],
    ['nationalId', 'steuer-id 65929970489', ['65929970489']],
    ['jwt', `Bearer ${JWT}`, [JWT]],
    ['jwt', 'alg none eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.', ['eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.']],
    // Back to back, no separator: the first token's signature runs into the second's header.
    ['jwt', `x ${JWT}${JWT} y`, [`${JWT}${JWT}`]],
    ['jwt', `${JWT}${JWT}${JWT}`, [`${JWT}${JWT}${JWT}`]],
    ['jwt', `eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.${JWT}`, [`eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.${JWT}`]],
    ['jwt', `${JWT}.not-a-token`, [JWT]],
    // A long signature (RS512, 4096-bit key: 683 characters) followed by a header with a long kid.
    ...((): Array<[MaskingDetector, string, string[]]> => {
      const header = Buffer.from(JSON.stringify({ alg: 'RS512', kid: 'k'.repeat(300) })).toString('base64url');
      const long = `${header}.eyJzdWIiOiIxIn0.${'s'.repeat(683)}`;
      return [
        ['jwt', `a ${long} b`, [long]],
        ['jwt', `a ${long}${long} b`, [`${long}${long}`]],
        ['jwt', `a ${long}${long}${long} b`, [`${long}${long}${long}`]],
      ];
    })(),
    // Not a token after it (no alg): the regular match, which runs up to the next dot.
    ['jwt', `${JWT}${JWT_NO_ALG}`, [`${JWT}${JWT_NO_ALG.slice(0, JWT_NO_ALG.indexOf('.'))}`]],
    ['cloudKey', 'id AKIAIOSFODNN7EXAMPLE', ['AKIAIOSFODNN7EXAMPLE']],
    ['cloudKey', 'temp ASIAY34FZKBOKMUTVV7A', ['ASIAY34FZKBOKMUTVV7A']],
    ['cloudKey', 'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', ['wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY']],
    ['cloudKey', '"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"', ['wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY']],
    ['cloudKey', 'gcp AIzaSyA-1234567890abcdefghijklmnopqrstu', ['AIzaSyA-1234567890abcdefghijklmnopqrstu']],
    ['cloudKey', `gh ghp_${'a1'.repeat(18)}`, [`ghp_${'a1'.repeat(18)}`]],
    ['cloudKey', `pat github_pat_${'A'.repeat(22)}_${'b'.repeat(59)}`, [`github_pat_${'A'.repeat(22)}_${'b'.repeat(59)}`]],
    ['cloudKey', 'slack xoxb-1234567890-abcdefghij', ['xoxb-1234567890-abcdefghij']],
    ['cloudKey', `DefaultEndpointsProtocol=https;AccountKey=${'k'.repeat(86)}==;`, [`${'k'.repeat(86)}==`]],
    ['privateKey', `key:\n${PEM}\nafter`, [PEM]],
    ['privateKey', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----', [
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----',
    ]],
    // Truncated (head id_rsa): the block ends at the first line that is not key material.
    ['privateKey', '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN\nuser@host:~$ ls', ['-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN']],
  ])('%s finds the value in %j', (detector, text, expected) => {
    expect(found(detector, text)).toEqual(expected);
  });

  it.each<[MaskingDetector, string]>([
    ['email', 'no at sign here example.com'],
    ['email', 'user@localhost'],
    ['email', 'trailing@dot.'],
    ['email', 'x@y.c'],
    ['creditCard', 'luhn fails 4111 1111 1111 1112'],
    ['creditCard', 'too short 4111 1111 111'],
    ['creditCard', 'timestamp 1700000000000'],
    ['creditCard', 'starts with 9: 9111111111111111'],
    ['creditCard', 'double separator 4111  1111 1111 1111'],
    ['iban', 'DE89 3704 0044 0532 0130 01'],
    ['iban', 'XX89370400440532013000'],
    ['iban', 'DE8937040044053201300'],
    ['iban', 'de89370400440532013000'],
    ['phone', 'amount 4155552671'],
    ['phone', 'version 1.2.3'],
    ['phone', 'date 2024-01-15'],
    ['phone', '+12 34'],
    ['phone', 'spaces 415 555 2671'],
    ['nationalId', 'area 000-12-3456'],
    ['nationalId', 'area 666-12-3456'],
    ['nationalId', 'area 900-12-3456'],
    ['nationalId', 'group 123-00-4567'],
    ['nationalId', 'serial 123-45-0000'],
    ['nationalId', 'ad 078-05-1120'],
    ['nationalId', 'longer 123-45-6789-1'],
    ['nationalId', 'nino prefix GB 12 34 56 C'],
    ['nationalId', 'bad check digit 65929970488'],
    ['jwt', JWT_NO_ALG],
    ['jwt', 'eyJub3Rqc29u.eyJzdWIiOiIxIn0.c2ln'],
    ['jwt', 'two segments eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0'],
    ['cloudKey', 'AKIA too short AKIAIOSFODNN7EXAM'],
    ['cloudKey', 'secret without label wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'],
    ['cloudKey', 'ghp_short'],
    ['privateKey', '-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----'],
    ['privateKey', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----'],
  ])('%s finds nothing in %j', (detector, text) => {
    expect(found(detector, text)).toEqual([]);
  });

  it('marks a private key block that reaches the end of the text as open', () => {
    const [match] = DETECTORS.privateKey('-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE');
    expect(match).toMatchObject({ start: 0, open: true, label: 'EC PRIVATE KEY' });
  });

  it('continues a private key block begun before the text', () => {
    const text = 'QEBAQUAA4GNADCBiQKBgQ==\n-----END RSA PRIVATE KEY-----\n$ ';
    const [match] = DETECTORS.privateKey(text, { insidePrivateKey: 'RSA PRIVATE KEY' });
    expect(match).toMatchObject({ start: 0, end: text.indexOf('\n$'), continued: true });
  });
});

describe('checksums', () => {
  it.each([
    ['4111111111111111', true],
    ['4111111111111112', false],
    ['378282246310005', true],
    ['79927398713', true],
  ])('luhn(%s) is %s', (digits, valid) => expect(luhnValid(digits)).toBe(valid));

  it.each([
    ['DE89370400440532013000', true],
    ['GB82WEST12345698765432', true],
    ['GB82WEST12345698765431', false],
  ])('iban mod-97 of %s is %s', (iban, valid) => expect(ibanValid(iban)).toBe(valid));

  it.each([
    ['65929970489', true],
    ['65929970488', false],
    ['12345678901', false], // every digit once: no repetition
    ['11145678903', false], // three in a row
  ])('German tax id %s is %s', (id, valid) => expect(germanTaxIdValid(id)).toBe(valid));
});

// Inputs built to make a backtracking scan quadratic or worse; every detector must stay linear.
describe('detectors run in linear time on adversarial input', () => {
  const n = 200_000;
  const adversarial: Record<string, string> = {
    'one long word': 'a'.repeat(n),
    'local parts without @': `${'a.'.repeat(n / 2)}`,
    'many at signs': 'a@'.repeat(n / 2),
    'labels without a TLD': `x@${'a1.'.repeat(n / 3)}`,
    'digits with separators': '4 '.repeat(n / 2),
    'long digit run': '4'.repeat(n),
    'iban starts': 'DE89 '.repeat(n / 5),
    'plus signs and digits': '+1 ('.repeat(n / 4),
    'jwt-like dots': `eyJ${'a'.repeat(n / 2)}.${'b'.repeat(n / 2)}`,
    'many jwt starts': 'eyJaaaaa.'.repeat(n / 9),
    'signatures full of jwt starts': `eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.${'eyJ'.repeat(340)}.`.repeat(n / 1056),
    'BEGIN markers without end': '-----BEGIN RSA PRIVATE KEY-----\n'.repeat(n / 32),
    'BEGIN prefixes': '-----BEGIN '.repeat(n / 11),
    'secret labels': 'aws_secret_access_key='.repeat(n / 22),
    'slack prefixes': 'xoxb-'.repeat(n / 5),
    'many phone numbers': '+1 (415) 555-2671 '.repeat(n / 18),
    'many cards': '4111 1111 1111 1111 '.repeat(n / 20),
  };

  it.each(Object.keys(adversarial))('%s', (name) => {
    const text = adversarial[name] as string;
    for (const [detector, detect] of Object.entries(DETECTORS)) {
      const started = performance.now();
      detect(text);
      const elapsed = performance.now() - started;
      expect(elapsed, `${detector} took ${elapsed.toFixed(0)} ms`).toBeLessThan(1_500);
    }
  });
});
