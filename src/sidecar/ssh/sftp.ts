/**
 * An I/O-free view of SFTP version 3 (draft-ietf-secsh-filexfer-02, the version OpenSSH speaks) for
 * a relay that enforces read-only / read-write and records file operations: a framer that cuts a
 * byte stream (split anywhere) into packets, parsers for the requests and responses that matter,
 * a serializer for the STATUS reply a denied request gets, and a monitor that pairs requests with
 * responses to report whole operations (path, operation, bytes).
 */
import { SshGatewayError, SshGatewayErrorCode } from './errors.ts';

/** Packet types, draft-ietf-secsh-filexfer-02 §3. */
export const SftpType = {
  Init: 1,
  Version: 2,
  Open: 3,
  Close: 4,
  Read: 5,
  Write: 6,
  Lstat: 7,
  Fstat: 8,
  Setstat: 9,
  Fsetstat: 10,
  Opendir: 11,
  Readdir: 12,
  Remove: 13,
  Mkdir: 14,
  Rmdir: 15,
  Realpath: 16,
  Stat: 17,
  Rename: 18,
  Readlink: 19,
  Symlink: 20,
  Status: 101,
  Handle: 102,
  Data: 103,
  Name: 104,
  Attrs: 105,
  Extended: 200,
  ExtendedReply: 201,
} as const;

/** SSH_FXF_* open flags, §6.3. */
export const SftpOpenFlag = {
  Read: 0x01,
  Write: 0x02,
  Append: 0x04,
  Creat: 0x08,
  Trunc: 0x10,
  Excl: 0x20,
} as const;

/** SSH_FX_* status codes, §7. */
export const SftpStatus = {
  Ok: 0,
  Eof: 1,
  NoSuchFile: 2,
  PermissionDenied: 3,
  Failure: 4,
  BadMessage: 5,
  OpUnsupported: 8,
} as const;

/**
 * Largest packet accepted. OpenSSH's sftp-server caps messages at 256 KiB (SFTP_MAX_MSG_LENGTH);
 * the margin covers other servers. Anything larger is treated as a protocol error.
 */
export const MAX_SFTP_PACKET = 1024 * 1024;

/** Extended requests that only read; any other extension counts as a write (fail closed). */
const READ_EXTENSIONS = new Set([
  'statvfs@openssh.com',
  'fstatvfs@openssh.com',
  'limits@openssh.com',
  'expand-path@openssh.com',
  'home-directory',
  'users-groups-by-id@openssh.com',
]);

/** Cuts a byte stream into whole SFTP packets (each including its 4-byte length). */
export class SftpFramer {
  #buffered: Buffer[] = [];
  #size = 0;

  /** Appends bytes; returns the packets completed by them. Throws on an impossible length. */
  push(chunk: Uint8Array): Buffer[] {
    this.#buffered.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.#size += chunk.byteLength;
    const packets: Buffer[] = [];
    while (this.#size >= 4) {
      let first = this.#buffered[0] as Buffer;
      if (first.length < 4) first = this.#flatten();
      const length = first.readUInt32BE(0);
      if (length === 0 || length > MAX_SFTP_PACKET) {
        throw new SshGatewayError(SshGatewayErrorCode.SftpMalformed, `SFTP packet length ${length} is out of range`);
      }
      // Wait for the whole packet before copying anything (a 256 KiB WRITE arrives in pieces).
      if (this.#size < 4 + length) break;
      const all = this.#flatten();
      packets.push(all.subarray(0, 4 + length));
      const rest = all.subarray(4 + length);
      this.#buffered = rest.length > 0 ? [rest] : [];
      this.#size = rest.length;
    }
    return packets;
  }

  /** Bytes held for an incomplete packet. */
  get buffered(): number {
    return this.#size;
  }

  #flatten(): Buffer {
    if (this.#buffered.length !== 1) this.#buffered = [Buffer.concat(this.#buffered, this.#size)];
    return this.#buffered[0] as Buffer;
  }
}

/** A cursor over one packet's payload; every read is bounds-checked. */
class Reader {
  #at: number;
  readonly #buf: Buffer;
  constructor(buf: Buffer, at: number) {
    this.#buf = buf;
    this.#at = at;
  }
  u8(): number {
    this.#need(1);
    return this.#buf.readUInt8(this.#at++);
  }
  u32(): number {
    this.#need(4);
    const v = this.#buf.readUInt32BE(this.#at);
    this.#at += 4;
    return v;
  }
  bytes(): Buffer {
    const n = this.u32();
    this.#need(n);
    const v = this.#buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return v;
  }
  string(): string {
    return this.bytes().toString('utf8');
  }
  #need(n: number): void {
    if (this.#at + n > this.#buf.length) {
      throw new SshGatewayError(SshGatewayErrorCode.SftpMalformed, 'SFTP packet is shorter than its fields');
    }
  }
}

export type SftpAccess = 'read' | 'write';

