// The web viewer in a real browser: Playwright (playwright-core, no browser download) driving
// Debian's Chromium headless against `warden ui` on the plane. A person logs in through the
// plane's OIDC issuer (authorization code + PKCE), filters the list, replays an SSH session from
// the real gateway in asciinema-player, sees a masked column in a SQL session; someone outside the
// viewers is refused. Screenshots go to test-results/ui/.

import { existsSync, mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Browser, chromium, type Page } from 'playwright-core';
import { startViewerWorld, type ViewerWorld } from './fixture.ts';

const CHROMIUM = process.env.WARDEN_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = new URL('../../test-results/ui/', import.meta.url).pathname;
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`[ui browser test] SKIPPED: no Chromium at ${CHROMIUM}; install it with hack/install-system-deps.sh (Debian package chromium)`);

const plane = inject('plane');
let world: ViewerWorld;
let browser: Browser;

async function logIn(page: Page, user: string, groups = ''): Promise<void> {
  await page.goto(`${world.url}/`);
  // The app finds no login, goes to /auth/login, which sends the browser to the issuer's form.
  await page.waitForURL(`${plane.oidc.issuer}/authorize**`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=groups]', groups);
  await page.click('button[type=submit]');
  await page.waitForURL(`${world.url}/**`);
  await expect.poll(async () => await page.getByTestId('whoami').textContent()).toContain(user);
}

describe.skipIf(!haveChromium)('warden ui in a browser', () => {
  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    world = await startViewerWorld(plane, 'web');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await world?.stop();
  });

  it('logs a viewer in through the OIDC issuer, filters the list, replays the SSH session and shows the SQL session masked', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    await logIn(page, 'vera');
    problems.length = 0; // the 401s that sent the browser to the login are expected

    await page.goto(`${world.url}/?namespace=${world.namespace}`);
    const rows = page.locator('[data-testid=session-table] tbody tr');
    await expect.poll(async () => await rows.count()).toBe(3);
    await page.screenshot({ path: `${SHOTS}list.png`, fullPage: true });

    await page.selectOption('select[name=protocol]', 'ssh');
    await page.click('[data-testid=filters] button[type=submit]');
    await expect.poll(async () => await rows.count()).toBe(1);
    expect(await rows.first().getAttribute('data-protocol')).toBe('ssh');
    expect(page.url()).toContain('protocol=ssh');

    await rows.first().locator('a').click();
    await page.waitForURL(`${world.url}/sessions/${world.namespace}/${world.ssh.metadata.name}`);
    await expect.poll(async () => await page.getByTestId('verification').textContent(), { timeout: 15_000 }).toMatch(/Verified: .*hash chain intact, every signature valid, manifest checked/);
    const player = page.locator('[data-testid=player] .ap-wrapper');
    await player.waitFor({ state: 'visible', timeout: 15_000 });
    await page.locator('[data-testid=player] .ap-play-button').click();
    await expect
      .poll(async () => `${await page.locator('[data-testid=player] .ap-term-text').innerText()}\n${problems.join('\n')}`, { timeout: 20_000 })
      .toContain('hello-from-warden-42');
    const index = page.getByTestId('command-index');
    expect(await index.textContent()).toContain('echo hello-from-warden-$((6*7))');
    await index.locator('button').first().click(); // seeks the player to the command
    await page.screenshot({ path: `${SHOTS}session-ssh.png`, fullPage: true });

    await page.goto(`${world.url}/?namespace=${world.namespace}&protocol=postgres`);
    await expect.poll(async () => await rows.count()).toBe(1);
    await rows.first().locator('a').click();
    await page.waitForURL(`${world.url}/sessions/${world.namespace}/${world.sql.metadata.name}`);
    const timeline = page.getByTestId('sql-timeline');
    await timeline.waitFor({ state: 'visible' });
    const masked = timeline.locator('td.masked');
    await expect.poll(async () => await masked.count()).toBe(2);
    expect(await masked.first().textContent()).toMatch(/^\[REDACTED:/);
    expect(await timeline.textContent()).not.toContain('@example.com');
    expect(await timeline.locator('li.decision-deny code.sql').textContent()).toBe('DROP TABLE customers');
    expect(await page.getByTestId('highlights').textContent()).toContain('no-ddl');
    await page.screenshot({ path: `${SHOTS}session-sql.png`, fullPage: true });

    await page.goto(`${world.url}/sessions/${world.namespace}/${world.http.metadata.name}`);
    const requests = page.getByTestId('http-requests');
    await requests.waitFor({ state: 'visible' });
    expect(await requests.locator('li.decision-deny').textContent()).toContain('DELETE');
    await requests.locator('li .line').first().click();
    expect(await requests.locator('.bodies').first().textContent()).toContain('[REDACTED:email]');
    await page.screenshot({ path: `${SHOTS}session-http.png`, fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  });

  it('refuses someone outside the viewers, in the list and on the session page', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await logIn(page, 'erin', 'ops');
    await page.goto(`${world.url}/?namespace=${world.namespace}`);
    await expect.poll(async () => await page.locator('.empty').textContent()).toContain('No sessions you may view');
    await page.goto(`${world.url}/sessions/${world.namespace}/${world.ssh.metadata.name}`);
    const refusal = page.getByTestId('session-error');
    await refusal.waitFor({ state: 'visible' });
    expect(await refusal.textContent()).toMatch(/Access denied.*not among the viewers/);
    await page.screenshot({ path: `${SHOTS}refused.png` });
    await context.close();
  });
});
