// The web viewer's entry: a two-page app (session list, session page) routed on the URL path.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { getJson } from './api.ts';
import { navigate } from './nav.ts';
import { SessionList } from './list.tsx';
import { SessionPage } from './session.tsx';
import type { Me } from './types.ts';
import './style.css';

function App() {
  const [path, setPath] = useState(window.location.pathname + window.location.search);
  const [me, setMe] = useState<Me | undefined>();
  useEffect(() => {
    const onPop = (): void => setPath(window.location.pathname + window.location.search);
    window.addEventListener('popstate', onPop);
    getJson<Me>('/api/me').then(setMe, () => undefined);
    return () => window.removeEventListener('popstate', onPop);
  }, []);
  const match = /^\/sessions\/([^/]+)\/([^/?]+)/.exec(path);
  return (
    <>
      <header class="top">
        <a
          class="brand"
          href="/"
          onClick={(e) => {
            e.preventDefault();
            navigate('/');
          }}
        >
          Warden sessions
        </a>
        <span class="who" data-testid="whoami">
          {me ? (
            <>
              {me.user} · <a href="/auth/logout">log out</a>
            </>
          ) : null}
        </span>
      </header>
      <main>{match ? <SessionPage namespace={decodeURIComponent(match[1] ?? '')} name={decodeURIComponent(match[2] ?? '')} /> : <SessionList search={window.location.search} />}</main>
    </>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);