/** A client request, reduced to what policy and recordings need. */
export interface SftpRequest {
  type: number;
  /** Request id; absent for INIT (whose field is the version). */
  id?: number;
  /** Short name of the operation: `open`, `remove`, `rename`, an extension name… */
  op: string;
  access: SftpAccess;
  path?: string;
  /** Second path: RENAME/SYMLINK target, or the link path of SYMLINK. */
  path2?: string;
  handle?: string;
  /** OPEN pflags. */
  flags?: number;
  /** WRITE: data length; READ: requested length. */
  length?: number;
}

const HANDLE_ENCODING = 'latin1';

/** Parses a client→server packet (with its length prefix). Throws on truncation. */
export function parseSftpRequest(packet: Buffer): SftpRequest {
  const r = new Reader(packet, 4);
  const type = r.u8();
  if (type === SftpType.Init) return { type, op: 'init', access: 'read' };
  const id = r.u32();
  const base = { type, id };
  switch (type) {
    case SftpType.Open: {
      const path = r.string();
      const flags = r.u32();
      const writes = SftpOpenFlag.Write | SftpOpenFlag.Append | SftpOpenFlag.Creat | SftpOpenFlag.Trunc;
      return { ...base, op: 'open', access: (flags & writes) !== 0 ? 'write' : 'read', path, flags };
    }
    case SftpType.Close:
      return { ...base, op: 'close', access: 'read', handle: r.bytes().toString(HANDLE_ENCODING) };
    case SftpType.Read: {
      const handle = r.bytes().toString(HANDLE_ENCODING);
      r.u32();
      r.u32();
      return { ...base, op: 'read', access: 'read', handle, length: r.u32() };
    }
    case SftpType.Write: {
      const handle = r.bytes().toString(HANDLE_ENCODING);
      r.u32();
      r.u32();
      return { ...base, op: 'write', access: 'write', handle, length: r.bytes().length };
    }
    case SftpType.Fstat:
    case SftpType.Readdir:
      return { ...base, op: type === SftpType.Fstat ? 'fstat' : 'readdir', access: 'read', handle: r.bytes().toString(HANDLE_ENCODING) };
    case SftpType.Fsetstat:
      return { ...base, op: 'fsetstat', access: 'write', handle: r.bytes().toString(HANDLE_ENCODING) };
    case SftpType.Lstat:
    case SftpType.Stat:
    case SftpType.Opendir:
    case SftpType.Realpath:
    case SftpType.Readlink:
      return { ...base, op: READ_PATH_OPS[type] ?? 'stat', access: 'read', path: r.string() };
    case SftpType.Setstat:
    case SftpType.Remove:
    case SftpType.Mkdir:
    case SftpType.Rmdir:
      return { ...base, op: WRITE_PATH_OPS[type] ?? 'setstat', access: 'write', path: r.string() };
    case SftpType.Rename:
      return { ...base, op: 'rename', access: 'write', path: r.string(), path2: r.string() };
    case SftpType.Symlink: {
      // OpenSSH sends (targetpath, linkpath) in the opposite order to the draft; either way both are named.
      const a = r.string();
      return { ...base, op: 'symlink', access: 'write', path: a, path2: r.string() };
    }
    case SftpType.Extended: {
      const name = r.string();
      const request: SftpRequest = { ...base, op: name, access: READ_EXTENSIONS.has(name) ? 'read' : 'write' };
      if (name === 'posix-rename@openssh.com' || name === 'hardlink@openssh.com' || name === 'copy-data') {
        try {
          request.path = name === 'copy-data' ? r.bytes().toString(HANDLE_ENCODING) : r.string();
          if (name !== 'copy-data') request.path2 = r.string();
        } catch {
          // The name alone is enough to decide; paths are for the recording.
        }
      } else if (name === 'statvfs@openssh.com' || name === 'lsetstat@openssh.com' || name === 'expand-path@openssh.com') {
        try {
          request.path = r.string();
        } catch {
          // idem
        }
      }
      return request;
    }
    default:
      // Unknown request types are passed to the server, which answers OP_UNSUPPORTED; counting them
      // as writes keeps read-only sessions closed against anything new.
      return { ...base, op: `type-${type}`, access: 'write' };
  }
}

const READ_PATH_OPS: Record<number, string> = {
  [SftpType.Lstat]: 'lstat',
  [SftpType.Stat]: 'stat',
  [SftpType.Opendir]: 'opendir',
  [SftpType.Realpath]: 'realpath',
  [SftpType.Readlink]: 'readlink',
};
const WRITE_PATH_OPS: Record<number, string> = {
  [SftpType.Setstat]: 'setstat',
  [SftpType.Remove]: 'remove',
  [SftpType.Mkdir]: 'mkdir',
  [SftpType.Rmdir]: 'rmdir',
};

/** A server response, reduced. */
export type SftpResponse =
  | { type: typeof SftpType.Status; id: number; code: number }
  | { type: typeof SftpType.Handle; id: number; handle: string }
  | { type: typeof SftpType.Data; id: number; length: number }
  | { type: number; id?: number };

