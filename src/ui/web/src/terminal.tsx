// SSH replay: asciinema-player on the server's asciicast, a speed control and a command index
// (typed commands and exec requests) that seeks the player.
import * as AsciinemaPlayer from 'asciinema-player';
import 'asciinema-player/dist/bundle/asciinema-player.css';
import { useEffect, useRef, useState } from 'preact/hooks';
import { formatOffset, payloadText, type RecEvent } from './types.ts';

type Player = ReturnType<typeof AsciinemaPlayer.create>;

export function TerminalReplay({ src, events, revision }: { src: string; events: RecEvent[]; revision: number }) {
  const container = useRef<HTMLDivElement>(null);
  const player = useRef<Player | undefined>(undefined);
  const [speed, setSpeed] = useState(1);

  useEffect(() => {
    if (!container.current) return;
    const at = player.current?.getCurrentTime() ?? 0;
    player.current?.dispose();
    player.current = AsciinemaPlayer.create({ url: src, fetchOpts: { credentials: 'same-origin' } }, container.current, {
      speed,
      fit: 'width',
      idleTimeLimit: 2,
      preload: true,
      startAt: Math.floor(at),
      terminalFontSize: 'small',
    });
    return undefined;
  }, [src, speed, revision]);
  useEffect(() => () => player.current?.dispose(), []);

  const index = events.filter((e) => e.k === 'command' || e.k === 'exec');
  return (
    <section class="terminal">
      <div class="controls">
        <label>
          Speed{' '}
          <select value={String(speed)} onChange={(e) => setSpeed(Number((e.currentTarget as HTMLSelectElement).value))} data-testid="speed">
            {[0.5, 1, 2, 4, 8].map((s) => (
              <option key={s} value={String(s)}>
                {s}×
              </option>
            ))}
          </select>
        </label>
      </div>
      <div class="player" ref={container} data-testid="player" />
      <h3>Commands</h3>
      {index.length === 0 ? <p class="empty">No commands were recognised in this session.</p> : null}
      <ol class="command-index" data-testid="command-index">
        {index.map((e) => {
          const text = e.k === 'command' ? String(e.command) : payloadText(e.command);
          const denied = e.decision !== undefined && e.decision !== 'allow';
          return (
            <li key={e.n} class={denied ? 'deny' : ''}>
              <button type="button" onClick={() => void player.current?.seek(e.t / 1000).then(() => player.current?.play())}>
                {formatOffset(e.t)}
              </button>{' '}
              <code>{text}</code> {denied ? <span class="badge deny">{String(e.decision)}</span> : null}
            </li>
          );
        })}
      </ol>
    </section>
  );
}
