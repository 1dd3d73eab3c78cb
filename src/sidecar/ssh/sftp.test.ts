import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_SFTP_PACKET,
  parseSftpRequest,
  parseSftpResponse,
  SftpFramer,
  SftpMonitor,
  SftpOpenFlag,
  SftpStatus,
  sftpStatusPacket,
  SftpType,
} from './sftp.ts';

// Fixture builders for SFTP frames.
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const str = (s: string | Buffer): Buffer => {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([u32(b.length), b]);
};
const packet = (type: number, ...fields: Buffer[]): Buffer => {
  const body = Buffer.concat([Buffer.of(type), ...fields]);
  return Buffer.concat([u32(body.length), body]);
};
const attrs = u32(0);
const open = (id: number, path: string, flags: number): Buffer => packet(SftpType.Open, u32(id), str(path), u32(flags), attrs);

describe('SftpFramer', () => {
  it('cuts packets split anywhere and joined arbitrarily (property)', () => {
    const packets = [
      packet(SftpType.Init, u32(3)),
      open(1, '/etc/passwd', SftpOpenFlag.Read),
      packet(SftpType.Write, u32(2), str('h'), u32(0), u32(0), str(Buffer.alloc(70_000, 7))),
      packet(SftpType.Remove, u32(3), str('/tmp/x')),
    ];
    const stream = Buffer.concat(packets);
    fc.assert(
      fc.property(fc.array(fc.nat({ max: stream.length }), { maxLength: 12 }), (cuts) => {
        const framer = new SftpFramer();
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const got: Buffer[] = [];
        let last = 0;
        for (const p of [...points, stream.length]) {
          got.push(...framer.push(stream.subarray(last, p)));
          last = p;
        }
        expect(got).toEqual(packets);
        expect(framer.buffered).toBe(0);
      }),
    );
  });

  it('rejects impossible lengths instead of buffering forever', () => {
    expect(() => new SftpFramer().push(u32(MAX_SFTP_PACKET + 1))).toThrow(expect.objectContaining({ code: 'WARDEN_SSH_SFTP_MALFORMED' }));
    expect(() => new SftpFramer().push(u32(0))).toThrow(/out of range/);
  });
});

describe('parseSftpRequest', () => {
  it.each([
    ['open for reading', open(1, '/a', SftpOpenFlag.Read), { op: 'open', access: 'read', path: '/a' }],
    ['open for writing', open(1, '/a', SftpOpenFlag.Write | SftpOpenFlag.Creat | SftpOpenFlag.Trunc), { op: 'open', access: 'write' }],
    ['open for append', open(1, '/a', SftpOpenFlag.Append), { access: 'write' }],
    ['remove', packet(SftpType.Remove, u32(4), str('/x')), { op: 'remove', access: 'write', path: '/x' }],
    ['mkdir', packet(SftpType.Mkdir, u32(4), str('/d'), attrs), { op: 'mkdir', access: 'write' }],
    ['rmdir', packet(SftpType.Rmdir, u32(4), str('/d')), { op: 'rmdir', access: 'write' }],
    ['setstat', packet(SftpType.Setstat, u32(4), str('/d'), attrs), { op: 'setstat', access: 'write' }],
    ['fsetstat', packet(SftpType.Fsetstat, u32(4), str('h'), attrs), { op: 'fsetstat', access: 'write' }],
    ['rename', packet(SftpType.Rename, u32(4), str('/a'), str('/b')), { op: 'rename', access: 'write', path: '/a', path2: '/b' }],
    ['symlink', packet(SftpType.Symlink, u32(4), str('/a'), str('/b')), { op: 'symlink', access: 'write' }],
    ['stat', packet(SftpType.Stat, u32(4), str('/a')), { op: 'stat', access: 'read' }],
    ['opendir', packet(SftpType.Opendir, u32(4), str('/a')), { op: 'opendir', access: 'read' }],
    ['realpath', packet(SftpType.Realpath, u32(4), str('.')), { op: 'realpath', access: 'read' }],
    ['posix-rename', packet(SftpType.Extended, u32(4), str('posix-rename@openssh.com'), str('/a'), str('/b')), { access: 'write', path: '/a' }],
    ['statvfs', packet(SftpType.Extended, u32(4), str('statvfs@openssh.com'), str('/')), { access: 'read' }],
    ['an unknown extension', packet(SftpType.Extended, u32(4), str('new-thing@example.com')), { access: 'write' }],
    ['an unknown type', packet(77, u32(4)), { access: 'write' }],
    ['write', packet(SftpType.Write, u32(4), str('h'), u32(0), u32(0), str('data')), { op: 'write', access: 'write', length: 4, handle: 'h' }],
  ])('classifies %s', (_name, frame, expected) => {
    expect(parseSftpRequest(frame)).toMatchObject(expected);
  });

  it('throws a coded error on truncated fields, never reads past the packet', () => {
    const bad = packet(SftpType.Open, u32(1), u32(1000), Buffer.from('short'));
    expect(() => parseSftpRequest(bad)).toThrow(expect.objectContaining({ code: 'WARDEN_SSH_SFTP_MALFORMED' }));
  });

  it('never throws anything but a coded error on random packets (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (body) => {
        const frame = Buffer.concat([u32(body.length), body]);
        try {
          parseSftpRequest(frame);
          parseSftpResponse(frame);
        } catch (error) {
          expect((error as { code?: string }).code).toBe('WARDEN_SSH_SFTP_MALFORMED');
        }
      }),
    );
  });
});

