// Shared helpers for the browser journeys: the environment run.sh sets, the
// browser, a page that fails the test on any console error or failed request,
// the demo's reset and sign-in, screenshots, and the database / API checks.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { after, before } from 'node:test';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));

function required(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the journeys through e2e/run.sh`);
  return v;
}

export const env = {
  baseUrl: required('E2E_BASE_URL').replace(/\/$/, ''),
  fakeUrl: required('E2E_FAKE_URL').replace(/\/$/, ''),
  internalKey: required('E2E_INTERNAL_API_KEY'),
  databaseUrl: required('E2E_DATABASE_URL'),
  chromium: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
  screenshots: process.env.E2E_SCREENSHOT_DIR || path.resolve(here, '../../docs/screenshots'),
};

/** The demo's first user: a Gmail-only passport for jisoo@example.com. */
export const JISOO_ID = '00000000-0000-4000-8000-000000000001';
export const SCOPE = (short) => `https://www.googleapis.com/auth/${short}`;

export const PHONE = { width: 375, height: 812 };
export const DESKTOP = { width: 1280, height: 800 };

export async function launchBrowser() {
  return chromium.launch({
    executablePath: env.chromium,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A fresh browser context (no cookies) at phone size, with one page whose
 * console errors, page errors, failed requests and HTTP errors are recorded.
 * `allowStatus(url, status)` may excuse a deliberate error response;
 * `javaScriptEnabled: false` shows the pages work without scripts.
 */
export async function openPage(browser, { allowStatus = () => false, javaScriptEnabled = true } = {}) {
  const context = await browser.newContext({
    viewport: PHONE,
    javaScriptEnabled,
    locale: 'ko-KR',
    timezoneId: 'Asia/Seoul',
    colorScheme: 'light',
    reducedMotion: 'reduce',
  });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(15_000);
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location().url || page.url();
    // Chromium logs every HTTP error response; excuse only the deliberate ones.
    const status = /status of (\d{3})/.exec(msg.text());
    if (status && allowStatus(where, Number(status[1]))) return;
    problems.push(`console error: ${msg.text()} (${where})`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) =>
    problems.push(`request failed: ${req.method()} ${req.url()}: ${req.failure()?.errorText}`),
  );
  page.on('response', (resp) => {
    if (resp.status() >= 400 && !allowStatus(resp.url(), resp.status())) {
      problems.push(`HTTP ${resp.status()}: ${resp.request().method()} ${resp.url()}`);
    }
  });
  return {
    page,
    context,
    /** Fail when anything went wrong in the browser so far. */
    assertClean(step = '') {
      assert.deepEqual(problems, [], `browser problems${step ? ` (${step})` : ''}:\n${problems.join('\n')}`);
    },
    async close() {
      await context.close();
    },
  };
}

/**
 * One Chromium for the test file that calls this (started before its tests,
 * closed after them). `open(options)` is `openPage` on it; `journey(options,
 * body)` runs `body(page, session)` in a fresh context (`options.size` sets the
 * viewport) and fails on anything the browser reported.
 */
export function useBrowser() {
  let browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });
  const open = (options) => openPage(browser, options);
  async function journey(options, body) {
    const session = await open(options);
    try {
      if (options?.size) await session.page.setViewportSize(options.size);
      await body(session.page, session);
      session.assertClean('end of journey');
    } finally {
      await session.close();
    }
  }
  return { open, journey };
}

/**
 * Reset the demo with its own button, and wait until the sign-in page it
 * redirects to has loaded. (Waiting for the URL is not enough: the page is
 * already at /demo before the click, so that wait would end at once and the
 * next navigation would abort the one the reset started.)
 */
export async function resetDemo(page) {
  await page.goto(`${env.baseUrl}/demo`);
  const back = page.waitForResponse((r) => {
    const req = r.request();
    return req.method() === 'GET' && new URL(r.url()).pathname === '/demo' && req.redirectedFrom()?.method() === 'POST';
  });
  const loaded = page.waitForEvent('load');
  await page.getByRole('button', { name: /처음 상태로/ }).click();
  await back;
  await loaded;
}

/** Reset the demo with its own button, then sign in as 김지수 through the form. */
export async function resetAndSignIn(page, { who = '김지수', shot = null } = {}) {
  await resetDemo(page);
  if (shot) await screenshot(page, shot, { desktop: false });
  await page.getByRole('radio', { name: new RegExp(who) }).check();
  await Promise.all([
    page.waitForURL(`${env.baseUrl}/passport/gmail`),
    page.getByRole('button', { name: /로그인/ }).click(),
  ]);
  await page.waitForLoadState('load');
}

/**
 * Checks every page gets at each size: Korean page language, nothing wider
 * than the screen, every control with a label, every image with alt text.
 */
export async function checkPage(page, where) {
  const facts = await page.evaluate(() => ({
    lang: document.documentElement.lang,
    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    unlabelled: [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
      .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label'))
      .map((el) => el.outerHTML),
    nameless: [...document.querySelectorAll('a, button')]
      .filter((el) => !el.textContent.trim() && !el.getAttribute('aria-label'))
      .map((el) => el.outerHTML),
    noAlt: [...document.querySelectorAll('img:not([alt])')].map((el) => el.outerHTML),
    inlineStyle: [...document.querySelectorAll('[style]:not([style=""]), style, script')].map((el) => el.outerHTML.slice(0, 200)),
  }));
  assert.equal(facts.lang, 'ko', `${where}: <html lang="ko">`);
  assert.ok(facts.overflow <= 0, `${where}: the page is ${facts.overflow}px wider than the screen`);
  assert.deepEqual(facts.unlabelled, [], `${where}: controls without a label`);
  assert.deepEqual(facts.nameless, [], `${where}: links or buttons without a name`);
  assert.deepEqual(facts.noAlt, [], `${where}: images without alt`);
  assert.deepEqual(facts.inlineStyle, [], `${where}: inline style or script`);
}

/**
 * Check the page at phone and desktop size and save it as
 * docs/screenshots/NAME-phone.png and, unless told not to, NAME-desktop.png.
 */
export async function screenshot(page, name, { desktop = true } = {}) {
  mkdirSync(env.screenshots, { recursive: true });
  const before = page.viewportSize();
  await page.setViewportSize(PHONE);
  await checkPage(page, `${name} at 375 px`);
  await page.screenshot({ path: path.join(env.screenshots, `${name}-phone.png`), fullPage: true });
  await page.setViewportSize(DESKTOP);
  await checkPage(page, `${name} at 1280 px`);
  if (desktop) {
    await page.screenshot({ path: path.join(env.screenshots, `${name}-desktop.png`), fullPage: true });
  }
  if (before) await page.setViewportSize(before);
}

/** One value from the database, through psql (as an operator would look). */
export function psql(sql) {
  return execFileSync('psql', [env.databaseUrl, '-X', '-Atc', sql], { encoding: 'utf8' }).trim();
}

/** The scopes stored for 김지수 (sorted URLs), or null without a row. */
export function storedScopes(userId = JISOO_ID) {
  const out = psql(`select scopes from gmail_token where user_id='${userId}'`);
  return out ? JSON.parse(out) : null;
}

/** The whole stored row, as text, to compare before and after. */
export function storedRow(userId = JISOO_ID) {
  return psql(
    `select email, google_sub, scopes::text, access_token, refresh_token, status, updated_at from gmail_token where user_id='${userId}'`,
  );
}

/** `POST /internal/passport/gmail/token` as a skill calls it. */
export async function tokenFor(scopes, userId = JISOO_ID) {
  const resp = await fetch(`${env.baseUrl}/internal/passport/gmail/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.internalKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ user_id: userId, scopes }),
  });
  return { status: resp.status, body: await resp.json() };
}

/** `POST {fake}/calendar/v3/calendars/primary/events` with a token. */
export async function insertEvent(accessToken, event) {
  const resp = await fetch(`${env.fakeUrl}/calendar/v3/calendars/primary/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(event),
  });
  return { status: resp.status, body: await resp.json() };
}

/** The permission rows of the item page: { granted: [...], missing: [...] } (Korean labels). */
export async function permissionRows(page) {
  const rows = page.locator('ul.scopes > li');
  const out = { granted: [], missing: [] };
  for (const li of await rows.all()) {
    const cls = (await li.getAttribute('class')) || '';
    // The Korean label: the label's own text, without the English beside it.
    const label = await li.locator('.label').first().evaluate((el) =>
      [...el.childNodes]
        .filter((n) => n.nodeType === Node.TEXT_NODE)
        .map((n) => n.textContent)
        .join('')
        .trim(),
    );
    if (/\bmissing\b/.test(cls)) out.missing.push(label);
    else if (/\bgranted\b/.test(cls)) out.granted.push(label);
  }
  return out;
}
