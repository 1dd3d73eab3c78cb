/**
 * Best-effort detection of command lines typed at an interactive shell prompt.
 *
 * What it is: a small model of a line editor (readline/zle) driven only by the keystrokes the
 * client sends. It understands printable text (UTF-8), backspace/DEL, Ctrl-U/K/W/A/E/B/F/H,
 * Ctrl-C (cancels the line), left/right/home/end/delete keys, and bracketed paste; Enter
 * submits the line.
 *
 * What it is not: a terminal emulator. It cannot see what the shell does with a keystroke, so a
 * line is flagged `uncertain` when it used anything whose effect only the shell knows (history
 * recall with up/down or Ctrl-R, Tab completion, unknown control keys). While a full-screen
 * program holds the alternate screen (vim, less, top — seen in the output), keystrokes are not
 * command lines and detection is suspended; input typed to other programs (a `read` prompt, a
 * REPL, a password prompt with echo off) is still reported as lines. Policy built on typed lines
 * is therefore a tripwire for the honest mistake, not a security boundary: exec patterns and
 * recordings are the boundary. See docs in src/sidecar/ssh/README.md.
 */

export interface TypedLine {
  /** The line as the editor model has it, without the line terminator. */
  command: string;
  /** True when the line used keys whose effect the model cannot know (history, completion…). */
  uncertain: boolean;
}

/** A piece of client input: bytes to forward, and the line they submit if they end with Enter. */
export interface InputPiece {
  data: Uint8Array;
  line?: TypedLine;
}

const ESC = 0x1b;
const MAX_LINE = 16 * 1024;

type EscState = 'none' | 'esc' | 'csi' | 'ss3' | 'osc';

export class TypedCommandDetector {
  #chars: string[] = [];
  #cursor = 0;
  #uncertain = false;
  #esc: EscState = 'none';
  #csi = '';
  #altScreen = false;
  #outputTail = '';
  readonly #decoder = new TextDecoder('utf-8', { fatal: false });

  /** Whether a full-screen program currently holds the terminal (detection suspended). */
  get suspended(): boolean {
    return this.#altScreen;
  }

  /** The line being edited (for tests and diagnostics). */
  get pending(): string {
    return this.#chars.join('');
  }