describe('sftpStatusPacket', () => {
  it('encodes a STATUS that parses back', () => {
    const p = sftpStatusPacket(42, SftpStatus.PermissionDenied, 'denied by policy');
    expect(parseSftpResponse(p)).toEqual({ type: SftpType.Status, id: 42, code: SftpStatus.PermissionDenied });
    expect(new SftpFramer().push(p)).toEqual([p]);
    expect(p.includes(Buffer.from('denied by policy'))).toBe(true);
  });
});

describe('SftpMonitor', () => {
  it('reports a download as one read with its byte count, and metadata changes one each', () => {
    const m = new SftpMonitor();
    const ops = [
      ...m.request(parseSftpRequest(open(1, '/data/big', SftpOpenFlag.Read))),
      ...m.response(parseSftpResponse(packet(SftpType.Handle, u32(1), str('H1')))),
      ...m.request(parseSftpRequest(packet(SftpType.Read, u32(2), str('H1'), u32(0), u32(0), u32(32768)))),
      ...m.response(parseSftpResponse(packet(SftpType.Data, u32(2), str(Buffer.alloc(1000))))),
      ...m.request(parseSftpRequest(packet(SftpType.Close, u32(3), str('H1')))),
      ...m.response(parseSftpResponse(packet(SftpType.Status, u32(3), u32(0), str(''), str('')))),
      ...m.request(parseSftpRequest(packet(SftpType.Remove, u32(4), str('/data/old')))),
      ...m.response(parseSftpResponse(packet(SftpType.Status, u32(4), u32(SftpStatus.NoSuchFile), str(''), str('')))),
    ];
    expect(ops).toEqual([
      { op: 'read', path: '/data/big', bytes: 1000, status: 0 },
      { op: 'remove', path: '/data/old', bytes: 0, status: SftpStatus.NoSuchFile },
    ]);
  });

  it('counts uploads and reports handles left open at the end', () => {
    const m = new SftpMonitor();
    m.request(parseSftpRequest(open(1, '/up', SftpOpenFlag.Write | SftpOpenFlag.Creat)));
    m.response(parseSftpResponse(packet(SftpType.Handle, u32(1), str('H'))));
    m.request(parseSftpRequest(packet(SftpType.Write, u32(2), str('H'), u32(0), u32(0), str(Buffer.alloc(500)))));
    expect(m.flush()).toEqual([{ op: 'write', path: '/up', bytes: 500, status: 0 }]);
  });
});