export function parseSftpResponse(packet: Buffer): SftpResponse {
  const r = new Reader(packet, 4);
  const type = r.u8();
  if (type === SftpType.Version) return { type };
  const id = r.u32();
  switch (type) {
    case SftpType.Status:
      return { type, id, code: r.u32() };
    case SftpType.Handle:
      return { type, id, handle: r.bytes().toString(HANDLE_ENCODING) };
    case SftpType.Data:
      return { type, id, length: r.u32() };
    default:
      return { type, id };
  }
}

/** SSH_FXP_STATUS with a message (English, no language tag needed), §7. */
export function sftpStatusPacket(id: number, code: number, message: string): Buffer {
  const text = Buffer.from(message, 'utf8');
  const packet = Buffer.alloc(4 + 1 + 4 + 4 + 4 + text.length + 4);
  let at = packet.writeUInt32BE(packet.length - 4, 0);
  at = packet.writeUInt8(SftpType.Status, at);
  at = packet.writeUInt32BE(id >>> 0, at);
  at = packet.writeUInt32BE(code, at);
  at = packet.writeUInt32BE(text.length, at);
  at += text.copy(packet, at);
  packet.writeUInt32BE(0, at);
  return packet;
}

/** One finished file operation, for the recording. */
export interface SftpOperation {
  /** `read`, `write` (a file handle's transfers), `readdir`, `remove`, `rename`, `mkdir`, … */
  op: string;
  path: string;
  path2?: string;
  /** Bytes transferred through the handle (read/write), 0 for metadata operations. */
  bytes: number;
  /** SSH_FX_* status of the operation (for handles: of the OPEN, or the first failure). */
  status: number;
}

interface OpenHandle {
  path: string;
  access: SftpAccess;
  dir: boolean;
  read: number;
  written: number;
}

const UNRECORDED_OPS = new Set(['read', 'write', 'readdir', 'fstat', 'stat', 'lstat', 'realpath', 'close', 'init']);

/**
 * Pairs requests with responses to report whole operations: a file opened, read or written and
 * closed becomes one `read`/`write` operation with its byte count; metadata changes become one
 * operation each. Stat-like lookups are not reported (they are noise in an audit).
 */
export class SftpMonitor {
  #pending = new Map<number, SftpRequest>();
  #handles = new Map<string, OpenHandle>();
  /** READ requests in flight: id → handle (the DATA reply carries only the id). */
  #reads = new Map<number, string>();
  static readonly MAX_PENDING = 65_536;

  /** A request the relay forwarded to the server. */
  request(req: SftpRequest): SftpOperation[] {
    if (req.id === undefined) return [];
    if (req.type === SftpType.Write && req.handle !== undefined) {
      const h = this.#handles.get(req.handle);
      if (h !== undefined) h.written += req.length ?? 0;
    }
    if (req.type === SftpType.Read && req.handle !== undefined) this.#reads.set(req.id, req.handle);
    if (this.#pending.size < SftpMonitor.MAX_PENDING) this.#pending.set(req.id, req);
    return [];
  }

  /** A response from the server; returns operations it completes. */
  response(res: SftpResponse): SftpOperation[] {
    if (res.id === undefined) return [];
    const req = this.#pending.get(res.id);
    this.#pending.delete(res.id);
    if (res.type === SftpType.Data && 'length' in res) {
      const handle = this.#reads.get(res.id);
      const h = handle === undefined ? undefined : this.#handles.get(handle);
      if (h !== undefined) h.read += res.length;
    }
    this.#reads.delete(res.id);
    if (req === undefined) return [];
    if (res.type === SftpType.Handle && 'handle' in res && (req.type === SftpType.Open || req.type === SftpType.Opendir)) {
      this.#handles.set(res.handle, {
        path: req.path ?? '',
        access: req.access,
        dir: req.type === SftpType.Opendir,
        read: 0,
        written: 0,
      });
      return [];
    }
    const status = res.type === SftpType.Status && 'code' in res ? res.code : SftpStatus.Ok;
    if (req.type === SftpType.Close && req.handle !== undefined) {
      const h = this.#handles.get(req.handle);
      this.#handles.delete(req.handle);
      if (h === undefined) return [];
      return [{ op: h.dir ? 'readdir' : h.access, path: h.path, bytes: h.access === 'write' ? h.written : h.read, status: SftpStatus.Ok }];
    }
    if (req.type === SftpType.Open && status !== SftpStatus.Ok) {
      return [{ op: `open-${req.access}`, path: req.path ?? '', bytes: 0, status }];
    }
    if (UNRECORDED_OPS.has(req.op) || req.type === SftpType.Open || req.type === SftpType.Opendir || req.access === 'read') return [];
    const op: SftpOperation = { op: req.op, path: req.path ?? req.handle ?? '', bytes: 0, status };
    if (req.path2 !== undefined) op.path2 = req.path2;
    return [op];
  }

  /** Handles still open when the channel closes, reported as operations. */
  flush(): SftpOperation[] {
    const ops = [...this.#handles.values()].map((h) => ({
      op: h.dir ? 'readdir' : h.access,
      path: h.path,
      bytes: h.access === 'write' ? h.written : h.read,
      status: SftpStatus.Ok,
    }));
    this.#handles.clear();
    this.#pending.clear();
    this.#reads.clear();
    return ops;
  }
}