  /**
   * Feeds client keystrokes. Returns the input split after every byte that submits a line, so a
   * gateway can hold back the Enter until policy has looked at the line.
   */
  feed(chunk: Uint8Array): InputPiece[] {
    const pieces: InputPiece[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i] as number;
      const line = this.#byte(byte, chunk, i);
      if (line !== undefined) {
        pieces.push({ data: chunk.subarray(start, i + 1), line });
        start = i + 1;
      }
    }
    if (start < chunk.length) pieces.push({ data: chunk.subarray(start) });
    return pieces;
  }

  /**
   * Watches terminal output for the alternate screen (DEC private modes 1049/1047/47), which
   * full-screen programs switch to; sequences split across chunks are found too.
   */
  observeOutput(chunk: Uint8Array): void {
    const text = this.#outputTail + Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1');
    // eslint-disable-next-line no-control-regex -- matching escape sequences is the point
    const re = /\x1b\[\?(1049|1047|47)([hl])/g;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      this.#altScreen = m[2] === 'h';
      if (!this.#altScreen) this.#reset();
    }
    this.#outputTail = text.slice(-8);
  }

  #byte(byte: number, chunk: Uint8Array, i: number): TypedLine | undefined {
    if (this.#esc !== 'none') {
      this.#escape(byte);
      return undefined;
    }
    if (byte === ESC) {
      this.#esc = 'esc';
      return undefined;
    }
    if (this.#altScreen) return undefined;
    if (byte === 0x0d || byte === 0x0a) {
      // CR LF from one keypress (some clients) must not submit twice: LF right after CR is ignored.
      if (byte === 0x0a && i > 0 && chunk[i - 1] === 0x0d) return undefined;
      // A newline inside a bracketed paste is inserted rather than executed by bash ≥ 5.1 and zsh,
      // but executed by older shells and most REPLs: treat it as a submit, the stricter reading.
      return this.#submit();
    }
    if (byte < 0x20 || byte === 0x7f) {
      this.#control(byte);
      return undefined;
    }
    // Printable (or part of a UTF-8 sequence): decode in streaming mode so split characters join.
    const text = this.#decoder.decode(chunk.subarray(i, i + 1), { stream: true });
    for (const ch of text) this.#insert(ch);
    return undefined;
  }

  #submit(): TypedLine {
    const line: TypedLine = { command: this.#chars.join(''), uncertain: this.#uncertain };
    this.#reset();
    return line;
  }

  #reset(): void {
    this.#chars = [];
    this.#cursor = 0;
    this.#uncertain = false;
  }

  #insert(ch: string): void {
    if (this.#chars.length >= MAX_LINE) {
      this.#uncertain = true;
      return;
    }
    this.#chars.splice(this.#cursor, 0, ch);
    this.#cursor++;
  }

  #control(byte: number): void {
    switch (byte) {
      case 0x7f: // DEL, what terminals send for Backspace
      case 0x08: // Ctrl-H
        if (this.#cursor > 0) {
          this.#chars.splice(this.#cursor - 1, 1);
          this.#cursor--;
        }
        return;
      case 0x15: // Ctrl-U: kill to start of line
        this.#chars.splice(0, this.#cursor);
        this.#cursor = 0;
        return;
      case 0x0b: // Ctrl-K: kill to end of line
        this.#chars.splice(this.#cursor);
        return;
      case 0x17: {
        // Ctrl-W: kill the word before the cursor (whitespace-delimited, as readline's unix-word-rubout)
        let at = this.#cursor;
        while (at > 0 && /\s/.test(this.#chars[at - 1] ?? '')) at--;
        while (at > 0 && !/\s/.test(this.#chars[at - 1] ?? '')) at--;
        this.#chars.splice(at, this.#cursor - at);
        this.#cursor = at;
        return;
      }
      case 0x01: // Ctrl-A
        this.#cursor = 0;
        return;
      case 0x05: // Ctrl-E
        this.#cursor = this.#chars.length;
        return;
      case 0x02: // Ctrl-B
        this.#cursor = Math.max(0, this.#cursor - 1);
        return;
      case 0x06: // Ctrl-F
        this.#cursor = Math.min(this.#chars.length, this.#cursor + 1);
        return;
      case 0x03: // Ctrl-C: the shell abandons the line
        this.#reset();
        return;
      case 0x04: // Ctrl-D: delete under cursor (EOF on an empty line)
        if (this.#cursor < this.#chars.length) this.#chars.splice(this.#cursor, 1);
        return;
      default:
        // Tab (completion), Ctrl-R (history search), Ctrl-Y (yank) and friends: the shell changes
        // the line in ways only it knows.
        this.#uncertain = true;
    }
  }

  #escape(byte: number): void {
    switch (this.#esc) {
      case 'esc':
        if (byte === 0x5b) {
          this.#esc = 'csi';
          this.#csi = '';
        } else if (byte === 0x4f) this.#esc = 'ss3';
        else if (byte === 0x5d) this.#esc = 'osc';
        else {
          // Alt-<key>: word motions and edits the model does not follow.
          this.#esc = 'none';
          if (!this.#altScreen) this.#uncertain = true;
        }
        return;
      case 'ss3':
        this.#esc = 'none';
        this.#key(String.fromCharCode(byte), '');
        return;
      case 'osc':
        if (byte === 0x07 || byte === 0x5c) this.#esc = 'none';
        return;
      case 'csi':
        if (byte >= 0x40 && byte <= 0x7e) {
          this.#esc = 'none';
          this.#key(String.fromCharCode(byte), this.#csi);
        } else if (this.#csi.length < 32) this.#csi += String.fromCharCode(byte);
        return;
      default:
        return;
    }
  }

  /** A cursor/function key: `final` is the CSI/SS3 final byte, `params` what came before it. */
  #key(final: string, params: string): void {
    // Bracketed paste markers: the pasted text between them is ordinary input.
    if (final === '~' && (params === '200' || params === '201')) return;
    if (this.#altScreen) return;
    // Modifiers (`1;5C` = Ctrl-Right) jump words: uncertain.
    const modified = params.includes(';');
    switch (final) {
      case 'C':
        if (modified) this.#uncertain = true;
        else this.#cursor = Math.min(this.#chars.length, this.#cursor + 1);
        return;
      case 'D':
        if (modified) this.#uncertain = true;
        else this.#cursor = Math.max(0, this.#cursor - 1);
        return;
      case 'H':
        this.#cursor = 0;
        return;
      case 'F':
        this.#cursor = this.#chars.length;
        return;
      case '~':
        if (params === '1' || params === '7') this.#cursor = 0;
        else if (params === '4' || params === '8') this.#cursor = this.#chars.length;
        else if (params === '3') {
          if (this.#cursor < this.#chars.length) this.#chars.splice(this.#cursor, 1);
        } else this.#uncertain = true;
        return;
      default:
        // Up/Down (history) and anything else.
        this.#uncertain = true;
    }
  }
}
